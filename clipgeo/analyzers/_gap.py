"""Modality gap (SPEC §1): how far apart the image and text centroids are."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..validation import unit_rows
from ._blocks import column_mean, column_sums, float_pair, row_blocks, rows64
from ._result import Result


def mean_pairwise_cosine(u: np.ndarray) -> float:
    """Mean of ``u_j · u_k`` over all ordered pairs j != k of unit rows, exactly, in O(n d).

    Uses ``sum_{j != k} u_j·u_k = ||sum_j u_j||^2 - sum_j ||u_j||^2``.

    Parameters
    ----------
    u : ndarray of shape (n, d)
        Unit rows (n >= 2).
    """
    n = len(u)
    total = u.sum(axis=0)
    return float((total @ total - np.einsum("ij,ij->", u, u)) / (n * (n - 1)))


def unit_sums(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Sum of the unit rows of ``x`` (d,) and the sum of their squared norms, block by block in float64.

    The sum is bitwise ``unit_rows(x).sum(axis=0)``; the squared norms are added per block, so they may
    differ from one ``einsum`` over all rows in the last bits.
    """
    total = column_sums(x, unit_rows)
    squares = 0.0
    for sl in row_blocks(len(x)):
        u = unit_rows(rows64(x, sl))
        squares += float(np.einsum("ij,ij->", u, u))
    return total, squares


def cone(total: np.ndarray, squares: float, n: int) -> float:
    """:func:`mean_pairwise_cosine` from the sum of the unit rows and of their squared norms."""
    return float((total @ total - squares) / (n * (n - 1)))


def matched_cosines(a: np.ndarray, b: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """``cos(a[rows_a[k]], b[rows_b[k]])`` of every pair k, as the dot product of the unit rows, block by block."""
    out = np.empty(len(rows_a))
    for sl in row_blocks(len(rows_a)):
        out[sl] = np.einsum("ij,ij->i", unit_rows(rows64(a, rows_a[sl])), unit_rows(rows64(b, rows_b[sl])))
    return out


@dataclass(frozen=True, repr=False)
class ModalityGapResult(Result):
    """Centroid distances between the modalities.

    Attributes
    ----------
    l2_centroid_distance : float
        ``||mean(U_img) - mean(U_txt)||`` on unit rows (Liang et al. 2022).
    raw_centroid_distance : float
        ``||mean(X_img) - mean(X_txt)||`` on raw rows.
    mean_matched_cosine : float or None
        Mean of ``cos(img_i, txt_i)`` over matched rows; None when unpaired.
    image_cone, text_cone : float
        Mean pairwise cosine inside each modality, self pairs excluded (the
        "narrow cone"; equals the mean exact conformity, SPEC §7).
    unit_centroid_image, unit_centroid_text : ndarray of shape (d,)
        ``mean(U_img)``, ``mean(U_txt)``.
    raw_centroid_image, raw_centroid_text : ndarray of shape (d,)
        ``mean(X_img)``, ``mean(X_txt)``.
    """

    l2_centroid_distance: float
    raw_centroid_distance: float
    mean_matched_cosine: float | None
    image_cone: float
    text_cone: float
    n_image: int
    n_text: int
    unit_centroid_image: np.ndarray
    unit_centroid_text: np.ndarray
    raw_centroid_image: np.ndarray
    raw_centroid_text: np.ndarray

    _arrays = ("unit_centroid_image", "unit_centroid_text", "raw_centroid_image", "raw_centroid_text")


def modality_gap(
    img: object, txt: object, *, paired: bool | None = None, pairs: tuple[object, object] | None = None
) -> ModalityGapResult:
    """Distances between the image and the text centroids, on unit and on raw rows.

    Parameters
    ----------
    img : array-like of shape (n_image, d)
        Raw image embeddings (numpy float16/32/64 or a torch tensor).
    txt : array-like of shape (n_text, d)
        Raw text embeddings.
    paired : bool, optional
        Whether row i of ``img`` matches row i of ``txt``; enables
        ``mean_matched_cosine``.  Default: paired when the row counts are equal.
    pairs : tuple of two int arrays of shape (n_pairs,), optional
        ``(image_rows, text_rows)``: row ``image_rows[k]`` of ``img`` matches row
        ``text_rows[k]`` of ``txt`` (several captions per image, unmatched rows);
        ``mean_matched_cosine`` is taken over these pairs (None when there are none).
        Overrides ``paired``.

    Returns
    -------
    ModalityGapResult

    Notes
    -----
    ``l2_centroid_distance = ||mean_i img_i/||img_i|| - mean_j txt_j/||txt_j||||`` and
    ``raw_centroid_distance = ||mean(img) - mean(txt)||``, both in float64.
    """
    a, b = float_pair(img, txt)  # float32 rows stay float32: widened block by block
    if paired is None:
        paired = len(a) == len(b)
    (sa, qa), (sb, qb) = unit_sums(a), unit_sums(b)
    ca, cb = sa / len(a), sb / len(b)  # means of the unit rows
    ma, mb = column_mean(a), column_mean(b)
    matched = None
    if pairs is not None:
        rows_a, rows_b = (np.asarray(p, dtype=np.int64).reshape(-1) for p in pairs)
        if len(rows_a) != len(rows_b):
            raise InputError(f"pairs has {len(rows_a)} image rows but {len(rows_b)} text rows; give one of each per pair")
        for rows, n, name in ((rows_a, len(a), "image"), (rows_b, len(b), "text")):
            if len(rows) and (rows.min() < 0 or rows.max() >= n):
                raise InputError(f"pairs names {name} rows outside 0 … {n - 1}; give row indices of img and txt")
        if len(rows_a):
            matched = float(matched_cosines(a, b, rows_a, rows_b).mean())
    elif paired:
        if len(a) != len(b):
            float_pair(a, b, paired=True)  # raises the one-line error
        rows = np.arange(len(a))
        matched = float(matched_cosines(a, b, rows, rows).mean())
    return ModalityGapResult(
        l2_centroid_distance=float(np.linalg.norm(ca - cb)),
        raw_centroid_distance=float(np.linalg.norm(ma - mb)),
        mean_matched_cosine=matched,
        image_cone=cone(sa, qa, len(a)),
        text_cone=cone(sb, qb, len(b)),
        n_image=len(a),
        n_text=len(b),
        unit_centroid_image=ca,
        unit_centroid_text=cb,
        raw_centroid_image=ma,
        raw_centroid_text=mb,
    )
