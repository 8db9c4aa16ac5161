"""Why the ellipsoids sit off-centre (SPEC §8): contrastive loss under a shift of the image centroid.

Also Wang & Isola's alignment and uniformity metrics on unit vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ._conformity import mean_conformity
from ._result import Result
from ._validation import check_pair, check_positive, unit_rows

#: largest 2/τ for which one constant shift keeps every exp(S - 1/τ) above float64 underflow
_CONSTANT_SHIFT_LIMIT = 600.0


def default_alphas() -> np.ndarray:
    """The SPEC grid: -1.0 to 1.0 in steps of 0.1 (21 values, 0.0 exactly included)."""
    return np.round(np.arange(-10, 11) / 10.0, 10)


def check_alphas(alphas: object) -> np.ndarray:
    """``alphas`` as a 1-D float64 array of finite values, or a one-line InputError."""
    arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if arr.ndim != 1 or len(arr) == 0 or not np.isfinite(arr).all():
        raise InputError(f"alphas must be a non-empty list of finite numbers, got {alphas!r}")
    return arr


def _logsumexp_both(s: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise and column-wise logsumexp of a (B, B) logit matrix with ``|s| <= 1/τ``; ``s`` is overwritten."""
    if 2.0 / temperature < _CONSTANT_SHIFT_LIMIT:
        c = 1.0 / temperature  # every logit lies in [-c, c]: exp(s - c) in [e^{-2c}, 1], no overflow/underflow
        s -= c
        np.exp(s, out=s)
        return c + np.log(s.sum(axis=1)), c + np.log(s.sum(axis=0))
    from scipy.special import logsumexp

    return logsumexp(s, axis=1), logsumexp(s, axis=0)


def _shifted_conformity(x: np.ndarray, m: np.ndarray, alpha: float, sq: np.ndarray, xm: np.ndarray, mm: float) -> np.ndarray:
    """Exact conformity of the rows ``u_i = (x_i - α m) / ||x_i - α m||`` without forming them.

    With ``w_i = 1 / ||x_i - α m||`` the sum of the unit rows is ``s = Xᵀw - α m sum(w)``, and
    ``u_j · s = w_j (x_j · s - α m · s)``; conformity is ``(u_j · s - 1) / (n - 1)`` (zero rows: 0
    and left out of ``s``).  Two matrix-vector products instead of an (n, d) temporary.
    """
    norm = np.sqrt(np.maximum(sq - 2 * alpha * xm + alpha * alpha * mm, 0.0))  # ||x_i - α m||, (n,)
    w = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    total = x.T @ w - alpha * w.sum() * m  # sum of the unit rows, (d,)
    dots = w * (x @ total - alpha * float(m @ total))
    return (dots - (norm > 0)) / (len(x) - 1)


def _histogram_kl(p_values: np.ndarray, q_values: np.ndarray, edges: np.ndarray, pseudo_count: float) -> float:
    """``KL(P || Q)`` in nats between two samples binned on ``edges``, each bin given ``pseudo_count`` extra."""
    p = np.histogram(p_values, bins=edges)[0] + pseudo_count
    q = np.histogram(q_values, bins=edges)[0] + pseudo_count
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


