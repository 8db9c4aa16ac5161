"""Why the ellipsoids sit off-centre (SPEC §8): contrastive loss under a shift of the image centroid.

The sweep batches the pairs as CLIP trains: every image at most once per
batch, one of its captions drawn per repetition.  Also Wang & Isola's
alignment and uniformity metrics on unit vectors, at every shift and on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import check_count, check_pair_index, check_positive, unit_rows
from ._blocks import float_pair, row_blocks, row_groups, row_values, rows64
from ._conformity import row_conformity
from ._result import Result

#: largest 2/τ for which one constant shift keeps every exp(S - 1/τ) above float64 underflow
_CONSTANT_SHIFT_LIMIT = 600.0
#: how the conformity KL is estimated (stated in the result and the figures)
KL_ESTIMATOR = (
    "KL(P_img || P_txt) in nats between histograms on one shared grid spanning every value at every α, "
    "each bin given kl_pseudo_count extra counts (additive smoothing)"
)


def default_alphas() -> np.ndarray:
    """The SPEC grid: -1.0 to 1.0 in steps of 0.1 (21 values, 0.0 exactly included)."""
    return np.round(np.arange(-10, 11) / 10.0, 10)


def check_alphas(alphas: object, name: str = "alphas") -> np.ndarray:
    """``alphas`` as a sorted 1-D float64 array of at least 2 distinct finite values, or a one-line InputError.

    A sweep needs two points at least: with one there is no curve and no minimum to find.
    """
    try:
        arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of numbers, got {alphas!r}; pass e.g. [-1.0, -0.5, 0.0, 0.5, 1.0]") from None
    if arr.ndim != 1 or len(arr) == 0 or not np.isfinite(arr).all():
        raise InputError(f"{name} must be a non-empty list of finite numbers, got {alphas!r}")
    arr = np.unique(arr)
    if len(arr) < 2:
        raise InputError(
            f"{name} has one point ({arr[0]:g}); a sweep needs at least 2 distinct values, e.g. -1:1:0.1 (the default)"
        )
    return arr


@dataclass(frozen=True)
class _Pairs:
    """Unique images with their captions: what a CLIP batch may hold."""

    images: np.ndarray | None  # (n_img, d) float64 unique image rows with a caption, first-occurrence order
    image_rows: np.ndarray  # (n_img,) row of ``a`` of each of those images
    caption_start: np.ndarray  # (n_img,) start of each image's captions in ``caption_rows``
    caption_count: np.ndarray  # (n_img,)
    caption_rows: np.ndarray  # (n_pairs,) text rows grouped by image
    n_pairs: int
    duplicate_image_rows: int


def _group_pairs(a: np.ndarray, index: np.ndarray, *, images: bool = True) -> _Pairs:
    """Group the text rows by image; bitwise-identical image rows (one image stored once per caption) are one image.

    ``images=False`` leaves ``images`` None (the caller reads ``a[image_rows]`` block by block).
    """
    text_rows = np.flatnonzero(index >= 0)
    used = np.unique(index[text_rows])  # image rows referenced by a caption, sorted
    group, first = row_groups(a, used)  # numbered in order of first appearance
    group_of_row = np.full(len(a), -1, dtype=np.int64)
    group_of_row[used] = group
    groups = group_of_row[index[text_rows]]  # (n_pairs,) image group of each paired text row
    by_group = np.argsort(groups, kind="stable")
    count = np.bincount(groups, minlength=len(first))
    start = np.r_[0, np.cumsum(count)[:-1]]
    image_rows = used[first]
    if not images:
        rows = None
    elif len(image_rows) == len(a) and np.array_equal(image_rows, np.arange(len(a))):
        rows = rows64(a)  # every row, in order: no copy of float64 rows
    else:
        rows = rows64(a, image_rows)
    return _Pairs(
        images=rows,
        image_rows=image_rows,
        caption_start=start,
        caption_count=count,
        caption_rows=text_rows[by_group],
        n_pairs=len(text_rows),
        duplicate_image_rows=int(len(used) - len(first)),
    )


def _batches(n: int, size: int) -> list[slice]:
    """Consecutive batches of ``size`` over ``n`` items; the last partial one is kept (one left over joins the previous)."""
    cuts = list(range(0, n, size)) + [n]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] == 1:  # a batch of one pair has no negative: merge it
        del cuts[-2]
    return [slice(cuts[i], cuts[i + 1]) for i in range(len(cuts) - 1)]


def _logsumexp_both(s: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise and column-wise logsumexp of a (B, B) logit matrix with ``|s| <= 1/τ``; ``s`` is overwritten."""
    if 2.0 / temperature < _CONSTANT_SHIFT_LIMIT:
        c = 1.0 / temperature  # every logit lies in [-c, c]: exp(s - c) in [e^{-2c}, 1], no overflow/underflow
        s -= c
        np.exp(s, out=s)
        return c + np.log(s.sum(axis=1)), c + np.log(s.sum(axis=0))
    from scipy.special import logsumexp

    return logsumexp(s, axis=1), logsumexp(s, axis=0)


