"""Conformity (SPEC §7): each row's mean cosine to every other row of its modality.

Exact conformity is ``C(x_j) = 1/(N-1) · sum_{k != j} cos(x_j, x_k)``.  Summed
directly it is an O(N² d) job: :func:`pairwise_conformity` does it in row
chunks of float32 matrix products over the upper block triangle (never an
N × N matrix), accumulating the sums in float64.  Because the cosine is linear in each unit vector, the same
numbers also follow in O(N d) from the sum of the unit rows ``s = sum_k u_k``:
``C(x_j) = (u_j · s - ||u_j||²) / (N - 1)`` (:func:`mean_conformity`); the
tests check that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._order import first_distinct
from ..errors import InputError
from ..validation import unit_rows
from ._blocks import column_mean, column_sums, float_rows, row_values, rows64
from ._result import Result

#: bytes of one float32 (rows × N) block of cosines in the chunked sum
DEFAULT_CHUNK_BYTES = 64 << 20
#: above this many rows, ``method="exact"`` switches to the O(N d) identity
DEFAULT_MAX_ROWS = 50_000
#: the three quantities named "conformity" somewhere (SPEC §7): every figure and table says which it shows
ESTIMATORS = {
    "conformity": "exact: 1/(N-1) · sum_{k != j} cos(x_j, x_k)",
    "estimate_raw": "cos(x_j, raw mean of the modality)",
    "estimate_unit": "cos(x_j, mean of the unit rows): what the paper's notebook plots as 'conformity'",
}


def pairwise_conformity(u: np.ndarray, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
    """Exact conformity by summing all pairwise cosines, chunk by chunk.

    Parameters
    ----------
    u : ndarray of shape (n, d)
        Unit rows (n >= 2).
    chunk_bytes : int
        Size of one float32 block of cosines (at most rows × n); the peak extra memory.

    Returns
    -------
    ndarray of shape (n,), float64
        ``1/(n-1) · sum_{k != j} u_j · u_k``.

    Notes
    -----
    The cosine matrix is symmetric, so only its upper block triangle is
    formed: row block ``I`` (r rows) is multiplied with the rows from ``I``
    onwards, ``G = u[I] @ u[I_start:].T`` (a float32 GEMM); its row sums go to
    the rows of ``I`` and its column sums beyond ``I`` to the later rows.  That
    is about ``n² d`` flops -- half of the full product's ``2 n² d``.  Sums are
    accumulated in float64 and each block's own diagonal (the self-cosines as
    computed) is subtracted, so rounding stays ~1e-7.
    """
    n = len(u)
    u32 = np.ascontiguousarray(u, dtype=np.float32)
    rows = int(max(1, min(n, chunk_bytes // (4 * n))))
    out = np.zeros(n, dtype=np.float64)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        block = u32[start:stop] @ u32[start:].T  # (r, n - start): rows of I against rows >= start
        local = np.arange(stop - start)
        out[start:stop] += block.sum(axis=1, dtype=np.float64) - block[local, local].astype(np.float64)
        if stop < n:
            out[stop:] += block[:, stop - start :].sum(axis=0, dtype=np.float64)
        del block
    return out / (n - 1)


def mean_conformity(u: np.ndarray) -> np.ndarray:
    """Exact conformity through the sum of the unit rows, O(n d).

    Parameters
    ----------
    u : ndarray of shape (n, d)
        Unit rows (n >= 2).

    Returns
    -------
    ndarray of shape (n,)
        ``(u_j · sum_k u_k - ||u_j||²) / (n - 1)``, identical to
        :func:`pairwise_conformity` up to rounding.
    """
    total = u.sum(axis=0)
    return (u @ total - np.einsum("ij,ij->i", u, u)) / (len(u) - 1)


def row_conformity(x: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mean_conformity` of the unit rows of ``x[rows]`` (default all), block by block.

    The same numbers as ``mean_conformity(unit_rows(x[rows].astype(np.float64)))`` without forming the
    unit rows (float16/32 rows are widened one block at a time).

    Returns
    -------
    values : ndarray of shape (n,)
        Exact conformity of each row.
    total : ndarray of shape (d,)
        Sum of the unit rows.
    """
    n = len(x) if rows is None else len(rows)
    total = column_sums(x, unit_rows, rows=rows)

    def block(b: np.ndarray) -> np.ndarray:
        u = unit_rows(b)
        return (u @ total - np.einsum("ij,ij->i", u, u)) / (n - 1)

    return row_values(x, block, rows=rows), total


