"""Mergeable sufficient statistics of embedding rows (pure numpy, float64).

Every accumulator here is built from one batch of rows (``from_batch``), merged
with another one exactly (``merge``: Chan, Golub & LeVeque's pairwise update of
means and centred second moments, so the merge order changes only rounding),
and turned into the moments the analyzers define.  A store is summarised in
two passes over its shards:

* pass 1 -- :class:`ModalityMoments`: count, mean and centred scatter of the
  raw rows ``x`` and of the unit rows ``u = x / ||x||``, moments of ``||x||``,
  per-feature min / max (the histogram grid);
* pass 2 -- with the merged pass-1 means: :class:`CentredMoments` (moments of
  ``||x - m||``, the conformity of every row through the unit-sum identity and
  its two one-cosine estimates, with their cross-moments), :class:`PairSums`
  over matched pairs, and :class:`~clipgeo.stream._histogram.FeatureHistograms`.

Nothing here reads files or knows about an engine: the arrays in are numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class Scratch:
    """Float64 work arrays reused from batch to batch, one per name.

    A fresh (n, d) array per batch costs its page faults every time (Dask's workers hand freed memory back to
    the system at once); a reused one is faulted in once.  ``take`` returns the first ``n`` rows of the named
    array, growing it when a batch is larger.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None or a.dtype != np.dtype(dtype) or a.shape[1:] != tuple(shape[1:]) or len(a) < shape[0]:
            a = self._arrays[name] = np.empty(shape, dtype)
        return a[:shape[0]]


def widen(x: np.ndarray, scratch: Scratch | None = None, name: str = "x") -> np.ndarray:
    """A float64 copy of ``x`` (n, d): into ``scratch``'s array ``name`` when given, else a new array."""
    if scratch is None:
        return np.array(x, dtype=np.float64)
    out = scratch.take(name, x.shape)
    np.copyto(out, x)
    return out


def _chan(n_a: int, mean_a: np.ndarray, m2_a: np.ndarray, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray):
    """Pairwise merge of (count, mean, centred second moment); ``m2`` may be a scalar, vector or matrix."""
    n = n_a + n_b
    if n_a == 0:
        return n_b, mean_b.copy(), np.array(m2_b, dtype=np.float64, copy=True)
    if n_b == 0:
        return n_a, mean_a.copy(), np.array(m2_a, dtype=np.float64, copy=True)
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    factor = n_a * n_b / n
    if np.ndim(m2_a) == 2:
        m2 = m2_a + m2_b + np.outer(delta, delta) * factor
    else:
        m2 = m2_a + m2_b + delta * delta * factor
    return n, mean, m2


