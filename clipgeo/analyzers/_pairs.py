"""Matched image/caption pairs given by an index: which image row each text row belongs to.

Shared by the analyses of SPEC §12 that work on matched pairs (per-pair conformity, retrieval, the gap
metrics, the bootstrap).  ``image_index[j]`` is the image row of text row ``j`` (-1: a caption with no image
in the set); when it is not given, row i of one modality matches row i of the other.
"""

from __future__ import annotations

import numpy as np


def matched_pairs(image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(image_rows, text_rows)`` of the matched pairs, in text-row order (captions with -1 left out)."""
    text_rows = np.flatnonzero(image_index >= 0)
    return image_index[text_rows], text_rows


def image_groups(img: np.ndarray) -> np.ndarray:
    """Group id of each image row, shape (n_image,): bitwise-identical rows are one image.

    Stores built from (image, caption) pair files hold one image once per caption; those copies are the
    same image, so their captions are no competitors of each other in retrieval.
    """
    _, inverse = np.unique(np.ascontiguousarray(img), axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def same_image_entries(groups: np.ndarray, link: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (image row, text row) whose text describes that image (its own or a bitwise copy of it).

    Returns
    -------
    image_rows, text_rows : ndarrays of int64
        All pairs ``(i, j)`` with ``link[j] >= 0`` and ``groups[i] == groups[link[j]]``.
    """
    texts = np.flatnonzero(link >= 0)
    if len(texts) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(groups, kind="stable")  # image rows grouped
    start = np.searchsorted(groups[order], np.arange(groups.max() + 2))
    g = groups[link[texts]]  # group of each linked text
    size = start[g + 1] - start[g]  # images in that group
    text_rows = np.repeat(texts, size)
    offsets = np.arange(len(text_rows)) - np.repeat(np.cumsum(size) - size, size)
    image_rows = order[np.repeat(start[g], size) + offsets]
    return image_rows.astype(np.int64), text_rows.astype(np.int64)
