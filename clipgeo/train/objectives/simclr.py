"""SimCLR: NT-Xent between two augmented views of each image (Chen et al. 2020).

The loss
--------
SimCLR's NT-Xent loss (normalised temperature-scaled cross entropy).

Two views ``z_a``, ``z_b`` of N samples give 2N embeddings.  Each of the 2N is
an anchor: its positive is the other view of the same sample, its negatives the
2N − 2 remaining embeddings (itself excluded).  With cosine similarity
``sim`` and temperature τ (Chen et al. 2020):

    ℓ(i) = −log [ exp(sim(z_i, z_p(i))/τ) / Σ_{k≠i} exp(sim(z_i, z_k)/τ) ]
    L = mean of ℓ over the 2N anchors

This is the formulation SSL libraries compute.  Analytic values: when every
embedding is the same vector, ``L = log(2N − 1)``; when the two views agree and
different samples are orthogonal, ``L = log(1 + (2N − 2)·exp(−1/τ))``.
Under ``torchrun`` the negatives come from every rank (gather with gradient,
local anchors), which reproduces the full-batch loss and gradients.

The objective
-------------
The loss is :class:`NTXentLoss` above
(2N views, each anchor's positive is its other view, 2N − 2 negatives).  By
default it acts on the image tower's output itself, as CLIP's loss does, so the
geometry measured is the one the loss shaped; ``projection_dim > 0`` adds
SimCLR's MLP projection head (the analyzers then see the representation
before the head, as the paper evaluates it).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ...runtime import is_distributed, rank
from ..distributed import gather_with_grad
from ..objective import ObjectiveContext
from ._base import ViewsObjective
from ._common import optional_head

__all__ = ["NTXentLoss", "SimCLRObjective"]


class NTXentLoss(nn.Module):
    """NT-Xent over two views.

    Parameters
    ----------
    temperature : float, default 0.5
        τ > 0; similarities are cosines divided by τ.
    gather : bool or None, default None
        Take negatives from all ranks (gather-with-grad, local anchors).  None:
        whenever a process group with more than one rank is initialised.

    Notes
    -----
    Computed in float32 whatever the input dtype; finite for any finite input,
    also at low temperature.
    """

    def __init__(self, temperature: float = 0.5, gather: bool | None = None) -> None:
        super().__init__()
        if not (temperature > 0 and math.isfinite(temperature)):
            raise InputError(f"illegal temperature {temperature!r}; give a positive number (SimCLR uses 0.1 to 0.5)")
        self.temperature = float(temperature)
        self.gather = gather

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """Loss of N samples seen in two views (row i of each input is sample i).

        Parameters
        ----------
        z_a, z_b : Tensor of shape (N, d)
            Embeddings of the first and second view (any norm; cosine is used).

        Returns
        -------
        Tensor of shape ()
            Mean NT-Xent over the 2N anchors, float32.
        """
        if z_a.ndim != 2 or z_a.shape != z_b.shape:
            raise InputError(
                f"NTXentLoss needs two (N, d) tensors of the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
            )
        if z_a.shape[0] < 2 and not (self.gather or (self.gather is None and is_distributed())):
            raise InputError("NTXentLoss needs at least 2 samples (one positive and some negatives per anchor)")
        a = F.normalize(z_a.float(), dim=-1)  # (n, d)
        b = F.normalize(z_b.float(), dim=-1)  # (n, d)
        gather = is_distributed() if self.gather is None else self.gather
        n = a.shape[0]
        if gather:
            all_a, all_b, offset = gather_with_grad(a), gather_with_grad(b), rank() * n  # (N, d) each
        else:
            all_a, all_b, offset = a, b, 0
        big_n = all_a.shape[0]

        anchors = torch.cat([a, b], dim=0)  # (2n, d)
        candidates = torch.cat([all_a, all_b], dim=0)  # (2N, d)
        logits = anchors @ candidates.T / self.temperature  # (2n, 2N)
        idx = torch.arange(n, device=a.device) + offset  # global index of the local samples
        self_col = torch.cat([idx, idx + big_n])  # (2n,) column of each anchor itself
        positive_col = torch.cat([idx + big_n, idx])  # (2n,) column of its other view
        rows = torch.arange(2 * n, device=a.device)
        mask = torch.zeros_like(logits, dtype=torch.bool)
        mask[rows, self_col] = True
        logits = logits.masked_fill(mask, float("-inf"))
        return F.cross_entropy(logits, positive_col)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:g}"



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
        self.head = optional_head(self.dim, projection_dim, hidden_dim)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        z_1 = self.head(self.encode(batch["view1"]))  # (B, p)
        z_2 = self.head(self.encode(batch["view2"]))
        return {"loss": self.loss(z_1, z_2)}
