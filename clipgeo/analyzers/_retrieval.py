"""Retrieval difficulty vs conformity (SPEC §12): the paper's false-negative argument, measured.

Common content (high conformity) has many near-duplicates, so an image's own caption should face more
unpaired captions that score above it.  For every matched pair this counts exactly those, in both
directions, and tabulates R@1, R@5 and the median rank per conformity decile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import check_pair, check_pair_index, unit_rows
from ._conformity import mean_conformity
from ._pairs import image_groups, matched_pairs, same_image_entries
from ._result import Result
from ._stats import equal_count_bins, spearman

#: bytes of the float32 (image rows × text rows) block of cosines formed at a time
DEFAULT_CHUNK_BYTES = 64 << 20


def _count_above(
    ui: np.ndarray, ut: np.ndarray, link: np.ndarray, groups: np.ndarray, chunk_bytes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Unpaired competitors scoring above each matched pair, image→text and text→image.

    Parameters
    ----------
    ui : ndarray of shape (n_image, d), float32 unit rows
    ut : ndarray of shape (n_text, d), float32 unit rows
    link : ndarray of int, shape (n_text,)
        Image row of each text row, -1 for none.
    groups : ndarray of int, shape (n_image,)
        Image identity of each image row (bitwise copies share one, :func:`image_groups`).

    Returns
    -------
    above_i2t, above_t2i : ndarrays of int64, shape (n_pairs,)
        For the pair (image i, caption j): captions of *other* images (and captions with no image) with a
        higher cosine to image i; images other than i (and its copies; copies of another image count once)
        with a higher cosine to caption j.  Ties do not count.
    """
    rows_img, rows_txt = matched_pairs(link)
    n_i, n_t = len(ui), len(ut)
    own = np.einsum("ij,ij->i", ui[rows_img], ut[rows_txt])  # (n_pairs,) float32
    above_i2t = np.zeros(len(rows_img), dtype=np.int64)
    above_t2i = np.zeros(len(rows_img), dtype=np.int64)
    by_image = np.argsort(rows_img, kind="stable")  # pairs grouped by image row
    starts = np.searchsorted(rows_img[by_image], np.arange(n_i + 1))
    mask_img, mask_txt = same_image_entries(groups, link)  # (image, caption) entries that are no competition
    mask_order = np.argsort(mask_img, kind="stable")
    mask_img, mask_txt = mask_img[mask_order], mask_txt[mask_order]
    mask_starts = np.searchsorted(mask_img, np.arange(n_i + 1))
    per_pair_row = max(1, int(np.ceil(len(rows_img) / max(n_i, 1))))
    step = int(max(1, min(n_i, chunk_bytes // (4 * n_t * (2 + per_pair_row)))))
    own_txt = own[None, :]
    is_rep = np.zeros(n_i, dtype=bool)
    is_rep[np.unique(groups, return_index=True)[1]] = True  # first row of each image
    for start in range(0, n_i, step):
        stop = min(start + step, n_i)
        s = ui[start:stop] @ ut.T  # (r, n_t): cosines of these images with every caption
        # same-image entries compete in neither direction: row i loses the captions of its image,
        # column j loses its own image (and bitwise copies of it)
        m0, m1 = mask_starts[start], mask_starts[stop]
        s[mask_img[m0:m1] - start, mask_txt[m0:m1]] = -np.inf
        # text→image counts images, not rows: one representative row per group of bitwise copies
        rep = np.flatnonzero(is_rep[start:stop])
        block = s[:, rows_txt] if len(rep) == stop - start else s[rep][:, rows_txt]
        above_t2i += (block > own_txt).sum(axis=0)
        del block
        pairs = by_image[starts[start] : starts[stop]]  # pairs whose image is in this chunk
        if len(pairs):
            above_i2t[pairs] = (s[rows_img[pairs] - start] > own[pairs][:, None]).sum(axis=1)
        del s
    return above_i2t, above_t2i


@dataclass(frozen=True, repr=False)
class RetrievalByConformityResult(Result):
    """Rank of each pair's own partner, in both directions, against the pair's conformity.

    Attributes
    ----------
    n_pairs, n_image, n_text, n_bins : int
    r1_i2t, r5_i2t, median_rank_i2t, r1_t2i, r5_t2i, median_rank_t2i : float
        Over all pairs: fraction of pairs whose partner ranks first / in the top 5, and the median rank.
    spearman_i2t, spearman_t2i : float
        Spearman r between the conformity of the query (the image for image→text, the caption for
        text→image) and the number of unpaired competitors above its partner.  Positive: common content is
        harder to retrieve (the paper's false-negative argument).
    image_row, text_row : ndarrays of int, shape (n_pairs,)
    rank_i2t, rank_t2i : ndarrays of int, shape (n_pairs,)
        1 + competitors above (``above_*``); 1 is a perfect retrieval.
    image_conformity, text_conformity : ndarrays of shape (n_pairs,)
        Exact conformity of the pair's image / caption.
    decile_i2t, decile_t2i : ndarrays of int, shape (n_pairs,)
        Equal-count conformity bin of the query, 0 (lowest conformity) … n_bins-1.
    """

    n_pairs: int
    n_image: int
    n_text: int
    n_bins: int
    r1_i2t: float
    r5_i2t: float
    median_rank_i2t: float
    r1_t2i: float
    r5_t2i: float
    median_rank_t2i: float
    spearman_i2t: float
    spearman_t2i: float
    image_row: np.ndarray
    text_row: np.ndarray
    rank_i2t: np.ndarray
    rank_t2i: np.ndarray
    image_conformity: np.ndarray
    text_conformity: np.ndarray
    decile_i2t: np.ndarray
    decile_t2i: np.ndarray

    _arrays = (
        "image_row", "text_row", "rank_i2t", "rank_t2i", "image_conformity", "text_conformity",
        "decile_i2t", "decile_t2i",
    )  # fmt: skip

    def by_decile(self, direction: str = "i2t") -> list[dict[str, Any]]:
        """One dict per conformity bin: ``decile``, ``n``, conformity range, ``r1``, ``r5``, ``median_rank``,
        ``mean_above`` (mean unpaired competitors above the partner)."""
        if direction not in ("i2t", "t2i"):
            raise InputError(f"direction must be 'i2t' or 't2i', got {direction!r}")
        rank = self.rank_i2t if direction == "i2t" else self.rank_t2i
        conf = self.image_conformity if direction == "i2t" else self.text_conformity
        bins = self.decile_i2t if direction == "i2t" else self.decile_t2i
        table = []
        for k in range(self.n_bins):
            sel = bins == k
            if not sel.any():
                continue
            r = rank[sel]
            table.append(
                {
                    "decile": k,
                    "n": int(sel.sum()),
                    "conformity_low": float(conf[sel].min()),
                    "conformity_high": float(conf[sel].max()),
                    "r1": float((r == 1).mean()),
                    "r5": float((r <= 5).mean()),
                    "median_rank": float(np.median(r)),
                    "mean_above": float((r - 1).mean()),
                }
            )
        return table

    def _summary(self) -> dict[str, Any]:
        out = super()._summary()
        out["by_decile"] = {"i2t": self.by_decile("i2t"), "t2i": self.by_decile("t2i")}
        return out

    def to_frame(self):
        """One row per matched pair: rows, conformities, ranks and bins in both directions."""
        import pandas as pd

        return pd.DataFrame(
            {
                "image_row": self.image_row,
                "text_row": self.text_row,
                "image_conformity": self.image_conformity,
                "text_conformity": self.text_conformity,
                "rank_i2t": self.rank_i2t,
                "rank_t2i": self.rank_t2i,
                "decile_i2t": self.decile_i2t,
                "decile_t2i": self.decile_t2i,
            }
        )


def retrieval_by_conformity(
    img: object,
    txt: object,
    image_index: object = None,
    *,
    image_conformity: object = None,
    text_conformity: object = None,
    n_bins: int = 10,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> RetrievalByConformityResult:
    """Retrieval rank of each pair's partner in both directions, per conformity decile.

    Parameters
    ----------
    img : array-like of shape (n_image, d)
    txt : array-like of shape (n_text, d)
    image_index : array-like of int, shape (n_text,), optional
        Image row of each text row (-1: no image).  Default: row i ↔ row i.
    image_conformity, text_conformity : array-like of shape (n_image,) / (n_text,), optional
        Exact conformity of every row of each modality (computed in O(N d) when not given).
    n_bins : int
        Equal-count conformity bins (10: deciles).
    chunk_bytes : int
        Memory of one float32 block of cosines; the full (n_image × n_text) matrix is never formed.

    Returns
    -------
    RetrievalByConformityResult

    Notes
    -----
    Image→text, for the pair (image i, caption j): ``rank = 1 + #{captions k of other images (or of none):
    cos(i, k) > cos(i, j)}`` -- the other captions of image i are not competitors.  Text→image:
    ``rank = 1 + #{images k ≠ i: cos(k, j) > cos(i, j)}``.  Bitwise-identical image rows count as one
    image (pair files store an image once per caption): their captions do not compete with each other.  Ties do not count against the pair.  Cosines
    are float32 products of the unit rows (O(n_image n_text d)); an image with several captions gives one
    pair per caption.  Bins are equal-count bins of the query's conformity among the pairs.
    """
    a, b = check_pair(img, txt)
    link = check_pair_index(image_index, "image_index", n_image=len(a), n_text=len(b))
    rows_img, rows_txt = matched_pairs(link)
    if len(rows_img) < 2:
        raise InputError(f"{len(rows_img)} matched pair(s); retrieval by conformity needs at least 2")
    if int(n_bins) < 1:
        raise InputError(f"n_bins must be at least 1, got {n_bins}")
    ua, ub = unit_rows(a), unit_rows(b)
    ci = mean_conformity(ua) if image_conformity is None else np.asarray(image_conformity, dtype=np.float64)
    ct = mean_conformity(ub) if text_conformity is None else np.asarray(text_conformity, dtype=np.float64)
    if ci.shape != (len(a),) or ct.shape != (len(b),):
        raise InputError(
            f"conformity arrays have shapes {ci.shape} and {ct.shape}; expected ({len(a)},) and ({len(b)},)"
        )
    above_i2t, above_t2i = _count_above(
        np.ascontiguousarray(ua, dtype=np.float32),
        np.ascontiguousarray(ub, dtype=np.float32),
        link,
        image_groups(a),
        int(chunk_bytes),
    )
    rank_i2t, rank_t2i = above_i2t + 1, above_t2i + 1
    pi, pt = ci[rows_img], ct[rows_txt]
    return RetrievalByConformityResult(
        n_pairs=len(rows_img),
        n_image=len(a),
        n_text=len(b),
        n_bins=int(n_bins),
        r1_i2t=float((rank_i2t == 1).mean()),
        r5_i2t=float((rank_i2t <= 5).mean()),
        median_rank_i2t=float(np.median(rank_i2t)),
        r1_t2i=float((rank_t2i == 1).mean()),
        r5_t2i=float((rank_t2i <= 5).mean()),
        median_rank_t2i=float(np.median(rank_t2i)),
        spearman_i2t=spearman(pi, above_i2t),
        spearman_t2i=spearman(pt, above_t2i),
        image_row=rows_img,
        text_row=rows_txt,
        rank_i2t=rank_i2t,
        rank_t2i=rank_t2i,
        image_conformity=pi,
        text_conformity=pt,
        decile_i2t=equal_count_bins(pi, int(n_bins)),
        decile_t2i=equal_count_bins(pt, int(n_bins)),
    )
