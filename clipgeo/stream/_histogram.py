"""Per-feature histograms on a fixed grid: threshold accuracy and ROC AUC with a stated error bound.

SPEC §2's single-feature ``threshold_accuracy`` and ``auc`` need the rows sorted
per feature -- impossible in one bounded pass.  On a fixed grid (``bins`` equal
bins per feature between the pooled minimum and maximum of the first pass) the
two modalities' counts are summed shard by shard (mergeable: counts add), and:

* **threshold accuracy** is scanned over the cuts at bin edges.  Such a cut is a
  real threshold rule on the values (bin membership is monotone in the value),
  so the result is achievable, hence never above the exact in-sample optimum;
  and moving the exact optimum's cut to the nearer edge of its bin loses at most
  ``½ min(p_img(b), p_txt(b))`` balanced accuracy (``p(b)``: the fraction of a
  modality's rows in bin b).  So

      hist ≤ exact ≤ hist + ½ max_b min(p_img(b), p_txt(b))   (``accuracy_bound``)

* **AUC** counts an (image, text) pair in the same bin as one half, so

      |exact − hist| ≤ ½ Σ_b p_img(b) p_txt(b)                  (``auc_bound``)

Both bounds are computed from the counts themselves, per feature, and written
beside the values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: bins per feature of the streamed histograms
DEFAULT_BINS = 2048
#: features binned together in :meth:`FeatureHistograms.add` (their float32 block stays in cache)
FEATURE_BLOCK = 64


@dataclass
class FeatureHistograms:
    """Counts of one modality's rows per (feature, bin) on a shared grid.

    Attributes
    ----------
    lo, hi : ndarray of shape (d,)
        Grid: bin b of feature k covers ``[lo_k + b w_k, lo_k + (b + 1) w_k)``, ``w_k = (hi_k - lo_k) / bins``;
        values at ``hi_k`` fall in the last bin.
    counts : ndarray of int64, shape (d, bins)
    """

    lo: np.ndarray
    hi: np.ndarray
    counts: np.ndarray

    @property
    def bins(self) -> int:
        return self.counts.shape[1]

    @property
    def n(self) -> int:
        return int(self.counts[0].sum()) if len(self.counts) else 0

    @classmethod
    def empty(cls, lo: np.ndarray, hi: np.ndarray, bins: int = DEFAULT_BINS) -> FeatureHistograms:
        return cls(np.asarray(lo, np.float64), np.asarray(hi, np.float64), np.zeros((len(lo), int(bins)), np.int64))

    def _grid32(self) -> tuple[np.ndarray, np.ndarray]:
        lo = self.lo.astype(np.float32)
        width = self.hi - self.lo
        scale = np.divide(self.bins, width, out=np.zeros_like(width), where=width > 0).astype(np.float32)
        return lo, scale

    def bin_index(self, x: np.ndarray) -> np.ndarray:
        """Bin of every value of ``x`` (n, d) -> int32 (n, d), clipped to the grid.

        One float32 formula, monotone in the value, for every row: so "bin ≥ b" is a threshold rule
        ``x ≥ t_b`` (what the accuracy bound needs), whatever the batch.
        """
        return self._index(x, np.int32)

    def _index(self, x: np.ndarray, dtype, first: int = 0) -> np.ndarray:
        """Bins of ``x`` (n, k): the columns are features ``first … first + k - 1`` of the grid."""
        lo, scale = self._grid32()
        cols = slice(first, first + x.shape[1])
        idx = np.asarray(x, dtype=np.float32) - lo[cols]  # (n, k)
        idx *= scale[cols]
        np.clip(idx, 0, self.bins - 1, out=idx)
        return idx.astype(dtype)  # truncation = floor on [0, bins - 1]

    def add(self, x: np.ndarray) -> FeatureHistograms:
        """Count the rows of ``x`` (n, d) in place; returns self.

        The bins are :meth:`bin_index`'s, computed for :data:`FEATURE_BLOCK` features at a time: each block's
        indices are transposed while they are cache-resident (one transpose of the whole (n, d) index matrix
        cost more than the binning), then each feature's counts are one small ``bincount``.
        """
        x = np.asarray(x)
        n, d = x.shape
        if n == 0:
            return self
        small = np.int16 if self.bins <= np.iinfo(np.int16).max + 1 else np.int32  # halves the transpose
        for j in range(0, d, FEATURE_BLOCK):
            idx = np.ascontiguousarray(self._index(x[:, j:j + FEATURE_BLOCK], small, j).T)  # (k, n)
            for q in range(len(idx)):
                self.counts[j + q] += np.bincount(idx[q], minlength=self.bins)
        return self

    @classmethod
    def from_batch(cls, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, bins: int = DEFAULT_BINS) -> FeatureHistograms:
        return cls.empty(lo, hi, bins).add(x)

    def merge(self, other: FeatureHistograms) -> FeatureHistograms:
        if not (np.array_equal(self.lo, other.lo) and np.array_equal(self.hi, other.hi)):
            raise ValueError("histograms on different grids cannot be merged")
        return FeatureHistograms(self.lo, self.hi, self.counts + other.counts)

    def edges(self) -> np.ndarray:
        """Bin edges, shape (d, bins + 1)."""
        t = np.arange(self.bins + 1) / self.bins
        return self.lo[:, None] + (self.hi - self.lo)[:, None] * t[None, :]


@dataclass(frozen=True)
class HistogramSeparability:
    """Single-feature separability from two modalities' histograms, with error bounds.

    Attributes (each of shape (d,))
    ----------
    threshold_accuracy
        Best balanced accuracy over cuts at bin edges, either orientation (≤ the exact value).
    accuracy_bound
        ``exact - threshold_accuracy`` lies in ``[0, accuracy_bound]``.
    threshold, orientation
        The edge of the best cut; +1 when "image" lies at or above it.
    auc, auc_bound
        ROC AUC for "image" (same-bin pairs count one half) and ``|exact - auc| ≤ auc_bound``.
    """

    threshold_accuracy: np.ndarray
    accuracy_bound: np.ndarray
    threshold: np.ndarray
    orientation: np.ndarray
    auc: np.ndarray
    auc_bound: np.ndarray


def histogram_separability(img: FeatureHistograms, txt: FeatureHistograms) -> HistogramSeparability:
    """Threshold accuracy and AUC per feature from the image and text counts (see the module notes)."""
    n_img, n_txt = img.n, txt.n
    p_img = img.counts / n_img  # (d, B)
    p_txt = txt.counts / n_txt
    # cut before bin b (b = 1 … B-1): "text below, image at or above"
    f_img = np.cumsum(p_img, axis=1)[:, :-1]  # fraction of images in bins < b
    f_txt = np.cumsum(p_txt, axis=1)[:, :-1]
    bal = 0.5 * (f_txt + 1.0 - f_img)  # (d, B-1)
    gain = np.abs(bal - 0.5)
    d = len(p_img)
    if bal.shape[1]:
        k = gain.argmax(axis=1)
        best_gain = gain[np.arange(d), k]
        best_bal = bal[np.arange(d), k]
    else:  # one bin: no cut
        k = np.zeros(d, dtype=np.int64)
        best_gain, best_bal = np.zeros(d), np.full(d, 0.5)
    accuracy = 0.5 + best_gain
    edges = img.edges()
    threshold = edges[np.arange(d), k + 1]
    orientation = np.where(best_bal >= 0.5, 1, -1)
    accuracy_bound = 0.5 * np.minimum(p_img, p_txt).max(axis=1)

    txt_below = np.cumsum(p_txt, axis=1) - p_txt  # text fraction in bins < b
    auc = (p_img * (txt_below + 0.5 * p_txt)).sum(axis=1)
    auc_bound = 0.5 * (p_img * p_txt).sum(axis=1)
    return HistogramSeparability(accuracy, accuracy_bound, threshold, orientation, auc, auc_bound)
