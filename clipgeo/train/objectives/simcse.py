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

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InputError
from ._common import check_features, check_fraction, check_positive, unit


def simcse_loss(h: torch.Tensor, h_pos: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """In-batch InfoNCE between two encodings of the same sentences.

    Parameters
    ----------
    h, h_pos : Tensor of shape (B, d)
        Two dropout passes; row ``i`` of each is the same sentence.
    temperature : float

    Returns
    -------
    0-d Tensor: ``mean_i −log softmax_j(cos(h_i, h⁺_j) / τ)_i``.
    """
    logits = unit(h.float()) @ unit(h_pos.float()).T / temperature  # (B, B)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def _dropout_hook(p: float):
    def hook(module: nn.Module, inputs, output):
        return F.dropout(output, p=p, training=module.training)

    return hook


def add_dropout(tower: nn.Module, p: float) -> list:
    """Register dropout ``p`` on the sub-layer outputs and token embeddings of an open_clip text tower.

    Parameters
    ----------
    tower : nn.Module
        A module containing open_clip ``ResidualAttentionBlock`` s (with ``ls_1``,
        ``ls_2``) and optionally a ``token_embedding``.
    p : float in [0, 1)

    Returns
    -------
    list of hook handles (``handle.remove()`` undoes it).

    Raises
    ------
    InputError
        When the tower has no transformer block to put dropout into.
    """
    p = check_fraction("dropout", p)
    blocks = [m for m in tower.modules() if all(hasattr(m, a) for a in ("ls_1", "ls_2", "attn", "mlp"))]
    if not blocks:
        raise InputError(f"{type(tower).__name__} has no transformer blocks for SimCSE's dropout; use an open_clip text tower")
    handles = []
    for block in blocks:
        handles.append(block.ls_1.register_forward_hook(_dropout_hook(p)))
        handles.append(block.ls_2.register_forward_hook(_dropout_hook(p)))
    for name, module in tower.named_modules():
        if name.split(".")[-1] == "token_embedding" and isinstance(module, nn.Embedding):
            handles.append(module.register_forward_hook(_dropout_hook(p)))
    return handles


class SimCSE(nn.Module):
    """SimCSE around a text encoder: dropout hooks, two passes, in-batch InfoNCE.

    Parameters
    ----------
    encoder : nn.Module
        Text encoder, token ids (B, L) -> features (B, d), built from open_clip blocks.
    temperature : float
        ``τ`` (0.05).
    dropout : float in (0, 1)
        Dropout probability added to the encoder (0.1).
    """

    def __init__(self, encoder: nn.Module, temperature: float = 0.05, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.temperature = check_positive("temperature", temperature)
        self.dropout = check_fraction("dropout", dropout)
        if self.dropout == 0:
            raise InputError("SimCSE needs dropout > 0 (its two passes would be identical); pass e.g. dropout=0.1")
        self._hooks = add_dropout(encoder, self.dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of token ids (B, L): two passes through the encoder; 0-d Tensor.

        In eval mode the dropout is off and the two passes coincide.
        """
        h = self.encoder(tokens)  # (B, d)
        h_pos = self.encoder(tokens)  # (B, d), other dropout masks
        check_features("text features", h)
        return simcse_loss(h, h_pos, self.temperature)
