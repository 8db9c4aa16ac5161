"""Cosine sensitivity vs norm (SPEC §9): far from the origin, a small move changes the cosine less.

Two parts: the experiment (move every shifted image row by a random vector of
one fixed size and measure how much its cosines change) and the formula it
tests (``||∂cos(u, w)/∂u|| = sqrt(1 - cos²) / ||u||``), drawn as the overlay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..validation import check_count, check_pair_index, check_positive
from ._blocks import column_mean, float_pair, row_norms, rows64
from ._centroid_shift import _group_pairs, check_alphas, default_alphas
from ._result import Result


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


def sphere_projection_mean(d: int) -> float:
    """``E|r · e|`` for r uniform on the unit sphere of R^d and a fixed unit e: ``Γ(d/2) / (√π Γ((d+1)/2))``.

    A random move of size δ changes a cosine with gradient g by ``δ ||g|| · this`` on average (to first order).
    """
    from scipy.special import gammaln

    return float(np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / np.sqrt(np.pi))


def _cos(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (n, d) arrays (0 for a zero row)."""
    den = np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1)
    return np.divide(np.einsum("ij,ij->i", u, w), den, out=np.zeros(len(u)), where=den > 0)


@dataclass(frozen=True, repr=False)
class CosineGradientResult(Result):
    """How much a fixed-size move changes an image row's cosines, as the rows move along the image mean.

    Attributes
    ----------
    grid_alpha : ndarray of shape (k,)
        The shifts: ``u = x_i - α m_img``, ascending.
    mean_norm : ndarray of shape (k,)
        Mean ``||u||`` of the sampled rows at each α.
    delta_cos_own : ndarray of shape (k,)
        Experiment: mean ``|cos(u + δ r, w) - cos(u, w)|`` over the sampled rows, w the row's
        own caption, r a seeded random unit vector (the same at every α), δ = ``perturbation_norm``.
    delta_cos_negative : ndarray of shape (k,)
        The same for w the nearest unpaired caption of u (a false-negative candidate).
    formula_delta_cos_own, formula_delta_cos_negative : ndarrays of shape (k,)
        First-order prediction from the gradient formula: mean of ``δ c_d sqrt(1 - cos²) / ||u||``,
        ``c_d = E|r · e|`` (:func:`sphere_projection_mean`).
    epsilon : float
        δ / (mean centred norm of the image rows).
    perturbation_norm : float
        δ, the same at every α.
    sphere_factor : float
        ``c_d``.
    n_samples, n_negatives : int
        Image rows perturbed; text rows searched for each one's nearest unpaired caption.
    alpha, row, norm, cosine, grad_norm, formula : ndarrays of shape (k·s,)
        The gradient samples: shift, image row, ``||u||``, ``cos(u, w)`` with the own caption,
        ``||∂cos/∂u||`` of the formed gradient vector and SPEC §9's ``sqrt(1 - cos²)/||u||``.
    max_relative_error : float
        ``max |grad_norm - formula| / formula``.
    loglog_slope : float
        Least-squares slope of ``log grad_norm`` on ``log norm`` (-1 for a fixed angle).
    """

    n_samples: int
    n_negatives: int
    epsilon: float
    perturbation_norm: float
    sphere_factor: float
    seed: int
    max_relative_error: float
    loglog_slope: float
    grid_alpha: np.ndarray
    mean_norm: np.ndarray
    delta_cos_own: np.ndarray
    delta_cos_negative: np.ndarray
    formula_delta_cos_own: np.ndarray
    formula_delta_cos_negative: np.ndarray
    alpha: np.ndarray
    row: np.ndarray
    norm: np.ndarray
    cosine: np.ndarray
    grad_norm: np.ndarray
    formula: np.ndarray

    _arrays = ("alpha", "row", "norm", "cosine", "grad_norm", "formula")

    @property
    def sensitivity_ratio(self) -> float:
        """``delta_cos_own`` at the α farthest from the origin over that at the α nearest it (< 1: the claim)."""
        far, near = int(np.argmax(self.mean_norm)), int(np.argmin(self.mean_norm))
        return float(self.delta_cos_own[far] / self.delta_cos_own[near]) if self.delta_cos_own[near] > 0 else float("nan")

    def _summary(self) -> dict[str, Any]:
        out = super()._summary()
        out["sensitivity_ratio"] = self.sensitivity_ratio
        alphas = np.unique(self.alpha)
        grad = {float(a): float(self.grad_norm[self.alpha == a].mean()) for a in alphas}
        out["per_alpha"] = [
            {
                "alpha": float(a),
                "mean_norm": float(self.mean_norm[i]),
                "mean_grad_norm": grad.get(float(a)),
                "delta_cos_own": float(self.delta_cos_own[i]),
                "delta_cos_negative": float(self.delta_cos_negative[i]),
            }
            for i, a in enumerate(self.grid_alpha)
        ]
        return out

    def to_frame(self):
        """One row per gradient sample: ``alpha, row, norm, cosine, grad_norm, formula``."""
        import pandas as pd

        return pd.DataFrame({name: getattr(self, name) for name in self._arrays})


