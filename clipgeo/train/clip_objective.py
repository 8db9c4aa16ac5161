"""The CLIP objective: symmetric InfoNCE between the image and text towers.

The logit scale is the open_clip model's own ``logit_scale`` parameter
(``t = log s``, initialised at ``log(1/0.07)`` by open_clip, so a fine-tuned
model keeps its learned value and the exported weights carry it); the loss
clamps ``s`` at 100 and :meth:`ClipObjective.on_after_step` clamps ``t`` to
``[0, log 100]`` after every optimizer step, as CLIP and open_clip do.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .clip_loss import ClipLoss
from .trainer import Objective, ObjectiveContext

__all__ = ["ClipObjective"]


class ClipObjective(Objective):
    """Contrastive image–text training of an open_clip model (``--objective clip``).

    Parameters
    ----------
    ctx : ObjectiveContext
    max_logit_scale : float, default 100
        Clamp of the logit scale.
    """

    name = "clip"
    data_kind = "pairs"
    pair_names = ("image", "text")

    def __init__(self, ctx: ObjectiveContext, max_logit_scale: float = 100.0) -> None:
        super().__init__(ctx)
        self.loss = ClipLoss(max_logit_scale=max_logit_scale, learnable=False)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        image = self.model.encode_image(batch["image"])  # (B, d) raw
        text = self.model.encode_text(batch["text"])  # (B, d) raw
        scale = self.model.logit_scale.exp()
        loss = self.loss(image, text, logit_scale=scale)
        return {"loss": loss}

    def on_after_step(self) -> None:
        self.model.logit_scale.clamp_(0.0, math.log(self.loss.max_logit_scale))

    def logged_state(self) -> dict[str, float]:
        return {"logit_scale": float(self.model.logit_scale.detach().exp().clamp(max=self.loss.max_logit_scale))}

    def embed_pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.model.encode_image(batch["image"], normalize=False)  # (B, d)
        text = self.model.encode_text(batch["text"], normalize=False)  # (B, d)
        return image, text
