"""BYOL: bootstrap your own latent, no negatives (Grill et al. 2020).

An online network (encoder ``f_θ`` → projector ``g_θ`` → predictor ``q_θ``)
predicts the projection that a target network (encoder ``f_ξ`` → projector
``g_ξ``, an exponential moving average of the online one, no gradient) gives to
another view of the same image:

    L(v, v') = ‖ q̄_θ(z_θ(v)) − z̄_ξ(v') ‖² = 2 − 2 cos(q_θ(z_θ(v)), z_ξ(v')),
    L_BYOL = L(v₁, v₂) + L(v₂, v₁),          ξ ← m ξ + (1 − m) θ

(bars are unit vectors).  No negative pair appears anywhere: this is the
non-contrastive counterpart of every other objective here.  The predictor
and the EMA target are what keep it from collapsing.

The target is updated at the start of every training forward, from the online
weights left by the previous optimizer step (MoCo's order; BYOL updates right
after the step, which differs only in where the last update falls).  The
momentum is constant (the paper raises it from 0.996 towards 1 on a cosine
schedule).  Analyzers look at the encoder output, before the projector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...errors import InputError
from ...validation import check_count, check_fraction
from ..objective import ObjectiveContext
from ._base import ViewsObjective
from ._common import attach, ema_update, frozen_copy, mlp, unit


def byol_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``mean_b (2 − 2 cos(p_b, z_b))``, i.e. the squared distance of the unit vectors.

    predictions, targets : (B, d); the targets should carry no gradient.
    """
    return (2.0 - 2.0 * (unit(predictions.float()) * unit(targets.float())).sum(dim=1)).mean()


class BYOL(nn.Module):
    """BYOL around an encoder: projector, predictor, EMA target.

    Parameters
    ----------
    encoder : nn.Module
        Online encoder, input batch -> features (B, dim).
    dim : int
        Its output dimension.
    projection_dim : int
        Output of the projector and predictor (256 in the paper).
    hidden_dim : int
        Hidden width of both MLPs (4096 in the paper).
    momentum : float in [0, 1)
        EMA momentum of the target (0.996).
    own_encoder : bool
        Register ``encoder`` as a submodule; a caller that already owns and saves it passes False.
    """

    def __init__(
        self,
        encoder: nn.Module,
        dim: int,
        projection_dim: int = 64,
        hidden_dim: int = 256,
        momentum: float = 0.996,
        own_encoder: bool = True,
    ) -> None:
        super().__init__()
        dim = check_count(dim, "feature dim")
        projection_dim = check_count(projection_dim, "projection_dim")
        hidden_dim = check_count(hidden_dim, "hidden_dim")
        self.momentum = check_fraction(momentum, "BYOL momentum")
        attach(self, "encoder", encoder, own_encoder)
        self.projector = mlp(dim, hidden_dim, projection_dim)
        self.predictor = mlp(projection_dim, hidden_dim, projection_dim)
        self.target_encoder = frozen_copy(encoder)
        self.target_projector = frozen_copy(self.projector)

    @torch.no_grad()
    def update_target(self) -> None:
        """``ξ ← m ξ + (1 − m) θ`` for the encoder and the projector."""
        ema_update(self.target_encoder, self.encoder, self.momentum)
        ema_update(self.target_projector, self.projector, self.momentum)

    def forward(self, x_1: torch.Tensor, x_2: torch.Tensor) -> torch.Tensor:
        """Symmetrised BYOL loss of two views (B, ...) each; 0-d Tensor."""
        if len(x_1) != len(x_2):
            raise InputError(f"the two views have {len(x_1)} and {len(x_2)} rows; pass the same batch twice")
        if self.training:
            self.update_target()
        p_1 = self.predictor(self.projector(self.encoder(x_1).float()))  # (B, p)
        p_2 = self.predictor(self.projector(self.encoder(x_2).float()))
        with torch.no_grad():
            z_1 = self.target_projector(self.target_encoder(x_1).float())  # (B, p)
            z_2 = self.target_projector(self.target_encoder(x_2).float())
        return byol_loss(p_1, z_2) + byol_loss(p_2, z_1)


class BYOLObjective(ViewsObjective):
    """``--objective byol``: BYOL on the image tower.

    Parameters
    ----------
    ctx : ObjectiveContext
    projection_dim, hidden_dim
        Sizes of the projector and predictor MLPs (64 and 256 here).
    momentum : float
        Target EMA momentum (0.99 here for short runs; the paper starts at 0.996).
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "byol"

    def __init__(
        self,
        ctx: ObjectiveContext,
        projection_dim: int = 64,
        hidden_dim: int = 256,
        momentum: float = 0.99,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        self.byol = BYOL(
            self.encoder, self.dim, projection_dim=projection_dim, hidden_dim=hidden_dim, momentum=momentum,
            own_encoder=False,
        )  # fmt: skip

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"loss": self.byol(batch["view1"], batch["view2"])}
