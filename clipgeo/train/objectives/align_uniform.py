"""Alignment and uniformity on the hypersphere (Wang & Isola 2020), in torch.

For unit embeddings ``u_i``, ``v_i`` of N pairs:

    alignment  = mean_i ||u_i − v_i||^α                      (α = 2)
    uniformity = log mean_{i<j} exp(−t ||u_i − u_j||²)       (t = 2)

Lower is better for both.  Used as training metrics and as optional loss
terms (``AlignUniformLoss``).  Squared distances are computed as
``||x||² + ||y||² − 2<x, y>`` rather than through a square root, so the
gradient stays finite when two embeddings coincide, and the log-mean-exp uses
``logsumexp`` so it never underflows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError

__all__ = ["AlignUniformLoss", "alignment", "uniformity"]


def _check_pairs(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.ndim != 2 or x.shape != y.shape:
        raise InputError(f"alignment needs two (N, d) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """Mean ``||u_i − v_i||^α`` over matched pairs.

    Parameters
    ----------
    x, y : Tensor of shape (N, d)
        Row i of ``x`` is paired with row i of ``y``.
    alpha : float, default 2
        Power of the distance (α > 0).
    normalize : bool, default True
        L2-normalise rows first (the metric is defined on unit vectors).

    Returns
    -------
    Tensor of shape ()
        float32; 0 for identical pairs, 4 (α = 2) for antipodal ones.
    """
    _check_pairs(x, y)
    if not alpha > 0:
        raise InputError(f"illegal alpha {alpha!r}; give a positive power (Wang & Isola use 2)")
    u, v = x.float(), y.float()
    if normalize:
        u, v = F.normalize(u, dim=-1), F.normalize(v, dim=-1)
    sq = (u - v).pow(2).sum(dim=-1)  # (N,)
    if alpha == 2:
        return sq.mean()
    return sq.clamp_min(0).pow(alpha / 2).mean()


def uniformity(x: torch.Tensor, t: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """``log mean_{i<j} exp(−t ||u_i − u_j||²)`` over all distinct pairs of rows.

    Parameters
    ----------
    x : Tensor of shape (N, d), N ≥ 2
    t : float, default 2
        Kernel scale (t > 0).
    normalize : bool, default True
        L2-normalise rows first.

    Returns
    -------
    Tensor of shape ()
        float32, ≤ 0; 0 when all rows coincide, −4t for two antipodal rows.
    """
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(f"uniformity needs an (N, d) tensor with N >= 2, got shape {tuple(x.shape)}")
    if not t > 0:
        raise InputError(f"illegal t {t!r}; give a positive kernel scale (Wang & Isola use 2)")
    u = x.float()
    if normalize:
        u = F.normalize(u, dim=-1)
    n = u.shape[0]
    sq_norm = u.pow(2).sum(dim=-1)  # (N,)
    sq_dist = (sq_norm[:, None] + sq_norm[None, :] - 2 * u @ u.T).clamp_min(0)  # (N, N)
    i, j = torch.triu_indices(n, n, offset=1, device=u.device)
    pairs = sq_dist[i, j]  # (N(N-1)/2,)
    return torch.logsumexp(-t * pairs, dim=0) - math.log(pairs.numel())


class AlignUniformLoss(nn.Module):
    """``align_weight · alignment + uniform_weight · ½(uniformity(x) + uniformity(y))``.

    Parameters
    ----------
    align_weight, uniform_weight : float, default 1
        Weights of the two terms (Wang & Isola's loss uses 1 and 1).
    alpha, t : float, default 2
        Parameters of :func:`alignment` and :func:`uniformity`.
    """

    def __init__(self, align_weight: float = 1.0, uniform_weight: float = 1.0, alpha: float = 2.0, t: float = 2.0):
        super().__init__()
        self.align_weight = float(align_weight)
        self.uniform_weight = float(uniform_weight)
        self.alpha = float(alpha)
        self.t = float(t)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Weighted loss of N pairs; x, y of shape (N, d); returns a float32 scalar."""
        align = alignment(x, y, alpha=self.alpha)
        uniform = 0.5 * (uniformity(x, t=self.t) + uniformity(y, t=self.t))
        return self.align_weight * align + self.uniform_weight * uniform

    def extra_repr(self) -> str:
        return f"align_weight={self.align_weight:g}, uniform_weight={self.uniform_weight:g}, alpha={self.alpha:g}, t={self.t:g}"