@dataclass
class Moments1D:
    """Count, mean and centred second moment of one scalar per row (Welford/Chan), float64."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def from_values(cls, values: np.ndarray) -> Moments1D:
        v = np.asarray(values, dtype=np.float64)
        if len(v) == 0:
            return cls()
        mean = float(v.mean())
        return cls(len(v), mean, float(((v - mean) ** 2).sum()))

    def merge(self, other: Moments1D) -> Moments1D:
        n, mean, m2 = _chan(self.n, np.float64(self.mean), np.float64(self.m2), other.n, np.float64(other.mean),
                            np.float64(other.m2))
        return Moments1D(int(n), float(mean), float(m2))

    @property
    def std(self) -> float:
        """Standard deviation with ddof = 1 (nan for fewer than 2 values)."""
        return float(np.sqrt(self.m2 / (self.n - 1))) if self.n > 1 else float("nan")


@dataclass
class Comoments:
    """Count, means, centred second moments and the cross-moment of a pair of scalars per row.

    ``sxx = Σ (x - x̄)²``, ``syy``, ``sxy = Σ (x - x̄)(y - ȳ)``: what a least-squares line ``y ≈ a x + b``
    and Pearson's r need.
    """

    n: int = 0
    mean_x: float = 0.0
    mean_y: float = 0.0
    sxx: float = 0.0
    syy: float = 0.0
    sxy: float = 0.0

    @classmethod
    def from_values(cls, x: np.ndarray, y: np.ndarray) -> Comoments:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(x) == 0:
            return cls()
        mx, my = float(x.mean()), float(y.mean())
        xc, yc = x - mx, y - my
        return cls(len(x), mx, my, float(xc @ xc), float(yc @ yc), float(xc @ yc))

    def merge(self, other: Comoments) -> Comoments:
        if self.n == 0:
            return Comoments(**vars(other))
        if other.n == 0:
            return Comoments(**vars(self))
        n = self.n + other.n
        dx, dy = other.mean_x - self.mean_x, other.mean_y - self.mean_y
        f = self.n * other.n / n
        return Comoments(
            n=n,
            mean_x=self.mean_x + dx * other.n / n,
            mean_y=self.mean_y + dy * other.n / n,
            sxx=self.sxx + other.sxx + dx * dx * f,
            syy=self.syy + other.syy + dy * dy * f,
            sxy=self.sxy + other.sxy + dx * dy * f,
        )

    def fit(self) -> tuple[float, float, float]:
        """Pearson r, slope and intercept of ``y ≈ slope · x + intercept`` (nan when x or y is constant).

        The same numbers as the in-memory conformity fit, from the merged moments.
        """
        slope = self.sxy / self.sxx if self.sxx > 0 else float("nan")
        intercept = self.mean_y - slope * self.mean_x if self.sxx > 0 else float("nan")
        r = self.sxy / np.sqrt(self.sxx * self.syy) if self.sxx > 0 and self.syy > 0 else float("nan")
        return float(r), float(slope), float(intercept)


@dataclass
class ModalityMoments:
    """First-pass statistics of one modality.

    Attributes
    ----------
    n : int
    mean : ndarray of shape (d,)
        Mean of the raw rows.
    scatter : ndarray of shape (d, d)
        ``Σ (x - mean)(x - mean)ᵀ``; the covariance (ddof = 1) is ``scatter / (n - 1)``.
    unit_mean : ndarray of shape (d,)
        Mean of the unit rows ``u = x / ||x||`` (a zero row counts as zero).
    unit_scatter : ndarray of shape (d, d) or None
        ``Σ (u - unit_mean)(u - unit_mean)ᵀ`` (the unit rows' covariance times n - 1); None when not
        accumulated (``from_batch(x, unit_covariance=False)``: nothing in a report needs it, and it doubles
        the cost of the first pass).
    unit_sq : float
        ``Σ ||u||²`` (the number of non-zero rows, as summed).
    norm : Moments1D
        Moments of ``||x||``.
    minimum, maximum : ndarray of shape (d,)
        Per-feature extremes: the grid of the second pass's histograms.
    norm_min, norm_max : float
        Smallest and largest ``||x||`` (are the rows unit-norm?).
    """

    n: int
    mean: np.ndarray
    scatter: np.ndarray
    unit_mean: np.ndarray
    unit_scatter: np.ndarray | None
    unit_sq: float
    norm: Moments1D
    minimum: np.ndarray
    maximum: np.ndarray
    norm_min: float = np.inf
    norm_max: float = -np.inf

    @classmethod
    def empty(cls, dim: int, *, unit_covariance: bool = True) -> ModalityMoments:
        z = np.zeros(dim)
        return cls(0, z, np.zeros((dim, dim)), z.copy(), np.zeros((dim, dim)) if unit_covariance else None, 0.0,
                   Moments1D(), np.full(dim, np.inf), np.full(dim, -np.inf))

    @classmethod
    def from_batch(cls, x: np.ndarray, *, unit_covariance: bool = True, scratch: Scratch | None = None) -> ModalityMoments:
        """Statistics of one batch of raw rows, shape (n, d), any float dtype (summed in float64).

        One float64 copy of the batch (into ``scratch`` when given), centred in place; the unit rows are
        materialised only for ``unit_covariance`` (their mean is ``Σ x_k / ||x_k||``, one matrix-vector product).
        """
        x = widen(x, scratch)  # always a copy: centred in place below
        n, d = x.shape
        if n == 0:
            return cls.empty(d, unit_covariance=unit_covariance)
        sq = np.einsum("ij,ij->i", x, x)
        norms = np.sqrt(sq)
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)  # a zero row's unit row is 0
        if unit_covariance:
            u = x * inv[:, None]
            unit_mean = u.mean(axis=0)
            u -= unit_mean
            unit_scatter = u.T @ u
            del u
        else:
            unit_mean = (inv @ x) / n
            unit_scatter = None
        mean = x.mean(axis=0)
        minimum, maximum = x.min(axis=0), x.max(axis=0)
        x -= mean
        scatter = x.T @ x
        return cls(
            n=n,
            mean=mean,
            scatter=scatter,
            unit_mean=unit_mean,
            unit_scatter=unit_scatter,
            unit_sq=float(sq @ (inv * inv)),
            norm=Moments1D.from_values(norms),
            minimum=minimum,
            maximum=maximum,
            norm_min=float(norms.min()),
            norm_max=float(norms.max()),
        )

    def merge(self, other: ModalityMoments) -> ModalityMoments:
        n, mean, scatter = _chan(self.n, self.mean, self.scatter, other.n, other.mean, other.scatter)
        if self.unit_scatter is None or other.unit_scatter is None:
            _, unit_mean, _ = _chan(self.n, self.unit_mean, np.float64(0), other.n, other.unit_mean, np.float64(0))
            unit_scatter = None
        else:
            _, unit_mean, unit_scatter = _chan(self.n, self.unit_mean, self.unit_scatter, other.n, other.unit_mean,
                                               other.unit_scatter)
        return ModalityMoments(
            n=int(n),
            mean=mean,
            scatter=scatter,
            unit_mean=unit_mean,
            unit_scatter=unit_scatter,
            unit_sq=self.unit_sq + other.unit_sq,
            norm=self.norm.merge(other.norm),
            minimum=np.minimum(self.minimum, other.minimum),
            maximum=np.maximum(self.maximum, other.maximum),
            norm_min=min(self.norm_min, other.norm_min),
            norm_max=max(self.norm_max, other.norm_max),
        )

    @property
    def dim(self) -> int:
        return len(self.mean)

    @property
    def covariance(self) -> np.ndarray:
        """C with ddof = 1, shape (d, d)."""
        return self.scatter / (self.n - 1)

    @property
    def variance(self) -> np.ndarray:
        """diag C (ddof = 1), shape (d,)."""
        return np.diag(self.scatter) / (self.n - 1)

    @property
    def unit_sum(self) -> np.ndarray:
        """``s = Σ_k u_k``, shape (d,)."""
        return self.unit_mean * self.n

    @property
    def cone(self) -> float:
        """Mean cosine over ordered pairs j != k: ``(||Σu||² - Σ||u||²) / (n (n - 1))`` (SPEC §1, §7)."""
        s = self.unit_sum
        return float((s @ s - self.unit_sq) / (self.n * (self.n - 1)))


def conformity_terms(x: np.ndarray, first: ModalityMoments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact conformity and its two one-cosine estimates for a batch, from the merged first pass.

    Parameters
    ----------
    x : ndarray of shape (n, d)
        Raw rows of the modality that ``first`` summarises.
    first : ModalityMoments
        The merged first pass over *all* rows of that modality (N rows).

    Returns
    -------
    conformity : ndarray of shape (n,)
        ``C(x_j) = (u_j · s - ||u_j||²) / (N - 1)``, s the sum of all N unit rows: the mean cosine to every
        other row (SPEC §7, the unit-sum identity).
    estimate_raw : ndarray of shape (n,)
        ``cos(x_j, m)``, m the raw mean.
    estimate_unit : ndarray of shape (n,)
        ``cos(u_j, ū)``, ū the mean of the unit rows.
    """
    x = np.asarray(x, dtype=np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    norms = np.sqrt(sq)
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    # u_j · v = (x_j · v) / ||x_j||: one (n, 3) product instead of the unit rows
    dots = x @ np.stack([first.unit_sum, first.mean, first.unit_mean], axis=1)
    unit_sq = sq * inv * inv  # ||u_j||² (1, or 0 for a zero row)
    values = (dots[:, 0] * inv - unit_sq) / (first.n - 1)

    def cos_to(dot: np.ndarray, row_norms: np.ndarray, v: np.ndarray) -> np.ndarray:
        denom = row_norms * np.linalg.norm(v)
        return np.divide(dot, denom, out=np.zeros(len(dot)), where=denom > 0)

    return values, cos_to(dots[:, 1], norms, first.mean), cos_to(dots[:, 2] * inv, np.sqrt(unit_sq), first.unit_mean)


@dataclass
class CentredMoments:
    """Second-pass statistics of one modality (they need the merged first pass).

    Attributes
    ----------
    centered_norm : Moments1D
        Moments of ``||x - m||``.
    conformity_raw : Comoments
        x = ``cos(x_j, m)`` (estimate_raw), y = the exact conformity ``C(x_j)``.
    conformity_unit : Comoments
        x = ``cos(u_j, ū)`` (estimate_unit), y = ``C(x_j)``.
    """

    centered_norm: Moments1D
    conformity_raw: Comoments
    conformity_unit: Comoments

    @classmethod
    def empty(cls) -> CentredMoments:
        return cls(Moments1D(), Comoments(), Comoments())

    @classmethod
    def from_batch(cls, x: np.ndarray, first: ModalityMoments) -> CentredMoments:
        return cls.from_batch_with_values(x, first)[0]

    @classmethod
    def from_batch_with_values(cls, x: np.ndarray, first: ModalityMoments, *,
                               overwrite: bool = False) -> tuple[CentredMoments, np.ndarray]:
        """The statistics of a batch and the exact conformity of its rows, shape (n,).

        ``overwrite=True`` lets a float64 ``x`` be centred in place (the caller's copy is spent), instead of
        centring a new copy.
        """
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return cls.empty(), np.empty(0)
        values, est_raw, est_unit = conformity_terms(x, first)
        if overwrite:
            x -= first.mean
            xc = x
        else:
            xc = x - first.mean
        centred = np.sqrt(np.einsum("ij,ij->i", xc, xc))
        del xc
        return cls(Moments1D.from_values(centred), Comoments.from_values(est_raw, values),
                   Comoments.from_values(est_unit, values)), values

    def merge(self, other: CentredMoments) -> CentredMoments:
        return CentredMoments(
            self.centered_norm.merge(other.centered_norm),
            self.conformity_raw.merge(other.conformity_raw),
            self.conformity_unit.merge(other.conformity_unit),
        )


@dataclass
class PairSums:
    """Sums over matched pairs (image row i, text row i) of their unit rows.

    Attributes
    ----------
    n : int
        Matched pairs.
    cosine : float
        ``Σ cos(u_i, v_i)``.
    distance : float
        ``Σ ||u_i - v_i||`` (for L2I, SPEC §12).
    squared_distance : float
        ``Σ ||u_i - v_i||²`` (Wang & Isola's alignment, SPEC §8).
    """

    n: int = 0
    cosine: float = 0.0
    distance: float = 0.0
    squared_distance: float = 0.0

    @classmethod
    def from_batch(cls, img: np.ndarray, txt: np.ndarray, *, scratch: Scratch | None = None) -> PairSums:
        """Sums of one batch of matched rows, ``img`` and ``txt`` of shape (n, d), any float dtype.

        Neither input is changed; the unit rows and their difference are built in ``scratch`` when given.
        """
        if len(img) == 0:
            return cls()
        u, v = widen(img, scratch, "pair_u"), widen(txt, scratch, "pair_v")  # own copies, scaled in place
        for w in (u, v):
            norms = np.sqrt(np.einsum("ij,ij->i", w, w))
            w *= np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)[:, None]  # zero row -> zero
        cosine = float(np.einsum("ij,ij->", u, v))
        u -= v
        sq = np.einsum("ij,ij->i", u, u)
        return cls(len(u), cosine, float(np.sqrt(sq).sum()), float(sq.sum()))

    def merge(self, other: PairSums) -> PairSums:
        return PairSums(self.n + other.n, self.cosine + other.cosine, self.distance + other.distance,
                        self.squared_distance + other.squared_distance)


def accumulate(batches, fn, merge=None):
    """Fold ``fn(batch)`` over an iterable of batches with ``.merge`` (None when there are none)."""
    total = None
    for batch in batches:
        part = fn(batch)
        total = part if total is None else total.merge(part)
    return total


def tree_merge(parts: list):
    """Merge a list of accumulators pairwise, level by level (the order a distributed reduction uses)."""
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    while len(parts) > 1:
        parts = [parts[i].merge(parts[i + 1]) if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
    return parts[0]
