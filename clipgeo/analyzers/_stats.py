"""Small correlation helpers shared by the SPEC §12 analyzers (NaN when a side is constant)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Pearson r of ``x`` and ``y`` (optionally with row weights ``w``); NaN when either is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if w is None:
        xc, yc = x - x.mean(), y - y.mean()
        sxx, syy, sxy = float(xc @ xc), float(yc @ yc), float(xc @ yc)
    else:
        total = w.sum()
        xc, yc = x - (w @ x) / total, y - (w @ y) / total
        sxx, syy, sxy = float(w @ (xc * xc)), float(w @ (yc * yc)), float(w @ (xc * yc))
    if not (sxx > 0 and syy > 0):
        return float("nan")
    return float(sxy / np.sqrt(sxx * syy))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    if len(x) < 2:
        return float("nan")
    return pearson(rankdata(x), rankdata(y))


def equal_count_bins(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index 0 … n_bins-1 of each value: equal-count bins of the sorted values (ties split by row order).

    Bin 0 holds the lowest values.  With fewer values than bins some bins stay empty.
    """
    n = len(values)
    order = np.argsort(values, kind="stable")
    bins = np.empty(n, dtype=np.int64)
    bins[order] = (np.arange(n) * n_bins) // max(n, 1)
    return bins
