"""Training: contrastive losses, a trainer with pluggable objectives, and geometry logged over training.

Losses (one per module, torch): :class:`ClipLoss` (CLIP's symmetric InfoNCE),
:class:`NTXentLoss` (SimCLR), :func:`alignment` / :func:`uniformity` /
:class:`AlignUniformLoss` (Wang & Isola).  Under ``torchrun`` the losses gather
features from every rank with gradient (:mod:`clipgeo.train.distributed`).
"""

from __future__ import annotations

from .align_uniform import AlignUniformLoss, alignment, uniformity
from .clip_loss import ClipLoss
from .ntxent import NTXentLoss

__all__ = ["AlignUniformLoss", "ClipLoss", "NTXentLoss", "alignment", "uniformity"]
