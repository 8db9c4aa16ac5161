"""vSLERP (SPEC §12): the paper's mean-shifted spherical interpolation between two embeddings."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..validation import to_numpy

#: below this angle (radians) between the shifted vectors, slerp is replaced by the linear interpolation
_PARALLEL = 1e-7


def _vector(x: object, name: str) -> np.ndarray:
    arr = np.asarray(to_numpy(x), dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise InputError(f"{name} has shape {arr.shape}; expected one embedding, shape (d,)")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} holds NaN or inf")
    return arr


def vslerp(a: object, b: object, t: object, mean: object = None, scale: float = 1.0) -> np.ndarray:
    """Spherical interpolation around the modality mean: ``slerp(a - s·m, b - s·m, t) + s·m``.

    Parameters
    ----------
    a, b : array-like of shape (d,)
        Raw embeddings (before L2 normalisation) of one modality.
    t : float or array-like of shape (k,)
        Interpolation positions; 0 gives ``a``, 1 gives ``b`` (values outside [0, 1] extrapolate).
    mean : array-like of shape (d,), optional
        ``m``, the raw mean of the modality (e.g. ``ellipsoid_offset(X).mean``).  None: the origin, i.e.
        plain slerp.
    scale : float
        ``s``; 1 shifts by the full mean, 0 is plain slerp.

    Returns
    -------
    ndarray of shape (d,) for a scalar ``t``, (k, d) otherwise

    Notes
    -----
    With ``p = a - s·m``, ``q = b - s·m`` and ``Ω`` the angle between them,
    ``slerp(p, q, t) = sin((1 - t) Ω) / sin Ω · p + sin(t Ω) / sin Ω · q`` (Shoemake).  When ``||p|| =
    ||q||`` every interpolant has that norm: the path follows the sphere of that radius around ``s·m``
    -- for CLIP, the shell the modality lives on -- instead of the sphere around the origin.  Nearly
    parallel ``p``, ``q`` (Ω < 1e-7) fall back to the linear interpolation, which is then the same path.
    """
    p0, q0 = _vector(a, "a"), _vector(b, "b")
    if p0.shape != q0.shape:
        raise InputError(f"a has dimension {p0.size} but b has {q0.size}; interpolate embeddings of one model")
    m = np.zeros_like(p0) if mean is None else _vector(mean, "mean")
    if m.shape != p0.shape:
        raise InputError(f"mean has dimension {m.size} but a and b have {p0.size}")
    s = float(scale)
    if not np.isfinite(s):
        raise InputError(f"scale must be a finite number, got {scale}")
    tt = np.asarray(t, dtype=np.float64)
    if tt.ndim > 1 or not np.isfinite(tt).all():
        raise InputError(f"t must be a number or a 1-D array of finite numbers, got shape {tt.shape}")
    scalar = tt.ndim == 0
    tt = np.atleast_1d(tt)[:, None]  # (k, 1)
    centre = s * m
    p, q = p0 - centre, q0 - centre
    norm_p, norm_q = np.linalg.norm(p), np.linalg.norm(q)
    if norm_p == 0 or norm_q == 0:
        raise InputError("a or b equals the shift s·m, so its direction from the mean is undefined; pick another scale")
    cos = float(np.clip(p @ q / (norm_p * norm_q), -1.0, 1.0))
    omega = float(np.arccos(cos))
    if omega < _PARALLEL:
        out = (1.0 - tt) * p + tt * q
    else:
        sin = np.sin(omega)
        out = (np.sin((1.0 - tt) * omega) / sin) * p + (np.sin(tt * omega) / sin) * q
    out = out + centre
    return out[0] if scalar else out
