"""Training: contrastive losses, a trainer with pluggable objectives, and geometry logged over training.

Losses (one per module, torch): :class:`ClipLoss` (CLIP's symmetric InfoNCE),
:class:`NTXentLoss` (SimCLR), :func:`alignment` / :func:`uniformity` /
:class:`AlignUniformLoss` (Wang & Isola).  Under ``torchrun`` the losses gather
features from every rank with gradient (:mod:`clipgeo.train.distributed`).

The trainer (:func:`train`, :class:`TrainConfig`) runs any registered
:class:`Objective` (``clip`` built in; the contract is documented at the top
of :mod:`clipgeo.train.trainer`) and logs held-out retrieval and the
double-ellipsoid geometry over training into ``RUN_DIR/metrics.csv`` and
``RUN_DIR/curves.png``.

Example
-------
>>> from clipgeo.data.shapes import CaptionedShapes
>>> from clipgeo.train import TrainConfig, train
>>> result = train(TrainConfig(out="runs/shapes", epochs=6), CaptionedShapes(6000))  # doctest: +SKIP
"""

from __future__ import annotations

from .align_uniform import AlignUniformLoss, alignment, uniformity
from .clip_loss import ClipLoss
from .ntxent import NTXentLoss
from .trainer import (
    OBJECTIVES,
    Objective,
    ObjectiveContext,
    TrainConfig,
    TrainingDiverged,
    TrainingStopped,
    TrainResult,
    get_objective,
    register_objective,
    train,
)

__all__ = [
    "OBJECTIVES",
    "AlignUniformLoss",
    "ClipLoss",
    "NTXentLoss",
    "Objective",
    "ObjectiveContext",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingStopped",
    "alignment",
    "get_objective",
    "register_objective",
    "train",
    "uniformity",
]
