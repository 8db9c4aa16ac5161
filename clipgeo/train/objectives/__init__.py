"""The objectives of the field, one per module: each module holds the method's loss next to its objective.

- :mod:`.clip` — CLIP: symmetric InfoNCE image ↔ text (:class:`ClipLoss`, ``ClipObjective``).
- :mod:`.align_uniform` — alignment and uniformity (Wang & Isola 2020): the metrics and their loss.
- :mod:`.memory_bank` — instance discrimination with a memory bank (Wu et al. 2018), NCE or
  sampled softmax; PIRL as a configuration (two views, ``pirl_weight``).
- :mod:`.moco` — MoCo: EMA key encoder and a FIFO queue of keys.
- :mod:`.local_aggregation` — local aggregation: k-nearest background, k-means close neighbours.
- :mod:`.swav` — SwAV: prototypes, Sinkhorn–Knopp equipartition, swapped prediction.
- :mod:`.simcse` — SimCSE: two dropout passes of the text tower.
- :mod:`.byol` — BYOL: predictor and EMA target, no negatives.
- :mod:`.barlow_twins` — Barlow Twins: the two views' cross-correlation pushed to the identity.
- :mod:`.vicreg` — VICReg: variance, invariance and covariance terms.
- :mod:`.supervised` — supervised softmax with one prototype per class.
- :mod:`.simclr` — SimCLR: NT-Xent (:class:`NTXentLoss`) on two augmented views.

The loss modules take features and return a 0-d loss; their state (bank, queue,
prototypes, EMA weights, clusterings) lives in buffers and parameters, so it is
saved with the checkpoint.  Each loss has a slow NumPy re-implementation in the tests.

Each module also defines the trainer objective (``*Objective``, a
:class:`clipgeo.train.objective.Objective`) that ``clipgeo train --objective NAME``
builds; :mod:`._base` holds what the image objectives share (two augmented
views, the image tower, raw embeddings).
"""

from __future__ import annotations

from .align_uniform import AlignUniformLoss, alignment, uniformity
from .barlow_twins import BarlowTwinsLoss
from .byol import BYOL, byol_loss
from .clip import ClipLoss
from .local_aggregation import LocalAggregationLoss, close_mask, local_aggregation_loss
from .memory_bank import InstanceDiscriminationLoss, MemoryBank, nce_loss, sampled_softmax_loss
from .moco import KeyQueue, MoCo, moco_loss
from .simclr import NTXentLoss
from .simcse import SimCSE, add_dropout, simcse_loss
from .supervised import SupervisedSoftmax
from .swav import SwAVLoss, sinkhorn_knopp, swapped_prediction_loss
from .vicreg import VICRegLoss

__all__ = [
    "BYOL",
    "AlignUniformLoss",
    "BarlowTwinsLoss",
    "ClipLoss",
    "NTXentLoss",
    "InstanceDiscriminationLoss",
    "KeyQueue",
    "LocalAggregationLoss",
    "MemoryBank",
    "MoCo",
    "SimCSE",
    "SupervisedSoftmax",
    "SwAVLoss",
    "VICRegLoss",
    "add_dropout",
    "alignment",
    "byol_loss",
    "close_mask",
    "local_aggregation_loss",
    "moco_loss",
    "nce_loss",
    "sampled_softmax_loss",
    "simcse_loss",
    "sinkhorn_knopp",
    "swapped_prediction_loss",
    "uniformity",
]
