"""MoCo: momentum contrast with a queue of keys (He et al. 2020).

A query encoder ``f_q`` (trained by gradient) and a key encoder ``f_k`` (an
exponential moving average of ``f_q``, no gradient) encode two augmented views
of each image.  Each query ``q`` is contrasted with its own key ``k⁺`` and the
``K`` keys of earlier batches kept in a FIFO queue:

    L = −log exp(q · k⁺ / τ) / (exp(q · k⁺ / τ) + Σ_{k ∈ queue} exp(q · k / τ))

with ``q`` and the keys unit vectors (τ = 0.07, m = 0.999, K = 65536 in the paper).

Order of the updates in a training step, as in the paper's pseudo-code:
(1) ``θ_k ← m θ_k + (1 − m) θ_q`` from the query weights left by the previous
optimizer step, (2) keys encoded without gradient, (3) loss against the queue
as it was before this batch, (4) the batch's keys enqueued and the oldest
dequeued.  Shuffling BatchNorm is not needed: the open_clip towers use LayerNorm.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InputError
from ...validation import check_count, check_fraction, check_positive
from ..distributed import gather
from ..objective import ObjectiveContext
from ._base import ViewsObjective, resolve
from ._common import attach, check_features, ema_update, frozen_copy, unit


class KeyQueue(nn.Module):
    """A first-in first-out queue of ``size`` unit keys, stored as a ring buffer.

    Attributes
    ----------
    keys : Tensor of shape (size, dim)
        The queue (a buffer); starts as random unit vectors.
    ptr : 0-d LongTensor
        Row where the next key is written, i.e. the oldest key.
    """

    def __init__(self, size: int, dim: int, seed: int = 0) -> None:
        super().__init__()
        self.size = check_count(size, "queue size")
        self.dim = check_count(dim, "feature dim")
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("keys", unit(torch.randn(self.size, self.dim, generator=generator)))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append ``keys`` (B, dim), overwriting the ``B`` oldest entries (all of them if B ≥ size).

        Under ``torchrun`` the keys of every rank are gathered first (rank 0's first), so every
        rank's queue holds every rank's keys, as one process on the full batch.
        """
        check_features("keys", keys, self.dim)
        keys = gather(keys.detach()).to(self.keys.dtype)  # (W*B, dim)
        if len(keys) >= self.size:  # only the newest `size` keys survive
            keys = keys[-self.size :]
        n = len(keys)
        rows = (int(self.ptr) + torch.arange(n, device=self.keys.device)) % self.size
        self.keys[rows] = keys
        self.ptr.fill_((int(self.ptr) + n) % self.size)

    def ordered(self) -> torch.Tensor:
        """The keys from oldest to newest, shape (size, dim)."""
        return torch.roll(self.keys, shifts=-int(self.ptr), dims=0)


def moco_loss(queries: torch.Tensor, keys: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of each query against its key and the queue.

    Parameters
    ----------
    queries, keys : Tensor of shape (B, d)
        Unit vectors; ``keys[i]`` is the positive of ``queries[i]``.
    queue : Tensor of shape (K, d)
        Unit negative keys.
    temperature : float

    Returns
    -------
    0-d Tensor: ``mean_i −log softmax([q_i·k_i, q_i·queue]/τ)_0``.
    """
    l_pos = (queries * keys).sum(dim=1, keepdim=True)  # (B, 1)
    l_neg = queries @ queue.T  # (B, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (B, 1 + K)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


class MoCo(nn.Module):
    """MoCo around an encoder: EMA key encoder, key queue, InfoNCE.

    Parameters
    ----------
    encoder : nn.Module
        Query encoder, input batch -> features (B, dim); trained by the optimizer.
    dim : int
        Its output dimension.
    queue_size : int
        ``K`` keys in the queue.
    momentum : float in [0, 1)
        EMA momentum ``m`` of the key encoder (0.999 in the paper).
    temperature : float
        ``τ`` (0.07).
    seed : int
        Seed of the initial (random unit) queue.
    own_encoder : bool
        Register ``encoder`` as a submodule (its weights in this module's state
        dict).  A caller that already owns and saves it passes False.
    """

    def __init__(
        self,
        encoder: nn.Module,
        dim: int,
        queue_size: int = 4096,
        momentum: float = 0.999,
        temperature: float = 0.07,
        seed: int = 0,
        own_encoder: bool = True,
    ) -> None:
        super().__init__()
        attach(self, "encoder", encoder, own_encoder)
        self.key_encoder = frozen_copy(encoder)
        self.queue = KeyQueue(queue_size, dim, seed=seed)
        self.momentum = check_fraction(momentum, "MoCo momentum")
        self.temperature = check_positive(temperature, "temperature")

    def forward(self, x_query: torch.Tensor, x_key: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of two views (B, ...) each; updates the key encoder and the queue when training."""
        if len(x_query) != len(x_key):
            raise InputError(f"{len(x_query)} query views but {len(x_key)} key views; pass two views of the same batch")
        if self.training:
            ema_update(self.key_encoder, self.encoder, self.momentum)
        q = unit(self.encoder(x_query).float())  # (B, d)
        with torch.no_grad():
            k = unit(self.key_encoder(x_key).float())  # (B, d)
        loss = moco_loss(q, k, self.queue.keys.clone(), self.temperature)
        if self.training:
            self.queue.enqueue(k)
        return loss


class MoCoObjective(ViewsObjective):
    """``--objective moco``: MoCo on the image tower.

    Parameters
    ----------
    ctx : ObjectiveContext
    queue_size : int, optional
        ``K`` (default ``min(4096, max(batch_size, num_train // 2))``: a queue
        longer than the data would hold several stale keys of each image).
    momentum : float
        Key-encoder EMA momentum (0.99 here: the paper's 0.999 suits 10⁵-step
        ImageNet runs; with a few hundred steps the key encoder would barely move).
    temperature : float
        ``τ`` (0.2, MoCo v2's value; v1 used 0.07).
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "moco"

    def __init__(
        self,
        ctx: ObjectiveContext,
        queue_size: int | None = None,
        momentum: float = 0.99,
        temperature: float = 0.2,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        default_queue = min(4096, max(ctx.config.batch_size, ctx.num_train // 2))
        self.moco = MoCo(
            self.encoder, self.dim, queue_size=resolve(queue_size, default_queue), momentum=momentum,
            temperature=temperature, seed=ctx.config.seed, own_encoder=False,
        )  # fmt: skip

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"loss": self.moco(batch["view1"], batch["view2"])}
