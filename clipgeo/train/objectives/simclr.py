"""SimCLR: NT-Xent between two augmented views of each image (Chen et al. 2020).

The loss is the training module's :class:`clipgeo.train.ntxent.NTXentLoss`
(2N views, each anchor's positive is its other view, 2N − 2 negatives).  By
default it acts on the image tower's output itself, as CLIP's loss does, so the
geometry measured is the one the loss shaped; ``projection_dim > 0`` adds
SimCLR's MLP projection head (the analyzers then see the representation
before the head, as the paper evaluates it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..ntxent import NTXentLoss
from ..trainer import ObjectiveContext
from ._base import ViewsObjective
from ._common import check_count, mlp


class SimCLRObjective(ViewsObjective):
    """``--objective simclr``: NT-Xent on two augmented views of the image tower.

    Parameters
    ----------
    ctx : ObjectiveContext
    temperature : float
        ``τ`` (0.5, SimCLR's CIFAR value).
    projection_dim : int
        Output size of the MLP projection head; 0 (default): no head.
    hidden_dim : int
        Hidden width of the head.
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "simclr"

    def __init__(
        self,
        ctx: ObjectiveContext,
        temperature: float = 0.5,
        projection_dim: int = 0,
        hidden_dim: int = 256,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        self.loss = NTXentLoss(temperature=temperature)
        if projection_dim:
            self.head: nn.Module = mlp(self.dim, check_count("hidden_dim", hidden_dim), check_count("projection_dim", projection_dim))
        else:
            self.head = nn.Identity()

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        z_1 = self.head(self.encode(batch["view1"]))  # (B, p)
        z_2 = self.head(self.encode(batch["view2"]))
        return {"loss": self.loss(z_1, z_2)}
