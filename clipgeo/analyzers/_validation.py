"""Input checks shared by every analyzer: done once, at the boundary.

Arrays may be numpy (float16/32/64, or integers) or anything with
``.detach().cpu().numpy()`` (a torch tensor) -- torch itself is never
imported.  Checked arrays come back as C-contiguous float64.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from ..errors import InputError

#: rows whose norms all lie within this distance of 1 count as unit-norm
UNIT_TOLERANCE = 1e-2


class UnitNormWarning(UserWarning):
    """The rows are already L2-normalised, so raw-space quantities are degenerate."""


def to_numpy(x: object) -> np.ndarray:
    """``x`` as a numpy array; torch tensors (duck-typed on ``.detach``) are moved to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":  # numpy has no bfloat16
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _rows(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (", …" if len(rows) > limit else "")


def rows_are_unit(x: np.ndarray, tol: float = UNIT_TOLERANCE) -> bool:
    """True when every row of ``x`` has an L2 norm within ``tol`` of 1."""
    if len(x) == 0:
        return False
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    return bool(np.all(np.abs(norms - 1.0) < tol))


def check_embeddings(
    x: object,
    name: str = "X",
    *,
    min_rows: int = 2,
    dim: int | None = None,
    warn_unit: bool = False,
) -> np.ndarray:
    """Return ``x`` as a C-contiguous float64 array of shape (n, d), or raise a one-line InputError.

    Parameters
    ----------
    x : array-like or torch tensor of shape (n, d)
    name : str
        What the array is, for the message (``"img"``, ``"txt"``).
    min_rows : int
        Fewest rows accepted (2: a variance needs two rows).
    dim : int, optional
        Required number of columns (the other modality's dimension).
    warn_unit : bool
        Emit :class:`UnitNormWarning` when every row is already unit-norm (for
        the measurements that need raw rows).
    """
    arr = to_numpy(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"{name} has dtype {arr.dtype}; expected a numeric array of shape (rows, dim)")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise InputError(f"{name} is complex; pass real embeddings of shape (rows, dim)")
    if arr.ndim != 2:
        hint = "reshape it with x.reshape(1, -1)" if arr.ndim == 1 else "select one (rows, dim) slice, e.g. x[0]"
        raise InputError(f"{name} is {arr.ndim}-D with shape {arr.shape}; expected a 2-D array (rows, dim): {hint}")
    n, d = arr.shape
    if d == 0:
        raise InputError(f"{name} has 0 columns; expected (rows, dim) with dim >= 1")
    if n < min_rows:
        raise InputError(f"{name} has {n} row(s); this measurement needs at least {min_rows} rows")
    if dim is not None and d != dim:
        raise InputError(
            f"{name} has dimension {d} but the other modality has {dim}; both must come from the same model"
        )
    out = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputError(f"{name} has {len(bad)} row(s) with NaN or inf (rows {_rows(bad)}); drop or recompute those rows")
    if warn_unit and rows_are_unit(out):
        warnings.warn(
            f"{name} rows are already unit-norm: raw-space measurements (norms, thin shell, offset, Mahalanobis) "
            "are degenerate; pass raw embeddings (encode_image(x, normalize=False)) for those",
            UnitNormWarning,
            stacklevel=3,
        )
    return out


def check_pair(
    img: object, txt: object, *, paired: bool = False, min_rows: int = 2, warn_unit: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Check an (image, text) couple: same dimension, and the same row count when ``paired``.

    Returns
    -------
    img : ndarray of shape (n_image, d), float64
    txt : ndarray of shape (n_text, d), float64
    """
    a = check_embeddings(img, "img", min_rows=min_rows, warn_unit=warn_unit)
    b = check_embeddings(txt, "txt", min_rows=min_rows, dim=a.shape[1], warn_unit=warn_unit)
    if paired and len(a) != len(b):
        raise InputError(
            f"img has {len(a)} rows but txt has {len(b)}; matched pairs need row i of one to match row i of the other "
            "(use EmbeddingSet.paired_arrays())"
        )
    return a, b


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norms; a zero row stays zero."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def check_positive(value: float, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be a positive number, got {value}")
    return value


def single_blas_thread():
    """Context manager: one BLAS thread for small LAPACK work (eigh of a d × d matrix, L-BFGS).

    Such routines issue thousands of small BLAS calls; with several BLAS
    threads on a busy machine each call waits for its threads to be scheduled,
    which made a 512 × 512 ``eigh`` take seconds instead of 0.1 s.  Large
    matrix products keep every thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
