"""The modality-gap metrics of Schrodi et al. (ICLR 2025, "Two effects, one trigger"), SPEC §12.

On unit rows: ``L2M = ||mean U_img - mean U_txt||`` (the centroid distance of §1), ``L2I = mean_i ||u_i - v_i||``
over matched pairs, and the relative modality gap ``RMG = d_m / (d_m + (d_i + d_t) / 2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..validation import check_pair_index, unit_rows
from ._blocks import float_pair, row_blocks, rows64
from ._gap import cone, unit_sums
from ._pairs import matched_pairs
from ._result import Result

#: floor of the matched-pair dissimilarity d_m (SPEC §12), so identical modalities give a finite RMG
D_M_FLOOR = 1e-3


def rmg_from_cosines(matched_cosine: float, image_cone: float, text_cone: float) -> tuple[float, float, float, float]:
    """``(rmg, d_m, d_i, d_t)`` from the mean matched cosine and the two mean in-modality cosines.

    ``d_m = max((1 - matched_cosine) / 2, 1e-3)``, ``d_i = (1 - image_cone) / 2``, ``d_t = (1 - text_cone) / 2``.
    """
    d_m = max((1.0 - matched_cosine) / 2.0, D_M_FLOOR)
    d_i = (1.0 - image_cone) / 2.0
    d_t = (1.0 - text_cone) / 2.0
    return d_m / (d_m + 0.5 * (d_i + d_t)), d_m, d_i, d_t


@dataclass(frozen=True, repr=False)
class GapMetricsResult(Result):
    """L2M, L2I and RMG of one embedding set.

    Attributes
    ----------
    l2m : float
        ``||mean(U_img) - mean(U_txt)||`` over all rows of each modality (equals §1's l2 centroid distance).
    l2i : float
        ``mean ||u_i - v_i||`` over the matched pairs.
    rmg : float
        ``d_m / (d_m + (d_i + d_t) / 2)``, in (0, 1]: 0 means no gap relative to the spread in each modality.
    d_m : float
        ``(1 - mean matched cosine) / 2``, floored at 1e-3 (``d_m_floored`` says whether the floor applied).
    d_i, d_t : float
        ``(1 - mean pairwise cosine inside the modality, self pairs excluded) / 2``.
    mean_matched_cosine : float
    n_pairs, n_image, n_text : int
    pair_distance : ndarray of shape (n_pairs,)
        ``||u_i - v_i||`` of each matched pair (text-row order).
    """

    l2m: float
    l2i: float
    rmg: float
    d_m: float
    d_i: float
    d_t: float
    d_m_floored: bool
    mean_matched_cosine: float
    n_pairs: int
    n_image: int
    n_text: int
    pair_distance: np.ndarray

    _arrays = ("pair_distance",)


def gap_metrics(img: object, txt: object, image_index: object = None) -> GapMetricsResult:
    """Schrodi et al.'s L2M, L2I and RMG (SPEC §12) on the unit rows of both modalities.

    Parameters
    ----------
    img : array-like of shape (n_image, d)
        Image embeddings (raw or unit; they are unit-normalised here).
    txt : array-like of shape (n_text, d)
        Text embeddings.
    image_index : array-like of int, shape (n_text,), optional
        Image row of each text row (-1: no image).  Default: row i ↔ row i.

    Returns
    -------
    GapMetricsResult

    Notes
    -----
    ``d_i`` and ``d_t`` use every row of their modality (an image with five captions counts once among the
    images, each caption once among the texts); ``L2I`` and ``d_m`` use every matched pair.  The mean
    pairwise cosine is computed exactly in O(n d) from the sum of the unit rows.
    """
    a, b = float_pair(img, txt)  # float32 rows stay float32: widened block by block
    link = check_pair_index(image_index, "image_index", n_image=len(a), n_text=len(b))
    rows_img, rows_txt = matched_pairs(link)
    if len(rows_img) == 0:
        raise InputError("no matched image-text pairs (every image_index entry is -1); L2I and RMG need pairs")
    cos, dist = np.empty(len(rows_img)), np.empty(len(rows_img))
    for sl in row_blocks(len(rows_img)):  # the unit rows of one block of pairs at a time
        pu, pv = unit_rows(rows64(a, rows_img[sl])), unit_rows(rows64(b, rows_txt[sl]))
        cos[sl] = np.einsum("ij,ij->i", pu, pv)
        pu -= pv
        dist[sl] = np.linalg.norm(pu, axis=1)
    matched = float(cos.mean())
    (sa, qa), (sb, qb) = unit_sums(a), unit_sums(b)
    image_cone, text_cone = cone(sa, qa, len(a)), cone(sb, qb, len(b))
    rmg, d_m, d_i, d_t = rmg_from_cosines(matched, image_cone, text_cone)
    return GapMetricsResult(
        l2m=float(np.linalg.norm(sa / len(a) - sb / len(b))),
        l2i=float(dist.mean()),
        rmg=float(rmg),
        d_m=float(d_m),
        d_i=float(d_i),
        d_t=float(d_t),
        d_m_floored=bool((1.0 - matched) / 2.0 < D_M_FLOOR),
        mean_matched_cosine=matched,
        n_pairs=len(rows_img),
        n_image=len(a),
        n_text=len(b),
        pair_distance=dist,
    )