def cosine_gradient(
    img: object,
    txt: object,
    alphas: object = None,
    *,
    image_index: object = None,
    n_samples: int = 256,
    epsilon: float = 0.05,
    max_negatives: int = 8192,
    seed: int = 0,
) -> CosineGradientResult:
    """The perturbation experiment of SPEC §9, with the gradient formula beside it.

    Parameters
    ----------
    img : array-like of shape (n_image, d)
        Raw image embeddings.
    txt : array-like of shape (n_text, d)
        Raw text embeddings.
    alphas : sequence of float, optional
        Shifts ``u = x_i - α m`` (m the raw mean of the unique images), at least 2
        values, default -1.0 … 1.0 step 0.1: α = 0 are the data themselves, α < 0
        moves them away from the origin, α = 1 centres them.
    image_index : array-like of int, shape (n_text,), optional
        Image row of each text row (-1: none), as the store's ``text_image_index``;
        default row i with row i.
    n_samples : int
        Images perturbed (a seeded subset when there are more); each is evaluated at every α.
    epsilon : float
        Size of the move as a fraction of the images' mean centred norm ``mean ||x - m||``.
    max_negatives : int
        Text rows searched for the nearest unpaired caption (a seeded subset above it).
    seed : int

    Returns
    -------
    CosineGradientResult

    Notes
    -----
    Every sampled image row is moved by ``δ r`` with ``r`` a seeded random
    unit vector (drawn once, used at every α) and ``δ = ε · mean ||x - m||``
    (fixed, so only ``||u||`` changes along the sweep).  ``|Δcos|`` is taken
    to the row's own caption (one drawn per image when it has several) and to
    its nearest unpaired caption at that α (the most similar text among the
    other images' captions and the captionless texts): far from the origin
    both change less, which is how an off-centre ellipsoid tolerates false
    negatives.  The formula ``sqrt(1 - cos²)/||u||`` is checked against the
    explicitly formed gradient vector and, times ``δ c_d``, predicts the
    measured ``|Δcos|`` to first order.  Image rows that are bitwise copies
    are one image; rows with ``u = 0`` are dropped from the gradient samples.
    """
    a, b = float_pair(img, txt, min_rows=2)  # float32 rows stay float32: the rows used are widened
    alpha = default_alphas() if alphas is None else check_alphas(alphas)
    n_samples = check_count(n_samples, "n_samples", minimum=1)
    max_negatives = check_count(max_negatives, "max_negatives", minimum=1)
    epsilon = check_positive(epsilon, "epsilon")
    index = check_pair_index(image_index, "image_index", n_image=len(a), n_text=len(b))
    pairs = _group_pairs(a, index, images=False)
    image_rows = pairs.image_rows  # (n_img,) rows of the unique images with a caption
    n_img, d = len(image_rows), a.shape[1]
    if n_img < 2:
        from ..errors import InputError

        raise InputError(f"the pairs hold {n_img} distinct image(s); the experiment needs at least 2 images with a caption")
    rng = np.random.default_rng(seed)
    m = column_mean(a, rows=image_rows)
    delta = epsilon * float(row_norms(a, m, rows=image_rows).mean())
    pick = pairs.caption_start + np.floor(rng.random(n_img) * pairs.caption_count).astype(np.int64)
    own_text = pairs.caption_rows[pick]  # (n_img,) one caption per image
    rows = np.arange(n_img) if n_img <= n_samples else np.sort(rng.choice(n_img, size=n_samples, replace=False))
    x, w = rows64(a, image_rows[rows]), rows64(b, own_text[rows])  # (s, d)
    r = rng.normal(size=x.shape)
    r /= np.linalg.norm(r, axis=1, keepdims=True)  # (s, d) random unit directions
    c_d = sphere_projection_mean(d)

    # candidate negatives: every text row, minus each sample's own captions (masked below)
    image_of_text = np.full(len(b), -1, dtype=np.int64)
    for g in range(n_img):
        image_of_text[pairs.caption_rows[pairs.caption_start[g] : pairs.caption_start[g] + pairs.caption_count[g]]] = g
    cand = np.arange(len(b)) if len(b) <= max_negatives else np.sort(rng.choice(len(b), size=max_negatives, replace=False))
    t_cand = rows64(b, cand)
    t_norm = np.linalg.norm(t_cand, axis=1)
    own_mask = image_of_text[cand][None, :] == rows[:, None]  # (s, c) the sample's own captions
    gram = x @ t_cand.T  # (s, c): x_i · t_j
    tm = t_cand @ m

    k = len(alpha)
    mean_norm, d_own, d_neg, f_own, f_neg = (np.empty(k) for _ in range(5))
    for i, al in enumerate(alpha):
        u = x - al * m  # (s, d)
        un = np.linalg.norm(u, axis=1)
        moved = u + delta * r
        d_own[i] = float(np.mean(np.abs(_cos(moved, w) - _cos(u, w))))
        cos_c = (gram - al * tm[None, :]) / np.maximum(un[:, None] * t_norm[None, :], 1e-300)
        cos_c[own_mask] = -np.inf
        nearest = t_cand[np.argmax(cos_c, axis=1)]  # (s, d) nearest unpaired caption at this α
        d_neg[i] = float(np.mean(np.abs(_cos(moved, nearest) - _cos(u, nearest))))
        safe = np.where(un > 0, un, np.inf)
        f_own[i] = float(np.mean(delta * c_d * np.sqrt(np.clip(1 - _cos(u, w) ** 2, 0, None)) / safe))
        f_neg[i] = float(np.mean(delta * c_d * np.sqrt(np.clip(1 - _cos(u, nearest) ** 2, 0, None)) / safe))
        mean_norm[i] = float(un.mean())

    # the gradient samples: formed vector vs closed form, every sample at every α
    u = (x[None, :, :] - alpha[:, None, None] * m[None, None, :]).reshape(-1, d)  # (k·s, d)
    ww = np.broadcast_to(w, (k, *w.shape)).reshape(-1, d)
    al = np.repeat(alpha, len(rows))
    rr = np.tile(rows, k)
    norm = np.linalg.norm(u, axis=1)
    keep = (norm > 0) & (np.linalg.norm(ww, axis=1) > 0)
    u, ww, al, rr, norm = u[keep], ww[keep], al[keep], rr[keep], norm[keep]
    grad = np.linalg.norm(cosine_gradient_vectors(u, ww), axis=1)
    cos = _cos(u, ww)
    formula = np.sqrt(np.clip(1 - cos**2, 0.0, None)) / norm
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(grad - formula) / formula
    rel_max = float(np.nanmax(rel)) if np.isfinite(rel).any() else 0.0
    ok = (grad > 0) & (norm > 0)
    slope = float(np.polyfit(np.log(norm[ok]), np.log(grad[ok]), 1)[0]) if ok.sum() > 1 and np.ptp(norm[ok]) > 0 else float("nan")
    return CosineGradientResult(
        n_samples=len(rows),
        n_negatives=len(cand),
        epsilon=epsilon,
        perturbation_norm=delta,
        sphere_factor=c_d,
        seed=int(seed),
        max_relative_error=rel_max,
        loglog_slope=slope,
        grid_alpha=alpha,
        mean_norm=mean_norm,
        delta_cos_own=d_own,
        delta_cos_negative=d_neg,
        formula_delta_cos_own=f_own,
        formula_delta_cos_negative=f_neg,
        alpha=al,
        row=rr,
        norm=norm,
        cosine=cos,
        grad_norm=grad,
        formula=formula,
    )
