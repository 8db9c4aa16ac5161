"""SwAV: swapped prediction of Sinkhorn–Knopp codes (Caron et al. 2020).

Features ``z`` (unit vectors) of two views are scored against ``K`` learnable
unit prototypes ``c_k``: ``s = z Cᵀ``.  Each view's *codes* ``q`` are soft
assignments of the batch to the prototypes, computed without gradient by the
Sinkhorn–Knopp algorithm so that every prototype receives the same share of the
batch (equipartition, which prevents collapse):

    Q = argmax_{Q ∈ 𝒬} Tr(Qᵀ S) + ε H(Q),
    𝒬 = {Q ∈ R₊^{K×B} : Q 1_B = 1_K / K, Qᵀ 1_K = 1_B / B}.

The loss predicts one view's code from the other view's scores (swapped):

    L = −½ mean_b [Σ_k q¹_bk log p²_bk + Σ_k q²_bk log p¹_bk],
    p = softmax(s / τ)

with ε = 0.05, 3 Sinkhorn iterations, τ = 0.1 (paper).  Prototypes are
renormalised to unit length before every forward.  Multi-crop, the feature
queue and freezing the prototypes during the first epoch are left out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InputError
from ...runtime import is_distributed, rank
from ...validation import check_count, check_positive
from ..distributed import gather
from ..objective import ObjectiveContext
from ._base import ViewsObjective
from ._common import check_features, unit


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, n_iters: int = 3) -> torch.Tensor:
    """Soft, balanced assignment of a batch to prototypes.

    Parameters
    ----------
    scores : Tensor of shape (B, K)
        Similarities of ``B`` samples to ``K`` prototypes.
    epsilon : float
        Entropy weight ``ε``: ``Q ∝ exp(scores / ε)`` before balancing.
    n_iters : int
        Alternating row/column normalisations; the prototype marginals approach
        ``B / K`` as ``n_iters`` grows.

    Returns
    -------
    Tensor of shape (B, K), float32 on the device of ``scores``: codes whose
    rows sum to 1 exactly (one unit of mass per sample) and whose columns sum to
    ≈ ``B / K`` (equal share per prototype).
    """
    logits = scores.detach().double() / epsilon
    q = torch.exp(logits - logits.max()).T  # (K, B); a global shift cancels in the normalisations
    q /= q.sum()
    n_prototypes, batch = q.shape
    for _ in range(n_iters):
        q /= q.sum(dim=1, keepdim=True)  # each prototype gets total mass 1/K
        q /= n_prototypes
        q /= q.sum(dim=0, keepdim=True)  # each sample gets total mass 1/B
        q /= batch
    q *= batch  # rows of the result (samples) sum to 1
    return q.T.float()


def swapped_prediction_loss(
    scores_1: torch.Tensor, scores_2: torch.Tensor, codes_1: torch.Tensor, codes_2: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``−½ mean_b [Σ_k q¹ log softmax(s²/τ) + Σ_k q² log softmax(s¹/τ)]``.

    scores_v : (B, K) prototype scores of view v; codes_v : (B, K) its Sinkhorn codes.
    """
    log_p1 = F.log_softmax(scores_1 / temperature, dim=1)
    log_p2 = F.log_softmax(scores_2 / temperature, dim=1)
    return -0.5 * ((codes_1 * log_p2).sum(dim=1) + (codes_2 * log_p1).sum(dim=1)).mean()


class SwAVLoss(nn.Module):
    """SwAV head: ``K`` unit prototypes, Sinkhorn codes, swapped prediction.

    Parameters
    ----------
    dim : int
        Feature dimension.
    n_prototypes : int
        ``K`` (3000 in the paper on ImageNet).
    temperature : float
        ``τ`` of the prediction softmax (0.1).
    epsilon : float
        Sinkhorn entropy weight ``ε`` (0.05).
    sinkhorn_iters : int
        Sinkhorn–Knopp iterations (3).
    seed : int
        Seed of the initial prototypes.
    """

    def __init__(
        self,
        dim: int,
        n_prototypes: int = 64,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iters: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim = check_count(dim, "feature dim")
        self.n_prototypes = check_count(n_prototypes, "n_prototypes", minimum=2)
        self.temperature = check_positive(temperature, "temperature")
        self.epsilon = check_positive(epsilon, "epsilon")
        self.sinkhorn_iters = check_count(sinkhorn_iters, "sinkhorn_iters")
        generator = torch.Generator().manual_seed(seed)
        self.prototypes = nn.Parameter(unit(torch.randn(self.n_prototypes, self.dim, generator=generator)))  # (K, d)

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Rescale every prototype to unit length (in place)."""
        self.prototypes.copy_(unit(self.prototypes))

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """``unit(z) · c_k`` for features (B, d): shape (B, K)."""
        return unit(features.float()) @ self.prototypes.T

    def forward(self, features_1: torch.Tensor, features_2: torch.Tensor) -> torch.Tensor:
        """Swapped-prediction loss of two views (B, d) each; 0-d Tensor."""
        check_features("features_1", features_1, self.dim)
        check_features("features_2", features_2, self.dim)
        if len(features_1) != len(features_2):
            raise InputError(f"the two views have {len(features_1)} and {len(features_2)} rows; pass the same batch twice")
        self.normalize_prototypes()
        s1, s2 = self.scores(features_1), self.scores(features_2)  # (B, K) each
        # the equipartition is over the global batch: Sinkhorn on every rank's scores, this rank's rows kept
        start = rank() * len(s1) if is_distributed() else 0
        q1 = sinkhorn_knopp(gather(s1), self.epsilon, self.sinkhorn_iters)[start : start + len(s1)]
        q2 = sinkhorn_knopp(gather(s2), self.epsilon, self.sinkhorn_iters)[start : start + len(s2)]
        return swapped_prediction_loss(s1, s2, q1, q2, self.temperature)


class SwAVObjective(ViewsObjective):
    """``--objective swav``: SwAV on the image tower, two views, no multi-crop.

    Parameters
    ----------
    ctx : ObjectiveContext
    n_prototypes, temperature, epsilon, sinkhorn_iters
        See :class:`SwAVLoss` (32 prototypes by default: a few per class of the shapes data).
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "swav"

    def __init__(
        self,
        ctx: ObjectiveContext,
        n_prototypes: int = 32,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iters: int = 3,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        self.loss = SwAVLoss(
            self.dim, n_prototypes=n_prototypes, temperature=temperature, epsilon=epsilon,
            sinkhorn_iters=sinkhorn_iters, seed=ctx.config.seed,
        )  # fmt: skip

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"loss": self.loss(self.encode(batch["view1"]), self.encode(batch["view2"]))}