def _cosine_to(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(v)
    return np.divide(x @ v, norms, out=np.zeros(len(x)), where=norms > 0)


def _fit(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """Least-squares ``y ≈ slope · x + intercept`` and Pearson r (nan when x or y is constant)."""
    xc, yc = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(xc @ xc), float(yc @ yc), float(xc @ yc)
    slope = sxy / sxx if sxx > 0 else float("nan")
    intercept = float(y.mean() - slope * x.mean()) if sxx > 0 else float("nan")
    r = sxy / np.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")
    return float(r), slope, intercept


@dataclass(frozen=True, repr=False)
class ConformityResult(Result):
    """Exact conformity of every row, and how well one cosine to the mean predicts it.

    Attributes
    ----------
    method : str
        How ``values`` were computed: ``"exact"`` (chunked pairwise sum) or
        ``"mean"`` (the O(N d) identity; same numbers).
    mean : float
        Mean conformity (= mean pairwise cosine, the "narrow cone").
    pearson, slope, intercept : float
        Fit ``values ≈ slope · estimate + intercept`` (least squares) and the
        Pearson r between them; ``estimate`` uses the raw mean (paper: r = 0.9998).
    unit_pearson, unit_slope, unit_intercept : float
        The same against ``unit_estimate``; exactly linear, with slope
        ``N ||ū|| / (N - 1)`` and intercept ``-1 / (N - 1)``.
    values : ndarray of shape (n,)
        Exact conformity ``C(x_j)``.
    estimate : ndarray of shape (n,)
        ``cos(x_j, m)``, m the raw mean of the modality (``estimate_raw``).
    unit_estimate : ndarray of shape (n,)
        ``cos(x_j, ū)``, ū the mean of the unit rows (``estimate_unit``: what the paper's
        notebook computes and plots under the name "conformity"; higher than the exact value
        by the factor ``(N - 1) / (N ||ū||)`` up to the offset, with the same ranking).

    Notes
    -----
    Names (SPEC §7): ``conformity`` (here ``values``) is always the exact value,
    ``estimate_raw`` and ``estimate_unit`` the two one-cosine estimates.
    """

    n: int
    method: str
    mean: float
    pearson: float
    slope: float
    intercept: float
    unit_pearson: float
    unit_slope: float
    unit_intercept: float
    values: np.ndarray
    estimate: np.ndarray
    unit_estimate: np.ndarray

    _arrays = ("values", "estimate", "unit_estimate")

    @property
    def exact(self) -> np.ndarray:
        """The exact conformity (SPEC §7 name ``conformity``), shape (n,)."""
        return self.values

    @property
    def estimate_raw(self) -> np.ndarray:
        """``cos(x_j, raw mean)``, shape (n,)."""
        return self.estimate

    @property
    def estimate_unit(self) -> np.ndarray:
        """``cos(x_j, mean of the unit rows)``, the paper notebook's "conformity", shape (n,)."""
        return self.unit_estimate

    def _summary(self) -> dict:
        out = super()._summary()
        out["estimators"] = dict(ESTIMATORS)
        out["mean_estimate_raw"] = float(np.mean(self.estimate)) if len(self.estimate) else None
        out["mean_estimate_unit"] = float(np.mean(self.unit_estimate)) if len(self.unit_estimate) else None
        if len(self.unit_estimate) and self.mean:
            # how much higher the notebook's "conformity" reads than the exact value, on average
            out["estimate_unit_excess"] = float(np.mean(self.unit_estimate)) / self.mean - 1.0
        return out

    def extremes(self, k: int = 5, labels: object = None) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the ``k`` highest and the ``k`` lowest conformity values (highest / lowest first).

        Parameters
        ----------
        k : int
        labels : sequence of shape (n,), optional
            Caption, path or id of every row: a row whose label was already listed (an
            exact duplicate, e.g. one image stored once per caption) is skipped.
        """
        order = np.argsort(-self.values, kind="stable")

        def pick(rows: np.ndarray) -> np.ndarray:
            if labels is None:
                return rows[: min(k, len(rows))]
            return first_distinct(rows, labels, k)

        return pick(order), pick(order[::-1])

    def to_frame(self):
        """One row per embedding: ``row``, ``conformity`` (exact), ``estimate_raw``, ``estimate_unit``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "row": np.arange(self.n),
                "conformity": self.values,
                "estimate_raw": self.estimate,
                "estimate_unit": self.unit_estimate,
            }
        )


def conformity(
    X: object,
    method: str = "exact",
    *,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> ConformityResult:
    """Conformity of every row of one modality, and its one-cosine estimates.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Raw embeddings of one modality (n >= 2).
    method : {"exact", "mean"}
        ``"exact"`` sums all pairwise cosines in chunks (O(n² d), float32
        GEMMs, float64 sums; see :func:`pairwise_conformity`).  ``"mean"``
        gets the same numbers from the mean of the unit rows in O(n d) (see
        :func:`mean_conformity`).
    max_rows : int or None
        With ``method="exact"`` and more rows than this, the O(n d) identity is
        used instead (``result.method`` says which ran).  None: no limit.
    chunk_bytes : int
        Memory of one block of cosines in the exact sum.

    Returns
    -------
    ConformityResult

    Notes
    -----
    ``C(x_j) = 1/(N-1) · sum_{k != j} cos(x_j, x_k)``; estimate
    ``ĉ_j = cos(x_j, m)`` with ``m`` the raw mean, fitted as ``C ≈ a ĉ + b``
    by least squares.  A zero row has cosine 0 with everything.
    """
    if method not in ("exact", "mean"):
        raise InputError(f"unknown conformity method {method!r}; use 'exact' or 'mean'")
    x = float_rows(X, "X", min_rows=2)  # float32 rows stay float32: widened block by block
    n = len(x)
    values, total = row_conformity(x)  # the O(n d) identity; total = sum of the unit rows
    used = "mean"
    if method == "exact" and (max_rows is None or n <= max_rows):
        values = pairwise_conformity(unit_rows(rows64(x)), chunk_bytes=chunk_bytes)
        used = "exact"
    m, unit_mean = column_mean(x), total / n  # the raw mean and the mean of the unit rows
    estimate = row_values(x, lambda b: _cosine_to(b, m))
    unit_estimate = row_values(x, lambda b: _cosine_to(unit_rows(b), unit_mean))
    r, a, b = _fit(values, estimate)
    ur, ua, ub = _fit(values, unit_estimate)
    return ConformityResult(
        n=n,
        method=used,
        mean=float(values.mean()),
        pearson=r,
        slope=a,
        intercept=b,
        unit_pearson=ur,
        unit_slope=ua,
        unit_intercept=ub,
        values=values,
        estimate=estimate,
        unit_estimate=unit_estimate,
    )
