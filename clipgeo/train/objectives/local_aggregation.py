"""Local aggregation (Zhuang, Zhai & Yamins 2019).

A memory bank holds one unit vector ``v̄_j`` per training sample (as in
instance discrimination, :mod:`.memory_bank`).  For an anchor ``v_i``:

- background neighbours ``B_i``: its ``k`` nearest bank rows by cosine;
- close neighbours ``C_i``: the bank rows that share the anchor's k-means
  cluster in at least one of ``H`` clusterings of the bank (run with different
  seeds, repeated once per pass over the data).

With ``P(A | v) = Σ_{j∈A} exp(v̄_j · v / τ) / Z`` the loss is

    L_i = −log P(C_i ∩ B_i | v_i) / P(B_i | v_i)

(``Z`` cancels), pulling the anchor towards the close neighbours among its
background.  The paper's L2 weight penalty belongs to the optimizer.

Choices made here (the paper is silent or differs in scale):
- the anchor's own bank row is always in ``B_i`` (it fills one of the ``k``
  places) and in ``C_i``, so ``C_i ∩ B_i`` is never empty;
- before the first clustering every sample is its own cluster, so the loss
  starts as instance discrimination against the background (the paper starts
  from an instance-discrimination-trained network);
- the bank is re-clustered automatically once ``n_data`` samples have gone
  through ``forward`` since the last clustering (one epoch), or on
  :meth:`LocalAggregationLoss.recluster`.  k-means is scikit-learn's
  ``KMeans`` (k-means++, one init) on the bank rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import InputError
from ...runtime import world_size
from ...validation import check_count, check_positive
from ..objective import ObjectiveContext
from ._base import ViewsObjective, resolve
from ._common import check_features, unit
from .memory_bank import MemoryBank


def close_mask(labels: torch.Tensor, anchors: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """Which neighbours share a cluster with their anchor in at least one clustering.

    Parameters
    ----------
    labels : LongTensor of shape (H, N)
        Cluster id of each bank row in each of ``H`` clusterings.
    anchors : LongTensor of shape (B,)
        Sample ids of the anchors.
    neighbours : LongTensor of shape (B, k)
        Bank rows to test for each anchor.

    Returns
    -------
    BoolTensor of shape (B, k).
    """
    anchor_labels = labels[:, anchors]  # (H, B)
    neighbour_labels = labels[:, neighbours]  # (H, B, k)
    return (neighbour_labels == anchor_labels[:, :, None]).any(dim=0)


def local_aggregation_loss(logits: torch.Tensor, close: torch.Tensor) -> torch.Tensor:
    """``mean_b [−log Σ_{j close} exp(logit_bj) + log Σ_j exp(logit_bj)]`` over the background.

    Parameters
    ----------
    logits : Tensor of shape (B, k)
        ``v̄_j · v_b / τ`` for the ``k`` background neighbours of each anchor.
    close : BoolTensor of shape (B, k)
        Which of them are close neighbours; at least one per row.
    """
    if not bool(close.any(dim=1).all()):
        raise InputError("an anchor has no close neighbour among its background; include the anchor's own bank row")
    log_close = torch.logsumexp(logits.masked_fill(~close, float("-inf")), dim=1)
    log_background = torch.logsumexp(logits, dim=1)
    return (log_background - log_close).mean()


class LocalAggregationLoss(nn.Module):
    """Local aggregation over a memory bank with repeated k-means clusterings.

    Parameters
    ----------
    n_data : int
        Number of training samples ``N``.
    dim : int
        Feature dimension.
    n_background : int
        ``k`` background neighbours (4096 in the paper); at most ``n_data``.
    n_clusters : int
        Clusters per k-means clustering (10000 in the paper on ImageNet); < ``n_data``.
    n_clusterings : int
        ``H`` clusterings with different seeds (6 in the paper).
    temperature : float
        ``τ`` (0.07).
    momentum : float in [0, 1)
        Bank update momentum (0.5).
    seed : int
        Seed of the bank and of the clusterings.
    """

    def __init__(
        self,
        n_data: int,
        dim: int,
        n_background: int = 4096,
        n_clusters: int = 100,
        n_clusterings: int = 3,
        temperature: float = 0.07,
        momentum: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.bank = MemoryBank(n_data, dim, momentum=momentum, seed=seed)
        self.n_background = check_count(n_background, "n_background", minimum=2)
        if self.n_background > n_data:
            raise InputError(f"n_background ({n_background}) exceeds the number of training samples ({n_data}); lower it")
        self.n_clusters = check_count(n_clusters, "n_clusters", minimum=2)
        if self.n_clusters >= n_data:
            raise InputError(f"n_clusters ({n_clusters}) must be smaller than the number of training samples ({n_data})")
        self.n_clusterings = check_count(n_clusterings, "n_clusterings")
        self.temperature = check_positive(temperature, "temperature")
        self.seed = int(seed)
        # before the first clustering every sample is its own cluster
        self.register_buffer("labels", torch.arange(n_data).repeat(self.n_clusterings, 1))  # (H, N)
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))  # samples since the last clustering
        self.register_buffer("n_reclusterings", torch.zeros((), dtype=torch.long))

    @property
    def n_data(self) -> int:
        return self.bank.size

    @torch.no_grad()
    def recluster(self) -> None:
        """Run the ``H`` k-means clusterings of the current bank and store their labels."""
        from sklearn.cluster import KMeans

        points = self.bank.vectors.detach().cpu().double().numpy()
        labels = np.empty((self.n_clusterings, self.n_data), dtype=np.int64)
        for h in range(self.n_clusterings):
            seed = self.seed + 1000 * int(self.n_reclusterings) + h
            labels[h] = KMeans(n_clusters=self.n_clusters, n_init=1, random_state=seed).fit_predict(points)
        self.labels.copy_(torch.from_numpy(labels))
        self.seen.zero_()
        self.n_reclusterings += 1

    def background(self, anchors: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Row ids of the ``k`` background neighbours of unit ``anchors`` (B, d), own row first, shape (B, k)."""
        with torch.no_grad():
            sims = anchors.detach() @ self.bank.vectors.T  # (B, N)
            sims[torch.arange(len(indices)), indices] = float("inf")  # the anchor's own row is always in
            return sims.topk(self.n_background, dim=1).indices

    def forward(self, features: torch.Tensor, indices: torch.Tensor, update: bool = True) -> torch.Tensor:
        """Loss of a batch; then (if ``update``) bank update and, after a full pass, re-clustering.

        Parameters
        ----------
        features : Tensor of shape (B, d)
            Encoder output (normalised here).
        indices : LongTensor of shape (B,)
            Sample ids, distinct.
        update : bool
            Update the bank rows and the clustering schedule.

        Returns
        -------
        0-d Tensor.
        """
        check_features("features", features, self.bank.dim)
        self.bank.check_indices(indices)
        if len(indices) != len(features):
            raise InputError(f"{len(features)} feature rows but {len(indices)} sample indices; pass one index per row")
        v = unit(features.float())  # (B, d)
        neighbours = self.background(v, indices)  # (B, k)
        logits = torch.einsum("bd,bkd->bk", v, self.bank.vectors[neighbours]) / self.temperature  # (B, k)
        loss = local_aggregation_loss(logits, close_mask(self.labels, indices, neighbours))
        if update:
            self.bank.update(indices, v)  # every rank's rows under torchrun (MemoryBank.update gathers)
            self.seen += len(indices) * world_size()
            if int(self.seen) >= self.n_data:
                self.recluster()
        return loss


class LocalAggregationObjective(ViewsObjective):
    """``--objective local-aggregation``: local aggregation of the image tower (one augmented view per step).

    Parameters
    ----------
    ctx : ObjectiveContext
    n_background : int, optional
        ``k`` (default ``min(4096, num_train // 2)``).
    n_clusters : int, optional
        Clusters per k-means (default ``max(2, min(100, num_train // 20))``).
    n_clusterings, temperature, momentum
        See :class:`LocalAggregationLoss`.
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "local-aggregation"

    def __init__(
        self,
        ctx: ObjectiveContext,
        n_background: int | None = None,
        n_clusters: int | None = None,
        n_clusterings: int = 3,
        temperature: float = 0.07,
        momentum: float = 0.5,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        n = ctx.num_train
        self.loss = LocalAggregationLoss(
            n, self.dim, n_background=resolve(n_background, min(4096, max(2, n // 2))),
            n_clusters=resolve(n_clusters, max(2, min(100, n // 20))), n_clusterings=n_clusterings,
            temperature=temperature, momentum=momentum, seed=ctx.config.seed,
        )  # fmt: skip

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        loss = self.loss(self.encode(batch["view1"]), batch["index"])
        return {"loss": loss, "clusterings": float(self.loss.n_reclusterings)}