@dataclass(frozen=True, repr=False)
class CentroidShiftResult(Result):
    """Symmetric InfoNCE, its alignment and uniformity terms, and the conformity KL, per shift α.

    Attributes
    ----------
    alpha : ndarray of shape (k,)
        Shifts: image rows become ``x_i - α · m_img`` before normalising.
    loss, alignment, uniformity : ndarrays of shape (k,)
        ``loss = alignment + uniformity`` (symmetric CLIP InfoNCE), averaged over batches.
    conformity_kl : ndarray of shape (k,)
        ``KL(image conformity || text conformity)`` in nats.
    image_conformity_mean : ndarray of shape (k,)
        Mean conformity of the shifted image rows.
    text_conformity_mean : float
    temperature : float
    batch_size, n_batches, rows_used : int
        Rows beyond ``n_batches · batch_size`` (the last partial batch) are not used.
    kl_bins : int
    kl_pseudo_count : float
    """

    temperature: float
    batch_size: int
    n_batches: int
    rows_used: int
    n_pairs: int
    kl_bins: int
    kl_pseudo_count: float
    text_conformity_mean: float
    alpha: np.ndarray
    loss: np.ndarray
    alignment: np.ndarray
    uniformity: np.ndarray
    conformity_kl: np.ndarray
    image_conformity_mean: np.ndarray

    _arrays = ()

    @property
    def loss_argmin(self) -> float:
        """The α of the lowest loss."""
        return float(self.alpha[int(np.argmin(self.loss))])

    @property
    def kl_argmin(self) -> float:
        """The α of the lowest conformity KL."""
        return float(self.alpha[int(np.argmin(self.conformity_kl))])

    def _summary(self) -> dict[str, Any]:
        out = super()._summary()
        out["loss_argmin_alpha"] = self.loss_argmin
        out["kl_argmin_alpha"] = self.kl_argmin
        return out

    def to_frame(self):
        """One row per α: ``alpha, loss, alignment, uniformity, conformity_kl, image_conformity_mean``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "alpha": self.alpha,
                "loss": self.loss,
                "alignment": self.alignment,
                "uniformity": self.uniformity,
                "conformity_kl": self.conformity_kl,
                "image_conformity_mean": self.image_conformity_mean,
            }
        )


def centroid_shift(
    img: object,
    txt: object,
    alphas: object = None,
    temperature: float = 0.01,
    *,
    batch_size: int = 1024,
    kl_bins: int = 64,
    kl_pseudo_count: float = 0.5,
) -> CentroidShiftResult:
    """Shift the image ellipsoid along its mean and measure the CLIP loss and the conformity KL.

    Parameters
    ----------
    img, txt : array-like of shape (n, d)
        Matched raw embeddings: row i of ``img`` pairs with row i of ``txt``.
    alphas : sequence of float, optional
        Shifts; default -1.0 to 1.0 in steps of 0.1.
    temperature : float
        τ in ``S_ij = cos(img_i(α), txt_j) / τ`` (CLIP's learned value 0.01).
    batch_size : int
        B; the batch is ``min(n, batch_size)`` pairs.
    kl_bins, kl_pseudo_count : int, float
        Histogram grid and additive smoothing of the conformity KL.

    Returns
    -------
    CentroidShiftResult

    Notes
    -----
    For each α, ``x_i(α) = x_i - α · m`` with ``m`` the raw image mean, then
    unit-normalised; text rows are unit-normalised and left unchanged.  Pairs
    are cut into consecutive batches of B in the given order; within a batch
    ``alignment = -mean_i S_ii`` and ``uniformity = ½(mean_i logsumexp_j S_ij
    + mean_j logsumexp_i S_ij)``; the figures are the plain average over
    batches.  A last partial batch is dropped (unless it is the only one,
    which happens only when n < B, and then B = n), so every batch has the same
    number of negatives; ``rows_used`` says how many pairs took part.

    ``conformity_kl`` compares the exact conformity of all shifted image rows
    (computed exactly in O(n d) per α through the sum of the unit rows) with
    that of all text rows (:func:`clipgeo.analyzers.mean_conformity`): both are binned on
    one grid of ``kl_bins`` equal bins spanning every value at every α (so the
    KL is comparable across α), each bin gets ``kl_pseudo_count`` extra counts
    (additive smoothing, so empty bins stay finite), and
    ``KL(P_img || P_txt) = sum_b p_b log(p_b / q_b)`` in nats.
    """
    a, b = check_pair(img, txt, paired=True)
    temperature = check_positive(temperature, "temperature")
    alpha = default_alphas() if alphas is None else check_alphas(alphas)
    if int(batch_size) < 2:
        raise InputError(f"batch_size must be at least 2, got {batch_size}")
    if int(kl_bins) < 1:
        raise InputError(f"kl_bins must be at least 1, got {kl_bins}")
    n = len(a)
    bsz = min(n, int(batch_size))
    n_batches = n // bsz
    used = n_batches * bsz

    m = a.mean(axis=0)  # (d,) raw image mean
    t = unit_rows(b)  # (n, d)
    sq = np.einsum("ij,ij->i", a, a)  # ||x_i||²
    xm = a @ m  # x_i · m
    mm = float(m @ m)
    tm = t @ m  # t_i · m

    k = len(alpha)
    align = np.zeros(k)
    unif = np.zeros(k)
    for start in range(0, used, bsz):
        rows = slice(start, start + bsz)
        g = a[rows] @ t[rows].T  # (B, B): x_i · t_j
        s = np.empty_like(g)  # (B, B) logits, reused for every α
        for i, al in enumerate(alpha):
            norm = np.sqrt(np.maximum(sq[rows] - 2 * al * xm[rows] + al * al * mm, 0.0))  # ||x_i - α m||
            scale = np.divide(1.0 / temperature, norm, out=np.zeros_like(norm), where=norm > 0)
            np.subtract(g, al * tm[rows][None, :], out=s)
            s *= scale[:, None]  # S_ij = cos(x_i - α m, t_j) / τ
            align[i] += -np.trace(s) / bsz
            lse_rows, lse_cols = _logsumexp_both(s, temperature)
            unif[i] += 0.5 * (lse_rows.mean() + lse_cols.mean())
    align /= n_batches
    unif /= n_batches

    text_conf = mean_conformity(t)
    image_conf = np.empty((k, n))
    for i, al in enumerate(alpha):
        image_conf[i] = _shifted_conformity(a, m, al, sq, xm, mm)
    lo = min(float(image_conf.min()), float(text_conf.min()))
    hi = max(float(image_conf.max()), float(text_conf.max()))
    if hi <= lo:
        hi = lo + 1e-12
    edges = np.linspace(lo, hi, int(kl_bins) + 1)
    kl = np.array([_histogram_kl(image_conf[i], text_conf, edges, kl_pseudo_count) for i in range(k)])

    return CentroidShiftResult(
        temperature=temperature,
        batch_size=bsz,
        n_batches=n_batches,
        rows_used=used,
        n_pairs=n,
        kl_bins=int(kl_bins),
        kl_pseudo_count=float(kl_pseudo_count),
        text_conformity_mean=float(text_conf.mean()),
        alpha=alpha,
        loss=align + unif,
        alignment=align,
        uniformity=unif,
        conformity_kl=kl,
        image_conformity_mean=image_conf.mean(axis=1),
    )


def _uniformity(u: np.ndarray, t: float, chunk_rows: int = 1024) -> float:
    """``log mean_{i<j} exp(-t ||u_i - u_j||²)`` over all distinct pairs, by blocks of the upper triangle."""
    n = len(u)
    sq = np.einsum("ij,ij->i", u, u)
    total = 0.0  # sum over unordered pairs i < j
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        d2 = np.maximum(sq[start:stop, None] + sq[None, start:] - 2 * (u[start:stop] @ u[start:].T), 0.0)  # (r, n - start)
        kernel = np.exp(-t * d2)
        own = kernel[:, : stop - start]
        total += 0.5 * float(own.sum() - np.trace(own)) + float(kernel[:, stop - start :].sum())
    return float(np.log(total / (n * (n - 1) / 2)))


@dataclass(frozen=True, repr=False)
class AlignmentUniformityResult(Result):
    """Wang & Isola's alignment and uniformity on unit vectors.

    Attributes
    ----------
    alignment : float
        ``mean_i ||u_i - v_i||^2`` over matched pairs (lower = better aligned).
    uniformity_image, uniformity_text : float
        ``log mean_{i<j} exp(-2 ||u_i - u_j||²)`` inside each modality (lower = more uniform).
    uniformity : float
        Their average.
    rows_image, rows_text : int
        Rows the uniformity used (a seeded random subset above ``max_rows``).
    """

    n_pairs: int
    alignment: float
    uniformity_image: float
    uniformity_text: float
    uniformity: float
    rows_image: int
    rows_text: int


def alignment_uniformity(
    img: object,
    txt: object,
    *,
    alpha: float = 2.0,
    t: float = 2.0,
    max_rows: int | None = 4096,
    seed: int = 0,
) -> AlignmentUniformityResult:
    """Wang & Isola (2020) alignment and uniformity of matched unit embeddings.

    Parameters
    ----------
    img, txt : array-like of shape (n, d)
        Matched embeddings (normalised here).
    alpha : float
        Exponent of the alignment distance: ``mean ||u_i - v_i||^alpha``.
    t : float
        Uniformity kernel: ``log mean exp(-t ||u - u'||²)``.
    max_rows : int or None
        Uniformity uses every distinct pair of at most this many rows per
        modality (a random subset drawn with ``seed`` above it); None: all rows.
        The sum runs in row chunks, never an n × n matrix for large n.

    Returns
    -------
    AlignmentUniformityResult
    """
    a, b = check_pair(img, txt, paired=True)
    t = check_positive(t, "t")
    u, v = unit_rows(a), unit_rows(b)
    align = float(np.mean(np.linalg.norm(u - v, axis=1) ** alpha))
    rng = np.random.default_rng(seed)

    def subset(x: np.ndarray) -> np.ndarray:
        if max_rows is None or len(x) <= max_rows:
            return x
        return x[np.sort(rng.choice(len(x), size=int(max_rows), replace=False))]

    su, sv = subset(u), subset(v)
    ui, ut = _uniformity(su, t), _uniformity(sv, t)
    return AlignmentUniformityResult(
        n_pairs=len(a),
        alignment=align,
        uniformity_image=ui,
        uniformity_text=ut,
        uniformity=0.5 * (ui + ut),
        rows_image=len(su),
        rows_text=len(sv),
    )
