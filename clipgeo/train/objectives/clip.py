"""CLIP: symmetric InfoNCE between the image and text towers (Radford et al. 2021).

The loss
--------
CLIP's symmetric InfoNCE loss with a learnable, clamped logit scale.

For a batch of N matched pairs with unit embeddings ``u_i`` (image) and
``v_j`` (text) and logit scale ``s`` (Radford et al. 2021):

    S_ij = s · <u_i, v_j>
    L = ½ [ mean_i CE(S_i·, i) + mean_j CE(S_·j, j) ]

The scale is ``s = exp(t)`` with ``t`` learnable, initialised at
``log(1/0.07)``; ``t`` itself is clamped to ``[0, log 100]`` after each optimizer
step (:meth:`ClipLoss.clamp_`), never inside the loss: in float32
``exp(log 100) = 100.0000076 > 100``, so a clamp of ``s`` in the loss would zero
the scale's gradient for ever once it reaches 100 (and from step 0 for OpenAI
weights).  On the same inputs value and gradients equal ``open_clip.loss.ClipLoss``
at, below and above the bound (tested).  Under ``torchrun`` the features of
every rank are gathered with gradient and each rank takes the loss of its own
anchors (see :mod:`clipgeo.train.distributed`), which reproduces the
full-batch loss and gradients.

The objective
-------------
The CLIP objective: symmetric InfoNCE between the image and text towers.

The logit scale is the open_clip model's own ``logit_scale`` parameter
(``t = log s``, initialised at ``log(1/0.07)`` by open_clip, so a fine-tuned
model keeps its learned value and the exported weights carry it);
:meth:`ClipObjective.on_after_step` clamps ``t`` to ``[0, log 100]`` after every
optimizer step, as CLIP and open_clip do.  ``TrainConfig.temperature`` fixes the
scale at ``1/τ`` instead (the parameter is set and frozen, not clamped), and
``TrainConfig.init_temperature`` starts the learnable one at ``1/τ₀``.
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
from ..objective import Objective, ObjectiveContext

__all__ = ["ClipLoss", "ClipObjective"]


class ClipLoss(nn.Module):
    """Symmetric InfoNCE of CLIP.

    Parameters
    ----------
    init_logit_scale : float, default 1/0.07
        Initial multiplicative logit scale ``s`` (the inverse temperature).
    max_logit_scale : float, default 100
        Upper clamp of ``s`` (CLIP's value), applied to the parameter by :meth:`clamp_`.
    learnable : bool, default True
        Learn ``t = log s`` as the parameter ``logit_scale`` (same name and
        parameterisation as an open_clip model).  When False, ``s`` stays fixed.
    normalize : bool, default True
        L2-normalise the features inside the loss (cosine similarity).  With
        False the features are used as given, which is what
        ``open_clip.loss.ClipLoss`` does (it expects unit features).
    gather : bool or None, default None
        Gather features from all ranks (gather-with-grad, local loss).  None:
        whenever a process group with more than one rank is initialised.

    Notes
    -----
    The arithmetic is done in float32 whatever the input dtype (float16 /
    bfloat16 features with large norms would overflow when squared), so the loss
    is finite for any finite input; the gradient flows back in the input dtype.
    """

    def __init__(
        self,
        init_logit_scale: float = 1 / 0.07,
        max_logit_scale: float = 100.0,
        learnable: bool = True,
        normalize: bool = True,
        gather: bool | None = None,
    ) -> None:
        super().__init__()
        if not (init_logit_scale > 0 and math.isfinite(init_logit_scale)):
            raise InputError(f"illegal init_logit_scale {init_logit_scale!r}; give a positive finite number (CLIP uses 1/0.07)")
        if not (max_logit_scale >= init_logit_scale):
            raise InputError(
                f"illegal max_logit_scale {max_logit_scale!r}; it must be at least init_logit_scale={init_logit_scale:g}"
            )
        self.max_logit_scale = float(max_logit_scale)
        self.normalize = normalize
        self.gather = gather
        t = torch.tensor(math.log(init_logit_scale), dtype=torch.float32)
        if learnable:
            self.logit_scale = nn.Parameter(t)
        else:
            self.register_buffer("logit_scale", t)

    @property
    def scale(self) -> torch.Tensor:
        """The current multiplicative scale ``s = exp(t)`` (0-d tensor; :meth:`clamp_` keeps it ≤ max_logit_scale)."""
        return self.logit_scale.exp()

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp the parameter in place to ``0 ≤ t ≤ log(max_logit_scale)`` (call after each optimizer step)."""
        self.logit_scale.clamp_(0.0, math.log(self.max_logit_scale))

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        """Loss of N matched pairs (row i of each input is pair i).

        Parameters
        ----------
        image_features, text_features : Tensor of shape (N, d)
            Embeddings of the two modalities (raw or unit, see ``normalize``).
        logit_scale : Tensor or float, optional
            Multiplicative scale ``s`` to use instead of this loss's own, e.g.
            ``model.logit_scale.exp()`` of an open_clip model; used as given (the
            parameter is clamped after the optimizer step, not here).

        Returns
        -------
        Tensor of shape ()
            The loss, float32.
        """
        if image_features.ndim != 2 or image_features.shape != text_features.shape:
            raise InputError(
                f"ClipLoss needs two (N, d) feature tensors of the same shape, got {tuple(image_features.shape)} and "
                f"{tuple(text_features.shape)}"
            )
        img = image_features.float()  # (n, d)
        txt = text_features.float()  # (n, d)
        if self.normalize:
            img = F.normalize(img, dim=-1)
            txt = F.normalize(txt, dim=-1)
        scale = self.scale if logit_scale is None else torch.as_tensor(logit_scale, device=img.device).float()

        gather = is_distributed() if self.gather is None else self.gather
        n = img.shape[0]
        if gather:
            all_img = gather_with_grad(img)  # (W*n, d)
            all_txt = gather_with_grad(txt)  # (W*n, d)
            offset = rank() * n
        else:
            all_img, all_txt, offset = img, txt, 0
        logits_per_image = scale * img @ all_txt.T  # (n, W*n)
        logits_per_text = scale * txt @ all_img.T  # (n, W*n)
        labels = torch.arange(n, device=img.device) + offset
        return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))

    def extra_repr(self) -> str:
        return f"max_logit_scale={self.max_logit_scale:g}, normalize={self.normalize}"



