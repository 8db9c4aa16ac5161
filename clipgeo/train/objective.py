"""The objective contract: what the trainer optimises, and the registry of ``--objective`` names.

This module knows nothing of the training loop (:mod:`clipgeo.train.trainer`): an objective
module imports only this, its loss and :mod:`clipgeo.train.data`.

What is optimised is an :class:`Objective`: an ``nn.Module`` that owns the
model (``self.model``, the open_clip model whose weights are exported) and any
state of its own (a logit scale, a memory bank, a queue, an EMA copy …, kept in
parameters and buffers so that it is checkpointed).  The trainer calls:

``training_step(batch) -> dict``
    Required.  ``batch`` is a dict of tensors on the device (see ``data_kind``);
    returns ``{"loss": 0-d tensor, **scalars}``.  The trainer backpropagates
    ``loss`` and logs the mean of every entry (scalars may be tensors or
    floats) over the steps since the last log.  Runs under autocast when the
    precision is fp16/bf16; under DDP it is reached through ``forward`` (do not override).
``on_train_start()``
    Optional, once before the first step of a new run (not when resuming),
    without gradients: e.g. set the initial logit scale.
``on_after_step()``
    Optional, after every optimizer step, without gradients: clamp a scale,
    EMA-update a target network, enqueue keys, write a memory bank.
``logged_state() -> dict``
    Optional.  Values logged as they are at each log row (from step 0 on),
    e.g. the current ``logit_scale``, a queue fill or a momentum.
``embed_pair(batch) -> (a, b)``
    Required.  The two sets of **raw** (pre-normalisation) embeddings, each
    of shape (B, d), row i of ``a`` paired with row i of ``b``, that the
    held-out metrics are computed on: image and text for CLIP, two views
    for unimodal objectives.  Called in eval mode under ``torch.no_grad``.
``make_dataset(source, indices, train) -> Dataset``
    Optional.  The default follows ``data_kind``; override for other inputs
    (e.g. specific augmentations for views).

``self.model`` is what gets exported: its state dict is ``model.safetensors``
and the ``"model"`` entry of ``checkpoint.pt``; the objective's other state
is checkpointed beside it.

and reads these class attributes:

``name``
    The ``--objective`` name.
``data_kind``
    ``"pairs"``: batches hold ``image`` (B, 3, H, W), ``text`` (B, L) int64,
    ``index`` (B,) and ``label`` (B,) (−1 when the source has no labels).
    ``"views"``: ``view1``, ``view2`` (B, 3, H, W), ``index``, ``label``.
    ``index`` is the position in the training split (0 … ``ctx.num_train`` − 1),
    e.g. for a memory bank.
``pair_names``
    Names of ``(a, b)`` in the metric columns, e.g. ``("image", "text")``.
``find_unused_parameters``
    Passed to DistributedDataParallel (True when some parameters get no
    gradient in a step).

An objective is built as ``cls(ctx, **options)`` with an
:class:`ObjectiveContext` (the loaded model, its transforms and tokenizer,
the size of the training split, the number of classes, the configuration)
and the keyword options of ``TrainConfig.objective_options``.  Register it by
adding ``"name": "module.path:ClassName"`` to :data:`OBJECTIVES` (imported
only when chosen) or with :func:`register_objective`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..errors import InputError
from .data import PairDataset, ViewsDataset

if TYPE_CHECKING:
    from .config import TrainConfig

__all__ = ["OBJECTIVES", "Objective", "ObjectiveContext", "get_objective", "register_objective"]

#: ``--objective`` name -> "module:Class" (imported when chosen) or the class itself
OBJECTIVES: dict[str, Any] = {
    "clip": "clipgeo.train.objectives.clip:ClipObjective",
    # single-modality objectives (clipgeo/train/objectives/)
    "simclr": "clipgeo.train.objectives.simclr:SimCLRObjective",
    "moco": "clipgeo.train.objectives.moco:MoCoObjective",
    "memory-bank": "clipgeo.train.objectives.memory_bank:MemoryBankObjective",
    "pirl": "clipgeo.train.objectives.memory_bank:PIRLObjective",
    "local-aggregation": "clipgeo.train.objectives.local_aggregation:LocalAggregationObjective",
    "swav": "clipgeo.train.objectives.swav:SwAVObjective",
    "simcse": "clipgeo.train.objectives.simcse:SimCSEObjective",
    "byol": "clipgeo.train.objectives.byol:BYOLObjective",
    # redundancy reduction (the seeds' second family)
    "barlow-twins": "clipgeo.train.objectives.barlow_twins:BarlowTwinsObjective",
    "vicreg": "clipgeo.train.objectives.vicreg:VICRegObjective",
    "supervised": "clipgeo.train.objectives.supervised:SupervisedObjective",
}


@dataclass
class ObjectiveContext:
    """What an objective is built from.

    Attributes
    ----------
    loaded : clipgeo.models.LoadedModel
        The open_clip model (train mode, on ``device``), transforms, tokenizer.
    num_train : int
        Samples in the training split (size of a memory bank).
    num_classes : int
        Classes of the source's ``labels`` (0 when it has none).
    device : torch.device
    config : TrainConfig
    """

    loaded: Any
    num_train: int
    num_classes: int
    device: torch.device
    config: TrainConfig


class Objective(nn.Module):
    """Base class of training objectives (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    data_kind: ClassVar[str] = "pairs"
    pair_names: ClassVar[tuple[str, str]] = ("image", "text")
    find_unused_parameters: ClassVar[bool] = False

    def __init__(self, ctx: ObjectiveContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.model = ctx.loaded.model

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return self.training_step(batch)

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        raise NotImplementedError

    def on_train_start(self) -> None:
        """Called once before the first step of a new run, not on resume (no gradients)."""

    def on_after_step(self) -> None:
        """Called after every optimizer step (no gradients)."""

    def logged_state(self) -> dict[str, float]:
        """Current values to log at each row (e.g. the logit scale); none by default."""
        return {}

    def embed_pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def make_dataset(self, source: Sequence, indices: Sequence[int], train: bool) -> torch.utils.data.Dataset:
        """Dataset of the split ``indices`` of ``source`` (train: random transforms; held-out: deterministic)."""
        loaded = self.ctx.loaded
        transform = loaded.preprocess_train if train and self.ctx.config.augment else loaded.preprocess_val
        if self.data_kind == "pairs":
            return PairDataset(source, indices, transform, loaded.tokenizer)
        if self.data_kind == "views":
            # held-out views still differ: two draws of the training augmentation
            return ViewsDataset(source, indices, loaded.preprocess_train)
        raise ValueError(f"unknown data_kind {self.data_kind!r}")


def register_objective(name: str, target: Any = None):
    """Register an objective class under ``name`` (usable as a decorator)."""

    def _register(cls):
        OBJECTIVES[name] = cls
        return cls

    return _register(target) if target is not None else _register


def get_objective(name: str) -> type[Objective]:
    """The objective class registered as ``name``."""
    target = OBJECTIVES.get(name)
    if target is None:
        raise InputError(f"unknown objective {name!r}; choose one of {', '.join(sorted(OBJECTIVES))}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
        OBJECTIVES[name] = target
    return target
