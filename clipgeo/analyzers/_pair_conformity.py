"""Per-pair conformity (SPEC §12): the exact conformity of each image and of its caption, side by side.

The paper shows image/caption pairs with their conformities C_i and C_t; this measures, over every matched
pair, how well one predicts the other (Pearson and Spearman r) and which pairs disagree most.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..validation import check_pair_index
from ._blocks import float_pair
from ._conformity import row_conformity
from ._pairs import matched_pairs
from ._result import Result
from ._stats import pearson, spearman


@dataclass(frozen=True, repr=False)
class PairConformityResult(Result):
    """Exact conformity of the image and of the caption of every matched pair.

    Attributes
    ----------
    pearson, spearman : float
        Correlation of ``image_conformity`` and ``text_conformity`` over the pairs (NaN when one is constant).
    n_pairs : int
    image_row, text_row : ndarrays of int, shape (n_pairs,)
        The rows of each pair in the image and the text arrays.
    image_conformity, text_conformity : ndarrays of shape (n_pairs,)
        Exact conformity (SPEC §7) of the pair's image row among all image rows, and of its text row among
        all text rows.
    disagreement : ndarray of shape (n_pairs,)
        ``|q_img - q_txt|``: the difference of the two conformities' quantiles (rank / (n - 1), in [0, 1])
        inside their modality.  1 means one is the most common of its modality and the other the rarest.
    """

    pearson: float
    spearman: float
    n_pairs: int
    image_row: np.ndarray
    text_row: np.ndarray
    image_conformity: np.ndarray
    text_conformity: np.ndarray
    disagreement: np.ndarray

    _arrays = ("image_row", "text_row", "image_conformity", "text_conformity", "disagreement")

    def most_disagreeing(self, k: int = 5) -> np.ndarray:
        """Indices (into the pair arrays) of the ``k`` pairs whose two conformities disagree most, worst first."""
        order = np.argsort(-self.disagreement, kind="stable")
        return order[: min(int(k), len(order))]


def _quantiles(values: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    n = len(values)
    return (rankdata(values) - 1.0) / max(n - 1, 1)


def pair_conformity(
    img: object,
    txt: object,
    image_index: object = None,
    *,
    image_conformity: object = None,
    text_conformity: object = None,
) -> PairConformityResult:
    """Conformity of each image next to the conformity of its caption, over the matched pairs.

    Parameters
    ----------
    img : array-like of shape (n_image, d)
    txt : array-like of shape (n_text, d)
    image_index : array-like of int, shape (n_text,), optional
        Image row of each text row (-1: no image).  Default: row i ↔ row i.
    image_conformity : array-like of shape (n_image,), optional
        Exact conformity of every image row (e.g. ``conformity(img).values``), to avoid computing it again.
    text_conformity : array-like of shape (n_text,), optional
        The same for the text rows.

    Returns
    -------
    PairConformityResult

    Notes
    -----
    Conformity is the exact ``C(x_j) = 1/(N-1) Σ_{k≠j} cos(x_j, x_k)`` inside each modality (computed in
    O(N d) through the sum of the unit rows when not given).  An image with several captions appears once
    per caption; the quantiles of ``disagreement`` are taken over the pairs.
    """
    a, b = float_pair(img, txt)  # float32 rows stay float32 (only needed for the conformity when not given)
    link = check_pair_index(image_index, "image_index", n_image=len(a), n_text=len(b))
    rows_img, rows_txt = matched_pairs(link)
    if len(rows_img) < 2:
        raise InputError(f"{len(rows_img)} matched pair(s); per-pair conformity needs at least 2")

    def given(values: object, n: int, name: str) -> np.ndarray | None:
        if values is None:
            return None
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape != (n,):
            raise InputError(f"{name} has shape {arr.shape}; expected one value per row, shape ({n},)")
        return arr

    ci = given(image_conformity, len(a), "image_conformity")
    ct = given(text_conformity, len(b), "text_conformity")
    ci = row_conformity(a)[0] if ci is None else ci
    ct = row_conformity(b)[0] if ct is None else ct
    pi, pt = ci[rows_img], ct[rows_txt]
    return PairConformityResult(
        pearson=pearson(pi, pt),
        spearman=spearman(pi, pt),
        n_pairs=len(rows_img),
        image_row=rows_img,
        text_row=rows_txt,
        image_conformity=pi,
        text_conformity=pt,
        disagreement=np.abs(_quantiles(pi) - _quantiles(pt)),
    )
