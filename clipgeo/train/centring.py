"""Centred initialisation: shift each tower of an open_clip model so that its raw outputs have mean 0.

open_clip's random initialisation puts each tower's outputs in a narrow cone away from the
origin (Liang et al. 2022, the "cone effect"), so two randomly initialised towers start with a
modality gap.  ``TrainConfig(init="centred")`` removes that start: before the first step the
trainer embeds the first training samples and shifts the bias of the LayerNorm in front of
each tower's projection (``visual.ln_post``, ``ln_final``) by ``δ`` with ``δ P = −m``, where
``m`` (d,) is the mean raw output over those samples and ``P`` (width, d) the projection.  The
LayerNorm's output is what both towers pool (class token, mean or end-of-text token), so every
pooled vector moves by exactly ``δ`` and the outputs' mean over those samples becomes 0 (exactly,
up to round-off, when ``P`` has full column rank: width ≥ d).  Everything else — and the
exported weights' layout — is unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import InputError

__all__ = ["centre_towers"]


def _shift(norm: nn.Module, projection: torch.Tensor | nn.Module | None, mean: torch.Tensor, tower: str) -> None:
    """Add ``δ`` with ``δ P = −mean`` to ``norm.bias`` (P = projection; identity when None)."""
    bias = getattr(norm, "bias", None)
    if not isinstance(bias, torch.Tensor):
        raise InputError(f"init='centred' needs a LayerNorm with a bias before the {tower} projection; "
                         "use a ViT architecture (e.g. tiny, ViT-B-32) or init='random'")  # fmt: skip
    if projection is None:
        delta = -mean
    else:
        # x @ P, or x Wᵀ + b for a Linear (its bias moves every output alike): P = Wᵀ, shape (width, d)
        p = projection.weight.T if isinstance(projection, nn.Linear) else projection
        # δ (width,) solving δ P = −mean, i.e. Pᵀ δ = −mean (least squares when width < d)
        delta = torch.linalg.lstsq(p.T.double(), -mean.double().unsqueeze(1)).solution.squeeze(1)
    bias.add_(delta.to(bias.dtype))


@torch.no_grad()
def centre_towers(
    model: nn.Module, images: torch.Tensor | None = None, texts: torch.Tensor | None = None
) -> dict[str, float]:
    """Shift the towers of ``model`` in place so that the raw outputs of ``images`` / ``texts`` have mean 0.

    Parameters
    ----------
    model : open_clip model
        A ViT image tower (``visual.ln_post``, ``visual.proj``) and/or the text tower
        (``ln_final``, ``text_projection``, on the model or on ``model.text``).
    images : Tensor of shape (B, 3, H, W), optional
        Preprocessed images whose image-tower outputs are centred.
    texts : Tensor of shape (B, L), optional
        Tokens whose text-tower outputs are centred.

    Returns
    -------
    dict
        ``image_mean_norm_before`` / ``_after`` and ``text_mean_norm_before`` / ``_after``: the
        norm of the mean raw output before and after (for the towers centred).
    """
    report: dict[str, float] = {}
    if images is not None:
        visual = model.visual
        if not hasattr(visual, "ln_post"):
            raise InputError(f"init='centred' needs a ViT image tower, not {type(visual).__name__}; use init='random'")
        before = model.encode_image(images, normalize=False).double().mean(dim=0)  # (d,)
        _shift(visual.ln_post, getattr(visual, "proj", None), before, "image")
        after = model.encode_image(images, normalize=False).double().mean(dim=0)
        report.update(image_mean_norm_before=float(before.norm()), image_mean_norm_after=float(after.norm()))
    if texts is not None:
        tower = getattr(model, "text", model)
        if not hasattr(tower, "ln_final"):
            raise InputError("init='centred' needs a transformer text tower with ln_final; use init='random'")
        before = model.encode_text(texts, normalize=False).double().mean(dim=0)
        _shift(tower.ln_final, getattr(tower, "text_projection", None), before, "text")
        after = model.encode_text(texts, normalize=False).double().mean(dim=0)
        report.update(text_mean_norm_before=float(before.norm()), text_mean_norm_after=float(after.norm()))
    return report
