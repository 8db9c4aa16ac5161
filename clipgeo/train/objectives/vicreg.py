"""VICReg: variance, invariance and covariance terms on two views (Bardes et al. 2022).

The loss
--------
Redundancy reduction, the seeds' second family: no negatives, no EMA target.
For two views ``z_a``, ``z_b`` of N samples, each of D features (as in the
paper's reference code; variances are unbiased, ddof = 1):

    inv = mean_{n,k} (z_a − z_b)²_{nk}                               (invariance, an MSE)
    var = ½ [ mean_k relu(γ − sqrt(Var_n z_a,k + ε)) + same for z_b ]  (γ = 1, ε = 1e-4)
    cov = Σ_{i≠j} C(z_a)_ij² / D + Σ_{i≠j} C(z_b)_ij² / D            (C: covariance, ddof = 1)
    L = λ · inv + μ · var + ν · cov                                   (λ = μ = 25, ν = 1)

Analytic values: identical views give ``inv = 0``; a collapsed batch (every row
the same) gives ``var = 1 − sqrt(ε) = 0.99`` and ``cov = 0``, so ``L = 24.75``;
identical views with uncorrelated features of standard deviation ≥ 1 give ``L = 0``.

Under ``torchrun`` the views of every rank are gathered with gradient and every
rank computes the loss of the **global** batch (variances and covariances are
not sums over samples): with the gather's summed backward and DDP's average
this is exactly the single-process gradient on the full batch.

The objective
-------------
``--objective vicreg`` trains the image tower on two augmented views; the loss
acts on the tower's raw output itself unless ``projection_dim > 0`` adds the
paper's expander (Linear → BatchNorm → ReLU → Linear).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ...validation import check_positive, check_scalar
from ..objective import ObjectiveContext
from ._base import ViewsObjective
from ._common import global_views, optional_head

__all__ = ["VICRegLoss", "VICRegObjective", "vicreg_terms"]

#: ε under the square root of the variance term
EPS = 1e-4


def _off_diagonal_sq(z: torch.Tensor) -> torch.Tensor:
    """``Σ_{i≠j} C_ij² / D`` of the (D, D) covariance (ddof = 1) of z (N, D); 0-d."""
    n, d = z.shape
    centred = z - z.mean(dim=0, keepdim=True)
    cov = centred.T @ centred / (n - 1)  # (D, D)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_terms(
    z_a: torch.Tensor, z_b: torch.Tensor, gamma: float = 1.0, eps: float = EPS
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The unweighted invariance, variance and covariance terms of two (N, D) views; 0-d each."""
    invariance = F.mse_loss(z_a, z_b)
    std_a = torch.sqrt(z_a.var(dim=0) + eps)  # (D,), ddof = 1
    std_b = torch.sqrt(z_b.var(dim=0) + eps)
    variance = 0.5 * (F.relu(gamma - std_a).mean() + F.relu(gamma - std_b).mean())
    covariance = _off_diagonal_sq(z_a) + _off_diagonal_sq(z_b)
    return invariance, variance, covariance



class VICRegLoss(nn.Module):
    """VICReg loss of two views.

    Parameters
    ----------
    sim_weight, var_weight, cov_weight : float, default 25, 25, 1
        λ, μ, ν: weights of the invariance, variance and covariance terms (the paper's);
        each ≥ 0, not all 0.
    gamma : float, default 1
        Target standard deviation of every feature.
    gather : bool or None, default None
        Compute the terms over the views of every rank (gather with gradient, global loss
        on every rank).  None: whenever a process group with more than one rank is
        initialised.

    Notes
    -----
    Computed in float32 for float16/bfloat16/float32 inputs, in float64 for float64 inputs.  Needs at least 2 samples.
    """

    def __init__(
        self,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        gamma: float = 1.0,
        gather: bool | None = None,
    ) -> None:
        super().__init__()
        self.weights = tuple(
            float(check_scalar(w, name, min_val=0.0))
            for w, name in ((sim_weight, "sim_weight"), (var_weight, "var_weight"), (cov_weight, "cov_weight"))
        )
        if not any(self.weights):
            raise InputError("VICReg weights are all 0, so the loss is 0; give sim_weight, var_weight or cov_weight > 0")
        self.gamma = check_positive(gamma, "gamma")
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
            ``λ inv + μ var + ν cov`` over the global batch.  The terms of the last
            call are kept in ``last_terms`` (``invariance``, ``variance``, ``covariance``).
        """
        a, b = global_views(z_a, z_b, self.gather, "VICReg")
        inv, var, cov = vicreg_terms(a, b, self.gamma)
        self.last_terms = {"invariance": float(inv.detach()), "variance": float(var.detach()),
                           "covariance": float(cov.detach())}  # fmt: skip
        lam, mu, nu = self.weights
        return lam * inv + mu * var + nu * cov

    def extra_repr(self) -> str:
        lam, mu, nu = self.weights
        return f"sim_weight={lam:g}, var_weight={mu:g}, cov_weight={nu:g}, gamma={self.gamma:g}"


class VICRegObjective(ViewsObjective):
    """``--objective vicreg``: VICReg on two augmented views of the image tower.

    Parameters
    ----------
    ctx : ObjectiveContext
    sim_weight, var_weight, cov_weight : float
        λ, μ, ν (25, 25, 1).
    projection_dim : int
        Output size of the expander; 0 (default): the loss acts on the tower's output.
    hidden_dim : int
        Hidden width of the expander.
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "vicreg"

    def __init__(
        self,
        ctx: ObjectiveContext,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        projection_dim: int = 0,
        hidden_dim: int = 256,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        self.loss = VICRegLoss(sim_weight=sim_weight, var_weight=var_weight, cov_weight=cov_weight)
        self.head = optional_head(self.dim, projection_dim, hidden_dim)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        z_1 = self.head(self.encode(batch["view1"]))  # (B, p)
        z_2 = self.head(self.encode(batch["view2"]))
        loss = self.loss(z_1, z_2)
        return {"loss": loss, **self.loss.last_terms}
