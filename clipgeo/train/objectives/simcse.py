"""Unsupervised SimCSE: two dropout passes of the text tower as the positive pair (Gao et al. 2021).

Each sentence is encoded twice with dropout active; the two outputs ``h_i`` and
``h_i⁺`` differ only by the dropout masks.  With cosine similarity and the other
sentences of the batch as negatives:

    L = mean_i −log exp(cos(h_i, h_i⁺) / τ) / Σ_j exp(cos(h_i, h_j⁺) / τ)

(τ = 0.05, dropout p = 0.1 in the paper).  The loss is one-directional, as in the paper.

open_clip's transformer blocks have no dropout, so :func:`add_dropout` adds it
where BERT has it: on the output of each attention and MLP sub-layer before the
residual sum (forward hooks on the blocks' ``ls_1``/``ls_2`` layer-scale
modules) and on the token embeddings.  The hooks act only in training mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InputError
from ...runtime import is_distributed, rank
from ...validation import check_fraction, check_positive
from ..distributed import gather_with_grad
from ..objective import Objective, ObjectiveContext
from ._common import check_features, unit


def simcse_loss(h: torch.Tensor, h_pos: torch.Tensor, temperature: float = 0.05, gather: bool | None = None) -> torch.Tensor:
    """In-batch InfoNCE between two encodings of the same sentences.

    Parameters
    ----------
    h, h_pos : Tensor of shape (B, d)
        Two dropout passes; row ``i`` of each is the same sentence.
    temperature : float
    gather : bool or None
        Take the candidates ``h⁺`` of every rank (gather with gradient, local anchors), so
        that ``torchrun`` reproduces the full-batch loss and gradients.  None: whenever a
        process group with more than one rank is initialised.

    Returns
    -------
    0-d Tensor: ``mean_i −log softmax_j(cos(h_i, h⁺_j) / τ)_i``.
    """
    anchors, candidates = unit(h.float()), unit(h_pos.float())  # (B, d) each
    offset = 0
    if is_distributed() if gather is None else gather:
        candidates, offset = gather_with_grad(candidates), rank() * len(anchors)  # (W*B, d)
    logits = anchors @ candidates.T / temperature  # (B, W*B)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device) + offset)


class DropoutHandles(list):
    """Hook handles of :func:`add_dropout`; ``always`` keeps the dropout on in eval mode too."""

    always: bool = False

    def remove(self) -> None:
        """Take the dropout out again."""
        for handle in self:
            handle.remove()
        self.clear()


def _dropout_hook(p: float, handles: DropoutHandles):
    def hook(module: nn.Module, inputs, output):
        return F.dropout(output, p=p, training=module.training or handles.always)

    return hook


def add_dropout(tower: nn.Module, p: float, skip: tuple[str, ...] = ("visual",)) -> DropoutHandles:
    """Register dropout ``p`` on the sub-layer outputs and token embeddings of an open_clip text tower.

    Parameters
    ----------
    tower : nn.Module
        A module containing open_clip ``ResidualAttentionBlock`` s (with ``ls_1``,
        ``ls_2``) and optionally a ``token_embedding``: a text tower, or a whole
        CLIP model (the image tower under ``skip`` is left alone).
    p : float in [0, 1)
    skip : tuple of str
        Names of submodules (first component of the dotted name) to leave without dropout.

    Returns
    -------
    DropoutHandles: a list of hook handles; ``.remove()`` undoes it, ``.always = True``
    keeps the dropout on in eval mode.

    Raises
    ------
    InputError
        When the tower has no transformer block to put dropout into.
    """
    p = check_fraction(p, "dropout")
    handles = DropoutHandles()
    n_blocks = 0
    for name, module in tower.named_modules():
        if name.split(".")[0] in skip:
            continue
        if all(hasattr(module, a) for a in ("ls_1", "ls_2", "attn", "mlp")):
            handles.append(module.ls_1.register_forward_hook(_dropout_hook(p, handles)))
            handles.append(module.ls_2.register_forward_hook(_dropout_hook(p, handles)))
            n_blocks += 1
        elif name.split(".")[-1] == "token_embedding" and isinstance(module, nn.Embedding):
            handles.append(module.register_forward_hook(_dropout_hook(p, handles)))
    if not n_blocks:
        handles.remove()
        raise InputError(f"{type(tower).__name__} has no transformer blocks for SimCSE's dropout; use an open_clip text tower")
    return handles


class SimCSE(nn.Module):
    """SimCSE around a text encoder: dropout hooks, two passes, in-batch InfoNCE.

    Parameters
    ----------
    encoder : nn.Module or callable
        Text encoder, token ids (B, L) -> features (B, d), built from open_clip
        blocks (e.g. ``clip_model.encode_text``).  A module is registered as a
        submodule; a plain callable is only referenced.
    temperature : float
        ``τ`` (0.05).
    dropout : float in (0, 1)
        Dropout probability added to the encoder (0.1).
    dropout_in : nn.Module, optional
        Where to add the dropout (default: ``encoder``); e.g. the CLIP model
        whose ``encode_text`` is the encoder.
    """

    def __init__(
        self, encoder, temperature: float = 0.05, dropout: float = 0.1, dropout_in: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.temperature = check_positive(temperature, "temperature")
        self.dropout = check_fraction(dropout, "dropout")
        if self.dropout == 0:
            raise InputError("SimCSE needs dropout > 0 (its two passes would be identical); pass e.g. dropout=0.1")
        target = encoder if dropout_in is None else dropout_in
        if not isinstance(target, nn.Module):
            raise InputError("SimCSE needs the module to put dropout into; pass dropout_in=<the text tower>")
        self.hooks = add_dropout(target, self.dropout)

    def two_passes(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Two encodings of token ids (B, L) with independent dropout masks, (B, d) each, also in eval mode."""
        always = self.hooks.always
        self.hooks.always = True
        try:
            return self.encoder(tokens), self.encoder(tokens)
        finally:
            self.hooks.always = always

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of token ids (B, L): two passes through the encoder; 0-d Tensor.

        The dropout acts in training mode only: in eval mode the two passes coincide.
        """
        h = self.encoder(tokens)  # (B, d)
        h_pos = self.encoder(tokens)  # (B, d), other dropout masks
        check_features("text features", h)
        return simcse_loss(h, h_pos, self.temperature)


class TokensDataset(torch.utils.data.Dataset):
    """Captions of a sample source as token ids: items ``text`` (L,) int64, ``index``, ``label``.

    Parameters
    ----------
    source : sequence of (image, caption)
        A ``captions`` attribute, when present, avoids decoding images.
    indices : sequence of int
        The split.
    tokenizer : callable list[str] -> LongTensor (n, L)
    """

    def __init__(self, source: Sequence, indices: Sequence[int], tokenizer) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        captions = getattr(source, "captions", None)
        texts = [str(captions[i]) if captions is not None else str(source[int(i)][1]) for i in self.indices]
        self.tokens = tokenizer(texts) if texts else torch.zeros(0, 1, dtype=torch.long)  # (n, L)
        labels = getattr(source, "labels", None)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"text": self.tokens[i], "index": i, "label": -1 if self.labels is None else int(self.labels[i])}


class SimCSEObjective(Objective):
    """``--objective simcse``: unsupervised SimCSE on the open_clip text tower (captions only).

    The metrics' two "views" are two dropout passes of the held-out captions
    (dropout kept on for them), the pair the loss pulls together.

    Parameters
    ----------
    ctx : ObjectiveContext
    temperature : float
        ``τ`` (0.05).
    dropout : float
        Dropout added to the text tower (0.1).
    """

    name = "simcse"
    data_kind = "text"
    pair_names = ("pass1", "pass2")
    find_unused_parameters = True  # the image tower gets no gradient

    def __init__(self, ctx: ObjectiveContext, temperature: float = 0.05, dropout: float = 0.1) -> None:
        super().__init__(ctx)
        # the bound method is only referenced: the model's weights stay under `model.`
        self.simcse = SimCSE(self.model.encode_text, temperature=temperature, dropout=dropout, dropout_in=self.model)

    def make_dataset(self, source: Sequence, indices: Sequence[int], train: bool) -> torch.utils.data.Dataset:
        return TokensDataset(source, indices, self.ctx.loaded.tokenizer)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {"loss": self.simcse(batch["text"])}

    def embed_pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.simcse.two_passes(batch["text"])
