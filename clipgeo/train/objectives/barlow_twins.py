"""Barlow Twins: the cross-correlation of two views pushed to the identity (Zbontar et al. 2021).

The loss
--------
Redundancy reduction, the seeds' second family: no negatives, no EMA target.
Two views ``z_a``, ``z_b`` of N samples, each of D features, are standardised
along the batch, feature by feature, with the batch mean and the **biased**
batch variance (what the paper's ``BatchNorm1d(affine=False)`` computes):

    ẑ = (z − mean_n z) / sqrt(var_n z + ε)          (N, D), ε = 1e-5
    c = ẑ_aᵀ ẑ_b / N                                 (D, D), the cross-correlation
    L = Σ_i (1 − c_ii)²  +  λ Σ_i Σ_{j≠i} c_ij²
        invariance (on-diagonal)   redundancy reduction (off-diagonal)

Analytic values: identical views give ``c_ii = var / (var + ε) ≈ 1``, so the
on-diagonal term is 0 up to ε; identical views whose features are
uncorrelated give ``L ≈ 0``; two views with uncorrelated, independent
standardised features give ``c ≈ 0``: ``L ≈ D``.

Under ``torchrun`` the views of every rank are gathered with gradient
(:func:`clipgeo.train.distributed.gather_with_grad`) and every rank computes
the loss of the **global** batch (batch statistics and ``c`` are not sums
over samples, so a per-rank loss would differ): the gather's backward sums
the W identical losses' gradients and DDP averages them, which gives exactly
the gradient of the single-process run on the full batch.

The objective
-------------
``--objective barlow-twins`` trains the image tower on two augmented views
(:class:`~clipgeo.train.objectives._base.ViewsObjective`); the loss acts on
the tower's raw output itself unless ``projection_dim > 0`` adds the paper's
projector (Linear → BatchNorm → ReLU → Linear; the analyzers see the
representation before it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...validation import check_positive
from ..objective import ObjectiveContext
from ._base import ViewsObjective
from ._common import global_views, optional_head

__all__ = ["BarlowTwinsLoss", "BarlowTwinsObjective", "barlow_twins_terms", "cross_correlation"]

#: ε of the batch standardisation (BatchNorm's default)
EPS = 1e-5


def cross_correlation(z_a: torch.Tensor, z_b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``c = ẑ_aᵀ ẑ_b / N`` of two (N, D) views standardised along the batch (biased variance); (D, D)."""
    n = z_a.shape[0]

    def standardise(z: torch.Tensor) -> torch.Tensor:
        centred = z - z.mean(dim=0, keepdim=True)  # (N, D)
        return centred / torch.sqrt(centred.pow(2).mean(dim=0, keepdim=True) + eps)

    return standardise(z_a).T @ standardise(z_b) / n  # (D, D)


def barlow_twins_terms(z_a: torch.Tensor, z_b: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """The on-diagonal ``Σ (1 − c_ii)²`` and off-diagonal ``Σ_{i≠j} c_ij²`` terms (unweighted), 0-d each."""
    c = cross_correlation(z_a, z_b, eps)  # (D, D)
    diagonal = torch.diagonal(c)
    on = (1.0 - diagonal).pow(2).sum()
    off = c.pow(2).sum() - diagonal.pow(2).sum()
    return on, off



class BarlowTwinsLoss(nn.Module):
    """Barlow Twins loss of two views.

    Parameters
    ----------
    offdiag_weight : float, default 5e-3
        λ > 0, the weight of the redundancy-reduction (off-diagonal) term (the paper's value
        for D = 8192).
    gather : bool or None, default None
        Standardise and correlate over the views of every rank (gather with gradient, global
        loss on every rank).  None: whenever a process group with more than one rank is
        initialised.

    Notes
    -----
    Computed in float32 for float16/bfloat16/float32 inputs, in float64 for float64 inputs.
    Needs at least 2 samples (a batch variance); a feature that is constant over the batch
    standardises to 0.
    """

    def __init__(self, offdiag_weight: float = 5e-3, gather: bool | None = None) -> None:
        super().__init__()
        self.offdiag_weight = check_positive(offdiag_weight, "offdiag_weight")
        self.gather = gather
        self.last_terms: dict[str, float] = {}

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """Loss of N samples seen in two views (row i of each input is sample i).

        Parameters
        ----------
        z_a, z_b : Tensor of shape (N, D)

        Returns
        -------
        Tensor of shape ()
            ``on + λ · off`` over the global batch.  The two terms of the last call
            are kept in ``last_terms`` (``on_diagonal``, ``off_diagonal``) for the log.
        """
        a, b = global_views(z_a, z_b, self.gather, "Barlow Twins")
        on, off = barlow_twins_terms(a, b)
        self.last_terms = {"on_diagonal": float(on.detach()), "off_diagonal": float(off.detach())}
        return on + self.offdiag_weight * off

    def extra_repr(self) -> str:
        return f"offdiag_weight={self.offdiag_weight:g}"


class BarlowTwinsObjective(ViewsObjective):
    """``--objective barlow-twins``: Barlow Twins on two augmented views of the image tower.

    Parameters
    ----------
    ctx : ObjectiveContext
    offdiag_weight : float
        λ of the off-diagonal term (5e-3).
    projection_dim : int
        Output size of the projector; 0 (default): the loss acts on the tower's output.
    hidden_dim : int
        Hidden width of the projector.
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "barlow-twins"

    def __init__(
        self,
        ctx: ObjectiveContext,
        offdiag_weight: float = 5e-3,
        projection_dim: int = 0,
        hidden_dim: int = 256,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        self.loss = BarlowTwinsLoss(offdiag_weight=offdiag_weight)
        self.head = optional_head(self.dim, projection_dim, hidden_dim)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        z_1 = self.head(self.encode(batch["view1"]))  # (B, p)
        z_2 = self.head(self.encode(batch["view2"]))
        loss = self.loss(z_1, z_2)
        return {"loss": loss, **self.loss.last_terms}
