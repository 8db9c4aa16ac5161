"""Off-diagonal dominance (SPEC §5): the ellipsoids are tilted against the coordinate axes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._blocks import column_mean, float_rows
from ._result import Result


@dataclass(frozen=True, repr=False)
class OffDiagonalDominanceResult(Result):
    """Row-wise off-diagonal dominance of one modality's covariance.

    Attributes
    ----------
    per_feature : ndarray of shape (d,)
        ``odd_k = sum_{j != k} |C_kj| / |C_kk|`` (inf where ``C_kk = 0``).
    median : float
    fraction_above_1 : float
        Fraction of rows with ``odd_k > 1`` (dominated by the off-diagonal).
    covariance : ndarray of shape (d, d)
        C with ddof = 1 (for the heat map).
    """

    dim: int
    median: float
    fraction_above_1: float
    per_feature: np.ndarray
    covariance: np.ndarray

    _arrays = ("covariance",)

    def to_frame(self):
        """One row per feature: ``feature``, ``odd``, ``variance`` (the diagonal of C)."""
        import pandas as pd

        return pd.DataFrame(
            {"feature": np.arange(self.dim), "odd": self.per_feature, "variance": np.diag(self.covariance)}
        )


def off_diagonal_dominance(X: object) -> OffDiagonalDominanceResult:
    """How much each covariance row is dominated by its off-diagonal entries.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Raw embeddings of one modality.

    Returns
    -------
    OffDiagonalDominanceResult

    Notes
    -----
    ``odd_k = sum_{j != k} |C_kj| / |C_kk|`` with ``C = cov(X)``, ddof = 1.
    ``odd_k > 1`` means row k is not diagonally dominant: the ellipsoid's axes
    are not the coordinate axes.  A constant feature (``C_kk = 0``) gets inf
    (or nan when its whole row is zero).
    """
    x = float_rows(X, "X", min_rows=2)
    xc = np.array(x, dtype=np.float64)  # the one full-size copy, centred in place
    xc -= column_mean(x)
    cov = (xc.T @ xc) / (len(x) - 1)  # (d, d)
    del xc
    diag = np.abs(np.diag(cov))
    off = np.abs(cov).sum(axis=1) - diag
    with np.errstate(divide="ignore", invalid="ignore"):
        odd = off / diag
    return OffDiagonalDominanceResult(
        dim=x.shape[1],
        median=float(np.median(odd)),
        fraction_above_1=float((odd > 1).mean()),
        per_feature=odd,
        covariance=cov,
    )