def _shifted_conformity(
    x: np.ndarray, m: np.ndarray, alpha: float, sq: np.ndarray, xm: np.ndarray, mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Exact conformity and ``estimate_unit`` of the rows ``u_i = (x_i - α m) / ||x_i - α m||`` without forming them.

    With ``w_i = 1 / ||x_i - α m||`` the sum of the unit rows is ``s = Xᵀw - α m sum(w)``, and
    ``u_j · s = w_j (x_j · s - α m · s)``; conformity is ``(u_j · s - 1) / (n - 1)`` and
    ``estimate_unit = u_j · s / ||s||`` (zero rows: 0 and left out of ``s``).  Two matrix-vector
    products instead of an (n, d) temporary.

    Returns
    -------
    conformity, estimate_unit : ndarrays of shape (n,)
    """
    norm = np.sqrt(np.maximum(sq - 2 * alpha * xm + alpha * alpha * mm, 0.0))  # ||x_i - α m||, (n,)
    w = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
    total = x.T @ w - alpha * w.sum() * m  # sum of the unit rows, (d,)
    dots = w * (x @ total - alpha * float(m @ total))
    size = float(np.linalg.norm(total))
    estimate = dots / size if size > 0 else np.zeros_like(dots)
    return (dots - (norm > 0)) / (len(x) - 1), estimate


def _histogram_kl(p_values: np.ndarray, q_values: np.ndarray, edges: np.ndarray, pseudo_count: float) -> float:
    """``KL(P || Q)`` in nats between two samples binned on ``edges``, each bin given ``pseudo_count`` extra."""
    p = np.histogram(p_values, bins=edges)[0] + pseudo_count
    q = np.histogram(q_values, bins=edges)[0] + pseudo_count
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * np.log(p / q)))


def _kl_curve(image: np.ndarray, text: np.ndarray, bins: int, pseudo_count: float) -> np.ndarray:
    """KL of each row of ``image`` (k, n_i) against ``text`` (n_t,) on one grid spanning all of them."""
    lo = min(float(image.min()), float(text.min()))
    hi = max(float(image.max()), float(text.max()))
    if hi <= lo:
        hi = lo + 1e-12
    edges = np.linspace(lo, hi, bins + 1)
    return np.array([_histogram_kl(row, text, edges, pseudo_count) for row in image])


def kl_bound(n_p: int, n_q: int, bins: int, pseudo_count: float) -> float:
    """Largest value the smoothed histogram KL can take: ``max_b log(p_b / q_b)``.

    All of P in one bin that Q leaves empty gives ``p_b = (n_p + c) / (n_p + K c)`` and
    ``q_b = c / (n_q + K c)``; KL ≤ max log(p_b / q_b).  With c = ½ and n_p = n_q = N
    this is log(2N + 1).
    """
    c, k = float(pseudo_count), int(bins)
    return float(np.log((n_p + c) / (n_p + k * c) * (n_q + k * c) / c))


@dataclass(frozen=True, repr=False)
class CentroidShiftResult(Result):
    """Symmetric InfoNCE, its two terms, Wang & Isola's metrics and the conformity KL, per shift α.

    Attributes
    ----------
    alpha : ndarray of shape (k,)
        Shifts, ascending: image rows become ``x_i - α · m_img`` before normalising.
    loss, alignment, uniformity : ndarrays of shape (k,)
        ``loss = alignment + uniformity`` (symmetric CLIP InfoNCE), batch means weighted by
        batch size, averaged over the repetitions.
    loss_std : ndarray of shape (k,)
        Standard deviation of the loss over the repetitions (ddof = 1; 0 for one repetition):
        the noise of the caption draw and the shuffle.
    wang_isola_alignment : ndarray of shape (k,)
        ``mean ||u_i(α) - v_i||²`` over the drawn pairs.
    wang_isola_uniformity_image : ndarray of shape (k,)
        ``log mean_{i<j} exp(-2 ||u_i(α) - u_j(α)||²)`` over the unique images (at most
        ``uniformity_rows`` of them, a seeded subset).
    wang_isola_uniformity_text : float
        The same for the text rows (does not depend on α).
    conformity_kl : ndarray of shape (k,)
        KL(image ‖ text) of the exact conformity, in nats (see ``kl_estimator``).
    conformity_kl_estimate : ndarray of shape (k,)
        The same KL from ``estimate_unit`` = cos(x, mean of unit rows), the paper notebook's "conformity".
    kl_bound : float
        The largest value these KLs can take (about log(2N+1)); not comparable with the paper's magnitudes.
    image_conformity_mean : ndarray of shape (k,)
        Mean exact conformity of the shifted image rows.
    text_conformity_mean : float
    temperature : float
    batch_size : int
        B = min(n_images, requested batch size).
    batches : int
        Batches per repetition (the last one may be partial).
    repetitions : int
        Caption draws (each with its own shuffle); the curves average them.
    pairs_used : int
        Pairs in one repetition: one per image that has a caption.
    n_pairs : int
        Stored (image, caption) pairs the draws choose from.
    n_images : int
        Unique images with a caption.
    duplicate_image_rows : int
        Image rows merged because they were bitwise copies of another (one image stored once per caption).
    seed, uniformity_rows, kl_bins : int
    kl_pseudo_count : float
    kl_estimator : str
    """

    temperature: float
    batch_size: int
    batches: int
    repetitions: int
    pairs_used: int
    n_pairs: int
    n_images: int
    duplicate_image_rows: int
    seed: int
    uniformity_rows: int
    kl_bins: int
    kl_pseudo_count: float
    kl_bound: float
    kl_estimator: str
    text_conformity_mean: float
    wang_isola_uniformity_text: float
    alpha: np.ndarray
    loss: np.ndarray
    loss_std: np.ndarray
    alignment: np.ndarray
    uniformity: np.ndarray
    wang_isola_alignment: np.ndarray
    wang_isola_uniformity_image: np.ndarray
    conformity_kl: np.ndarray
    conformity_kl_estimate: np.ndarray
    image_conformity_mean: np.ndarray

    _arrays = ()
    #: the per-α curves, in table order
    CURVES = (
        "loss", "loss_std", "alignment", "uniformity", "wang_isola_alignment", "wang_isola_uniformity_image",
        "conformity_kl", "conformity_kl_estimate", "image_conformity_mean",
    )  # fmt: skip

    def argmin(self, curve: str) -> float:
        """The α where ``curve`` (a field name) is lowest."""
        return float(self.alpha[int(np.argmin(getattr(self, curve)))])

    def at_edge(self, curve: str) -> bool:
        """True when ``curve`` is lowest at the first or last α of the grid: a bound, not an optimum."""
        i = int(np.argmin(getattr(self, curve)))
        return i == 0 or i == len(self.alpha) - 1

    @property
    def loss_argmin(self) -> float:
        """The α of the lowest loss."""
        return self.argmin("loss")

    @property
    def kl_argmin(self) -> float:
        """The α of the lowest conformity KL (exact conformity)."""
        return self.argmin("conformity_kl")

    @property
    def reference_index(self) -> int:
        """Index of the α nearest 0 (the data as trained): the curves' changes are taken from there."""
        return int(np.argmin(np.abs(self.alpha)))

    def change(self, curve: str) -> np.ndarray:
        """``curve`` minus its value at the α nearest 0."""
        values = np.asarray(getattr(self, curve), dtype=np.float64)
        return values - values[self.reference_index]

    def _summary(self) -> dict[str, Any]:
        out = super()._summary()
        out["argmin_loss"] = self.loss_argmin
        out["argmin_at_edge"] = self.at_edge("loss")
        for curve in ("conformity_kl", "conformity_kl_estimate", "wang_isola_alignment", "wang_isola_uniformity_image"):
            out[f"argmin_{curve}"] = self.argmin(curve)
            out[f"argmin_{curve}_at_edge"] = self.at_edge(curve)
        out["reference_alpha"] = float(self.alpha[self.reference_index])
        return out

    def to_frame(self):
        """One row per α: ``alpha`` and every curve of :attr:`CURVES`."""
        import pandas as pd

        return pd.DataFrame({"alpha": self.alpha, **{c: getattr(self, c) for c in self.CURVES}})


def _wang_isola_uniformity_curve(
    x: np.ndarray, m: np.ndarray, alphas: np.ndarray, t: float = 2.0, chunk_rows: int = 512
) -> np.ndarray:
    """``log mean_{i<j} exp(-t ||u_i(α) - u_j(α)||²)`` for every α, u the unit rows of ``x - α m``.

    ``u_i · u_j = (x_i · x_j - α (x_i · m + x_j · m) + α² m · m) / (||x_i - α m|| ||x_j - α m||)`` from
    one Gram matrix per block of rows; zero rows (u = 0) enter with their true distance
    ``||u_i - u_j||² = ||u_i||² + ||u_j||² - 2 u_i · u_j``.
    """
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    xm = x @ m
    mm = float(m @ m)
    totals = np.zeros(len(alphas))
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        gram = x[start:stop] @ x[start:].T  # (r, n - start)
        for k, al in enumerate(alphas):
            norm = np.sqrt(np.maximum(sq - 2 * al * xm + al * al * mm, 0.0))
            w = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 0)
            present = (norm > 0).astype(np.float64)
            dot = (gram - al * (xm[start:stop, None] + xm[None, start:]) + al * al * mm) * w[start:stop, None] * w[None, start:]
            d2 = np.maximum(present[start:stop, None] + present[None, start:] - 2 * dot, 0.0)
            kernel = np.exp(-t * d2)
            own = kernel[:, : stop - start]
            totals[k] += 0.5 * float(own.sum() - np.trace(own)) + float(kernel[:, stop - start :].sum())
    return np.log(totals / (n * (n - 1) / 2))


