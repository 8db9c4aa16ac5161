"""A 2-D PCA projection of both modalities (the picture of the modality gap, SPEC §10)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ._blocks import column_sums, float_rows, row_blocks, rows64
from ._result import Result
from ._threads import single_blas_thread


@dataclass(frozen=True, repr=False)
class ProjectionResult(Result):
    """Principal-component coordinates of image and text rows in one shared basis.

    Attributes
    ----------
    explained_variance_ratio : ndarray of shape (k,)
        Share of the pooled variance along each component.
    components : ndarray of shape (k, d)
        Unit principal axes (sign fixed: largest-magnitude loading positive).
    center : ndarray of shape (d,)
        Mean of the pooled rows.
    image, text : ndarrays of shape (n_image, k), (n_text, k)
        Coordinates ``(x - center) @ components.T``.
    """

    n_components: int
    explained_variance_ratio: np.ndarray
    components: np.ndarray
    center: np.ndarray
    image: np.ndarray
    text: np.ndarray

    _arrays = ("components", "center", "image", "text")


def pca_projection(img: object | None, txt: object | None, n_components: int = 2) -> ProjectionResult:
    """Project the pooled raw rows of both modalities on their top principal components.

    Parameters
    ----------
    img : array-like of shape (n_image, d) or None
    txt : array-like of shape (n_text, d) or None
        At least one modality; rows are not normalised.
    n_components : int

    Returns
    -------
    ProjectionResult

    Notes
    -----
    The basis is the eigendecomposition of the pooled covariance (d × d, float64),
    so its cost is O(n d²) whatever n is.
    """
    if img is None and txt is None:
        raise InputError("pca_projection needs image rows, text rows or both")
    a = None if img is None else float_rows(img, "img")  # float32 rows stay float32
    b = None if txt is None else float_rows(
        txt, "txt", dim=None if a is None else a.shape[1], dim_source="the other modality"
    )
    arrays = [x for x in (a, b) if x is not None]
    d = arrays[0].shape[1]
    pooled_n = sum(len(x) for x in arrays)
    center = sum(column_sums(x) for x in arrays) / max(pooled_n, 1)
    scatter = np.zeros((d, d))
    for x in arrays:
        xc = np.array(x, dtype=np.float64)  # one full-size copy at a time, centred in place
        xc -= center
        scatter += xc.T @ xc  # (d, d); numpy uses the symmetric rank-k update for xᵀx
        del xc
    with single_blas_thread():
        values, vectors = np.linalg.eigh(scatter)
    order = np.argsort(values)[::-1][: min(n_components, d)]
    comps = vectors[:, order].T  # (k, d)
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    total = float(values.clip(min=0).sum())
    ratio = values[order].clip(min=0) / total if total > 0 else np.zeros(len(order))

    def project(x: np.ndarray | None) -> np.ndarray:
        if x is None:
            return np.empty((0, len(comps)))
        out = np.empty((len(x), len(comps)))
        for sl in row_blocks(len(x)):
            out[sl] = (rows64(x, sl) - center) @ comps.T
        return out

    return ProjectionResult(
        n_components=len(comps),
        explained_variance_ratio=ratio,
        components=comps,
        center=center,
        image=project(a),
        text=project(b),
    )