class ClipObjective(Objective):
    """Contrastive image–text training of an open_clip model (``--objective clip``).

    The logit scale follows the run's configuration (:class:`~clipgeo.train.config.TrainConfig`):
    ``temperature`` fixes it at ``1/τ`` (not learned); otherwise the model's own ``logit_scale``
    is learned — from ``1/init_temperature`` when that is given — and clamped at
    ``max_logit_scale`` after every optimizer step.

    Parameters
    ----------
    ctx : ObjectiveContext
    max_logit_scale : float, default 100
        Clamp of the learnable logit scale.
    """

    name = "clip"
    data_kind = "pairs"
    pair_names = ("image", "text")

    def __init__(self, ctx: ObjectiveContext, max_logit_scale: float = 100.0) -> None:
        super().__init__(ctx)
        self.loss = ClipLoss(max_logit_scale=max_logit_scale, learnable=False)
        config = ctx.config
        self.temperature = getattr(config, "temperature", None)
        self.init_temperature = getattr(config, "init_temperature", None)
        if self.init_temperature is not None and 1.0 / self.init_temperature > self.loss.max_logit_scale:
            raise InputError(
                f"init_temperature={self.init_temperature:g} starts the logit scale at {1 / self.init_temperature:g}, "
                f"above max_logit_scale={self.loss.max_logit_scale:g}; give init_temperature >= "
                f"{1 / self.loss.max_logit_scale:g} or use a fixed temperature"
            )
        if self.temperature is not None:
            with torch.no_grad():
                self.model.logit_scale.fill_(math.log(1.0 / self.temperature))
            self.model.logit_scale.requires_grad_(False)

    @property
    def learnable(self) -> bool:
        """The logit scale is learned (no fixed ``temperature``)."""
        return self.temperature is None

    def on_train_start(self) -> None:
        if self.init_temperature is not None:
            self.model.logit_scale.fill_(math.log(1.0 / self.init_temperature))

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        image = self.model.encode_image(batch["image"])  # (B, d) raw
        text = self.model.encode_text(batch["text"])  # (B, d) raw
        loss = self.loss(image, text, logit_scale=self.model.logit_scale.exp())  # the scale as is: no clamp here
        return {"loss": loss}

    def on_after_step(self) -> None:
        if self.learnable:  # on the parameter, after the step (open_clip's order)
            self.model.logit_scale.clamp_(0.0, math.log(self.loss.max_logit_scale))

    def logged_state(self) -> dict[str, float]:
        return {"logit_scale": float(self.model.logit_scale.detach().exp())}

    def embed_pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.model.encode_image(batch["image"], normalize=False)  # (B, d)
        text = self.model.encode_text(batch["text"], normalize=False)  # (B, d)
        return image, text