def centroid_shift(
    img: object,
    txt: object,
    alphas: object = None,
    temperature: float = 0.01,
    *,
    image_index: object = None,
    batch_size: int = 1024,
    repetitions: int = 5,
    seed: int = 0,
    kl_bins: int = 64,
    kl_pseudo_count: float = 0.5,
    uniformity_rows: int = 2048,
) -> CentroidShiftResult:
    """Shift the image ellipsoid along its mean and measure the CLIP loss, its terms and the conformity KL.

    Parameters
    ----------
    img : array-like of shape (n_image, d)
        Raw image embeddings.
    txt : array-like of shape (n_text, d)
        Raw text embeddings.
    alphas : sequence of float, optional
        Shifts, at least 2 distinct values (sorted here); default -1.0 to 1.0 in steps of 0.1.
    temperature : float
        τ in ``S_ij = cos(img_i(α), txt_j) / τ`` (CLIP's learned value 0.01).
    image_index : array-like of int, shape (n_text,), optional
        Image row that each text row describes (-1: none), as the store's
        ``text_image_index``.  Default: row i of ``img`` with row i of ``txt``.
    batch_size : int
        Requested B; the batch is ``min(n_images, batch_size)`` pairs.
    repetitions : int
        Caption draws, each with its own shuffle; the curves are their mean.
    seed : int
        Seed of the draws, the shuffles and the uniformity subset.
    kl_bins, kl_pseudo_count : int, float
        Histogram grid and additive smoothing of the conformity KL.
    uniformity_rows : int
        Image rows (a seeded subset above it) of the Wang & Isola uniformity at every α.

    Returns
    -------
    CentroidShiftResult

    Notes
    -----
    Batches are built as CLIP trains (SPEC §8): a batch never holds one image
    twice.  Image rows that are bitwise copies of each other (a dump that
    stores the image once per caption) are one image.  Each repetition draws
    one caption per image (seeded), shuffles the pairs (seeded) and cuts them
    into batches of B; a last partial batch is kept (a single pair left over
    joins the previous batch, since a batch of one has no negative), and the
    batch means are weighted by batch size.  ``m_img`` is the mean of the
    unique image rows.

    For each α, ``x_i(α) = x_i - α · m_img``, then unit-normalised; text rows
    are unit-normalised and left unchanged.  Within a batch ``alignment =
    -mean_i S_ii`` and ``uniformity = ½(mean_i logsumexp_j S_ij + mean_j
    logsumexp_i S_ij)``.  Wang & Isola: ``alignment = mean ||u_i - v_i||²`` over
    the drawn pairs, image ``uniformity = log mean_{i<j} exp(-2 ||u_i - u_j||²)``.

    ``conformity_kl`` compares the exact conformity of the shifted unique
    image rows (exact in O(n d) per α through the sum of the unit rows) with
    that of the paired text rows; ``conformity_kl_estimate`` does the same
    with ``estimate_unit`` = cos(x, mean of unit rows).  Each is binned on one
    grid of ``kl_bins`` equal bins spanning every value at every α (so it is
    comparable across α), each bin gets ``kl_pseudo_count`` extra counts, and
    ``KL(P_img || P_txt) = sum_b p_b log(p_b / q_b)`` in nats.  Such a KL is
    bounded by ``kl_bound`` (about log(2N + 1)), so its magnitude is not
    comparable with the paper's curve.
    """
    a, b = float_pair(img, txt, min_rows=2)  # float32 rows stay float32: text rows widened block by block
    temperature = check_positive(temperature, "temperature")
    alpha = default_alphas() if alphas is None else check_alphas(alphas)
    batch_size = check_count(batch_size, "batch_size", minimum=2)
    repetitions = check_count(repetitions, "repetitions", minimum=1)
    kl_bins = check_count(kl_bins, "kl_bins", minimum=1)
    uniformity_rows = check_count(uniformity_rows, "uniformity_rows", minimum=2)
    kl_pseudo_count = check_positive(kl_pseudo_count, "kl_pseudo_count")
    index = check_pair_index(image_index, "image_index", n_image=len(a), n_text=len(b))
    pairs = _group_pairs(a, index)
    n_img = len(pairs.images)
    if n_img < 2:
        raise InputError(
            f"the pairs hold {n_img} distinct image(s); the centroid shift needs at least 2 images with a caption"
        )
    x = pairs.images  # (n_img, d) unique raw image rows, float64
    m = x.mean(axis=0)  # (d,) raw image mean over unique images
    sq = np.einsum("ij,ij->i", x, x)  # ||x_i||²
    xm = x @ m  # x_i · m
    mm = float(m @ m)
    # the unit text rows t_j are formed block by block, never all at once
    tm = row_values(b, lambda blk: unit_rows(blk) @ m)  # t_j · m

    def present(blk: np.ndarray) -> np.ndarray:  # 1 for a unit row, 0 for a zero row
        t = unit_rows(blk)
        return np.einsum("ij,ij->i", t, t) > 0.5

    t_present = row_values(b, present)
    bsz = min(n_img, batch_size)
    batches = _batches(n_img, bsz)

    k = len(alpha)
    rng = np.random.default_rng(seed)
    align = np.zeros((repetitions, k))
    unif = np.zeros((repetitions, k))
    wi_align = np.zeros((repetitions, k))
    for r in range(repetitions):
        pick = pairs.caption_start + np.floor(rng.random(n_img) * pairs.caption_count).astype(np.int64)
        caption = pairs.caption_rows[pick]  # (n_img,) one text row per image
        order = rng.permutation(n_img)
        for batch in batches:
            rows_i, rows_t = order[batch], caption[order[batch]]
            g = x[rows_i] @ unit_rows(rows64(b, rows_t)).T  # (B, B): x_i · t_j
            s = np.empty_like(g)  # (B, B) logits, reused for every α
            for i, al in enumerate(alpha):
                norm = np.sqrt(np.maximum(sq[rows_i] - 2 * al * xm[rows_i] + al * al * mm, 0.0))  # ||x_i - α m||
                scale = np.divide(1.0 / temperature, norm, out=np.zeros_like(norm), where=norm > 0)
                np.subtract(g, al * tm[rows_t][None, :], out=s)
                s *= scale[:, None]  # S_ij = cos(x_i - α m, t_j) / τ
                diag = np.diag(s).copy()
                align[r, i] -= diag.sum()
                # ||u - v||² = ||u||² + ||v||² - 2 cos (a zero row has ||u||² = 0)
                wi_align[r, i] += float(np.sum((norm > 0) + t_present[rows_t] - 2 * temperature * diag))
                lse_rows, lse_cols = _logsumexp_both(s, temperature)
                unif[r, i] += 0.5 * (lse_rows.sum() + lse_cols.sum())
    # sums over every pair of every batch / pairs: the batch means weighted by batch size
    align /= n_img
    unif /= n_img
    wi_align /= n_img
    loss_reps = align + unif
    loss_std = loss_reps.std(axis=0, ddof=1) if repetitions > 1 else np.zeros(k)

    sub = x if n_img <= uniformity_rows else x[np.sort(rng.choice(n_img, size=uniformity_rows, replace=False))]
    wi_unif = _wang_isola_uniformity_curve(sub, m, alpha)
    paired_text = np.unique(pairs.caption_rows)  # the unit rows t of these text rows enter below
    n_t = len(paired_text)
    t_sub = paired_text if n_t <= uniformity_rows else paired_text[np.sort(rng.choice(n_t, size=uniformity_rows, replace=False))]
    t_sub = unit_rows(rows64(b, t_sub))
    wi_unif_text = float(_wang_isola_uniformity_curve(t_sub, np.zeros(b.shape[1]), np.zeros(1))[0])

    text_conf, text_total = row_conformity(b, paired_text)
    text_mean_unit = text_total / n_t
    text_norm = max(float(np.linalg.norm(text_mean_unit)), 1e-300)
    text_est = row_values(b, lambda blk: unit_rows(blk) @ text_mean_unit, rows=paired_text) / text_norm
    image_conf = np.empty((k, n_img))
    image_est = np.empty((k, n_img))
    for i, al in enumerate(alpha):
        image_conf[i], image_est[i] = _shifted_conformity(x, m, al, sq, xm, mm)
    kl = _kl_curve(image_conf, text_conf, kl_bins, kl_pseudo_count)
    kl_est = _kl_curve(image_est, text_est, kl_bins, kl_pseudo_count)

    return CentroidShiftResult(
        temperature=temperature,
        batch_size=bsz,
        batches=len(batches),
        repetitions=repetitions,
        pairs_used=n_img,
        n_pairs=pairs.n_pairs,
        n_images=n_img,
        duplicate_image_rows=pairs.duplicate_image_rows,
        seed=int(seed),
        uniformity_rows=len(sub),
        kl_bins=kl_bins,
        kl_pseudo_count=kl_pseudo_count,
        kl_bound=kl_bound(n_img, n_t, kl_bins, kl_pseudo_count),
        kl_estimator=KL_ESTIMATOR,
        text_conformity_mean=float(text_conf.mean()),
        wang_isola_uniformity_text=wi_unif_text,
        alpha=alpha,
        loss=loss_reps.mean(axis=0),
        loss_std=loss_std,
        alignment=align.mean(axis=0),
        uniformity=unif.mean(axis=0),
        wang_isola_alignment=wi_align.mean(axis=0),
        wang_isola_uniformity_image=wi_unif,
        conformity_kl=kl,
        conformity_kl_estimate=kl_est,
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
    a, b = float_pair(img, txt, paired=True)  # float32 rows stay float32: widened block by block

    def distance(block: np.ndarray, rows: slice) -> np.ndarray:
        u = unit_rows(block)
        u -= unit_rows(rows64(b, rows))
        return np.linalg.norm(u, axis=1)

    t = check_positive(t, "t")
    dist = np.concatenate([distance(rows64(a, sl), sl) for sl in row_blocks(len(a))])
    align = float(np.mean(dist**alpha))
    rng = np.random.default_rng(seed)

    def subset(x: np.ndarray) -> np.ndarray:
        if max_rows is None or len(x) <= max_rows:
            return unit_rows(rows64(x))
        return unit_rows(rows64(x, np.sort(rng.choice(len(x), size=int(max_rows), replace=False))))

    su, sv = subset(a), subset(b)
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
