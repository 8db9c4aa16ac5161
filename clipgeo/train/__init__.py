"""Training: contrastive objectives, a trainer that logs the geometry over training, and the evaluation of runs.

Layout (each module may import the ones above it, never one below):

- :mod:`.config` — :class:`TrainConfig`, :class:`TrainResult`, the stops (no torch);
- :mod:`.data`, :mod:`.augment`, :mod:`.schedule`, :mod:`.distributed` — datasets and sampler,
  augmentations, the learning-rate schedule, the gather-with-gradient of the losses;
- :mod:`.objective` — the :class:`Objective` contract and the ``--objective`` registry
  (knows nothing of the loop);
- :mod:`.objectives` — one module per method: its loss next to its objective
  (``clip``: :class:`ClipLoss`; ``simclr``: :class:`NTXentLoss`; ``align_uniform``: Wang & Isola);
- :mod:`.metrics`, :mod:`.checkpoint` — what a run logs and saves;
- :mod:`.trainer` — the loop: ``setup → train_one_epoch → log → save``;
- :mod:`.runs` — reading a run folder back and rebuilding its objective;
- :mod:`.probe`, :mod:`.compare` — linear probes and the side-by-side table of runs.
- :mod:`.centring` — the centred initialisation (``TrainConfig(init="centred")``);
- :mod:`.study` — the geometry study: a grid of short runs (temperature, information asymmetry,
  long tail, initialisation), one table, one figure and the finding (``clipgeo study``).

Names are resolved on first use, so ``import clipgeo.train`` does not import torch.

Example
-------
>>> from clipgeo.data.shapes import CaptionedShapes
>>> from clipgeo.train import TrainConfig, train
>>> result = train(TrainConfig(out="runs/shapes", epochs=6), CaptionedShapes(6000))  # doctest: +SKIP
"""

from __future__ import annotations

from clipgeo._lazy import lazy_exports

_EXPORTS = {
    "AlignUniformLoss": ".objectives.align_uniform",
    "alignment": ".objectives.align_uniform",
    "uniformity": ".objectives.align_uniform",
    "ClipLoss": ".objectives.clip",
    "NTXentLoss": ".objectives.simclr",
    "OBJECTIVES": ".objective",
    "Objective": ".objective",
    "ObjectiveContext": ".objective",
    "get_objective": ".objective",
    "register_objective": ".objective",
    "TrainConfig": ".config",
    "TrainResult": ".config",
    "TrainingDiverged": ".config",
    "TrainingStopped": ".config",
    "train": ".trainer",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
