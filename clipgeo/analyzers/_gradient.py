"""Cosine sensitivity vs norm (SPEC §9): far from the origin, a small move changes the cosine less."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._centroid_shift import check_alphas, default_alphas
from ._result import Result
from ._validation import check_pair


def cosine_gradient_vectors(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``∂cos(u, w)/∂u = (ŵ - cos(u, w) û) / ||u||`` row by row.

    Parameters
    ----------
    u, w : ndarrays of shape (n, d)
        Non-zero rows.

    Returns
    -------
    ndarray of shape (n, d)
    """
    nu = np.linalg.norm(u, axis=1, keepdims=True)
    uh, wh = u / nu, w / np.linalg.norm(w, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", uh, wh)[:, None]
    return (wh - cos * uh) / nu


@dataclass(frozen=True, repr=False)
class CosineGradientResult(Result):
    """Size of the cosine's gradient at image points moved along the image mean.

    Attributes
    ----------
    alpha : ndarray of shape (k·s,)
        Shift of each sample: ``u = x_i - α m_img``.
    row : ndarray of int, shape (k·s,)
        Pair row the sample comes from.
    norm : ndarray of shape (k·s,)
        ``||u||``.
    cosine : ndarray of shape (k·s,)
        ``cos(u, w)``, w the matched text row.
    grad_norm : ndarray of shape (k·s,)
        ``||∂cos(u, w)/∂u||`` of the gradient vector.
    formula : ndarray of shape (k·s,)
        ``sqrt(1 - cos²) / ||u||`` (SPEC §9); equal to ``grad_norm``.
    max_relative_error : float
        ``max |grad_norm - formula| / formula``.
    loglog_slope : float
        Least-squares slope of ``log grad_norm`` on ``log norm`` (-1 for a fixed angle).
    """

    n_samples: int
    max_relative_error: float
    loglog_slope: float
    alpha: np.ndarray
    row: np.ndarray
    norm: np.ndarray
    cosine: np.ndarray
    grad_norm: np.ndarray
    formula: np.ndarray

    _arrays = ("alpha", "row", "norm", "cosine", "grad_norm", "formula")

    def _summary(self) -> dict[str, Any]:
        out = super()._summary()
        alphas = np.unique(self.alpha)
        out["per_alpha"] = [
            {
                "alpha": float(a),
                "mean_norm": float(self.norm[self.alpha == a].mean()),
                "mean_grad_norm": float(self.grad_norm[self.alpha == a].mean()),
            }
            for a in alphas
        ]
        return out

    def to_frame(self):
        """One row per sample: ``alpha, row, norm, cosine, grad_norm, formula``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "alpha": self.alpha,
                "row": self.row,
                "norm": self.norm,
                "cosine": self.cosine,
                "grad_norm": self.grad_norm,
                "formula": self.formula,
            }
        )


def cosine_gradient(
    img: object,
    txt: object,
    alphas: object = None,
    *,
    n_samples: int = 256,
    seed: int = 0,
) -> CosineGradientResult:
    """Gradient magnitude of ``cos(u, w)`` against ``||u||`` for image points shifted along their mean.

    Parameters
    ----------
    img, txt : array-like of shape (n, d)
        Matched raw embeddings.
    alphas : sequence of float, optional
        Shifts ``u = x_i - α m`` (m the raw image mean), default -1.0 … 1.0
        step 0.1: α = 0 are the data themselves, α < 0 moves them away from
        the origin, α = 1 centres them.
    n_samples : int
        Pairs used (a seeded random subset when there are more); every one
        is evaluated at every α.
    seed : int

    Returns
    -------
    CosineGradientResult

    Notes
    -----
    The gradient vector ``(ŵ - cos û) / ||u||`` is formed explicitly and its
    norm taken (``grad_norm``); SPEC §9's closed form ``sqrt(1 - cos²)/||u||``
    is reported beside it (``formula``).  Samples with ``u = 0`` are dropped.
    """
    a, b = check_pair(img, txt, paired=True)
    alpha = default_alphas() if alphas is None else check_alphas(alphas)
    rng = np.random.default_rng(seed)
    n = len(a)
    rows = np.arange(n) if n <= n_samples else np.sort(rng.choice(n, size=int(n_samples), replace=False))
    m = a.mean(axis=0)
    x, w = a[rows], b[rows]
    u = (x[None, :, :] - alpha[:, None, None] * m[None, None, :]).reshape(-1, a.shape[1])  # (k·s, d)
    ww = np.broadcast_to(w, (len(alpha), *w.shape)).reshape(-1, a.shape[1])
    al = np.repeat(alpha, len(rows))
    rr = np.tile(rows, len(alpha))
    norm = np.linalg.norm(u, axis=1)
    keep = (norm > 0) & (np.linalg.norm(ww, axis=1) > 0)
    u, ww, al, rr, norm = u[keep], ww[keep], al[keep], rr[keep], norm[keep]
    grad = np.linalg.norm(cosine_gradient_vectors(u, ww), axis=1)
    cos = np.einsum("ij,ij->i", u, ww) / (norm * np.linalg.norm(ww, axis=1))
    formula = np.sqrt(np.clip(1 - cos**2, 0.0, None)) / norm
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(grad - formula) / formula
    rel_max = float(np.nanmax(rel)) if np.isfinite(rel).any() else 0.0
    ok = (grad > 0) & (norm > 0)
    slope = float(np.polyfit(np.log(norm[ok]), np.log(grad[ok]), 1)[0]) if ok.sum() > 1 and np.ptp(norm[ok]) > 0 else float("nan")
    return CosineGradientResult(
        n_samples=len(rows),
        max_relative_error=rel_max,
        loglog_slope=slope,
        alpha=al,
        row=rr,
        norm=norm,
        cosine=cos,
        grad_norm=grad,
        formula=formula,
    )
