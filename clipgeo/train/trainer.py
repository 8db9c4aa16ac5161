"""The trainer: one loop for every objective, logging the geometry as it forms.

``train(config, source)`` trains an open_clip model on a sample source (a
sequence of ``(image, caption)``, e.g. :class:`clipgeo.data.shapes.CaptionedShapes`)
with AdamW, linear warm-up + cosine decay, and AMP on GPU.  It writes into
``config.out`` (RUN_DIR):

- ``config.json``: the resolved configuration and provenance;
- ``metrics.csv``: loss, objective scalars (e.g. ``logit_scale``), held-out
  recall@1 and the geometry (l2 centroid distance, conformity, relative
  thickness, offset ratio …; see :mod:`clipgeo.train.metrics`) every
  ``log_every`` steps, at step 0 (the untrained model) and after every epoch;
- ``curves.png``: those curves, redrawn after every epoch;
- ``checkpoint.pt``: after every epoch and on SIGTERM (atomic), for ``resume``;
  it also loads in ``clipgeo extract --checkpoint``;
- ``model.safetensors``: the final model weights.

Objectives
==========
What is optimised is an :class:`Objective`: an ``nn.Module`` that owns the
model (``self.model``, the open_clip model whose weights are exported) and any
state of its own (a logit scale, a memory bank, a queue, an EMA copy …, kept in
parameters and buffers so that it is checkpointed).  The trainer calls:

``training_step(batch) -> dict``
    Required.  ``batch`` is a dict of tensors on the device (see ``data_kind``);
    returns ``{"loss": 0-d tensor, **scalars}``.  The trainer backpropagates
    ``loss`` and logs the mean of every entry (scalars may be tensors or
    floats) over the steps since the last log.  Runs under autocast when AMP
    is on; under DDP it is reached through ``forward`` (do not override).
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

Distributed training: under ``torchrun`` the trainer joins the process group,
wraps the objective in DistributedDataParallel, and shards every global batch
with :class:`~clipgeo.train.data.EpochSampler`; losses gather features across
ranks with gradient (:mod:`clipgeo.train.distributed`).  ``batch_size`` is per
rank.  Only rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import random
import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import ClipgeoError, InputError
from . import distributed as dist_utils
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint, save_weights
from .data import EpochSampler, PairDataset, ViewsDataset, collate, split_heldout
from .metrics import BASE_COLUMNS, MetricsLog, heldout_metrics, metric_columns
from .schedule import warmup_cosine_scheduler

__all__ = [
    "OBJECTIVES",
    "Objective",
    "ObjectiveContext",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "TrainingStopped",
    "get_objective",
    "register_objective",
    "train",
]

PRECISIONS = ("auto", "fp32", "amp", "amp_bf16")

#: ``--objective`` name -> "module:Class" (imported when chosen) or the class itself
OBJECTIVES: dict[str, Any] = {
    "clip": "clipgeo.train.clip_objective:ClipObjective",
    # single-modality objectives (clipgeo/train/objectives/)
    "simclr": "clipgeo.train.objectives.simclr:SimCLRObjective",
    "moco": "clipgeo.train.objectives.moco:MoCoObjective",
    "memory-bank": "clipgeo.train.objectives.memory_bank:MemoryBankObjective",
    "pirl": "clipgeo.train.objectives.memory_bank:PIRLObjective",
    "local-aggregation": "clipgeo.train.objectives.local_aggregation:LocalAggregationObjective",
    "swav": "clipgeo.train.objectives.swav:SwAVObjective",
    "simcse": "clipgeo.train.objectives.simcse:SimCSEObjective",
    "byol": "clipgeo.train.objectives.byol:BYOLObjective",
    "supervised": "clipgeo.train.objectives.supervised:SupervisedObjective",
}


class TrainingDiverged(ClipgeoError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingStopped(ClipgeoError):
    """Training stopped early on request (SIGTERM); the checkpoint allows ``resume``."""


# --------------------------------------------------------------------------- objectives


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


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Resolved options of a training run (what ``clipgeo train`` parses into).

    Attributes
    ----------
    out : str
        RUN_DIR, created if needed.
    model, pretrained, checkpoint : str
        Architecture and initial weights (see :func:`clipgeo.models.load_model`).
    objective : str
        Registered objective name (``clip``); ``objective_options`` are its
        keyword arguments.
    epochs, batch_size : int
        Epochs to train; per-rank batch size.
    lr, weight_decay, min_lr_ratio : float
        AdamW peak learning rate and weight decay (not applied to gains,
        biases, embeddings of dimension < 2 and the logit scale); final lr as
        a fraction of the peak.
    warmup_steps : int or None
        Linear warm-up; None: 5 % of the total steps.
    beta1, beta2, eps : float
        AdamW parameters (open_clip's defaults for ViTs).
    grad_clip : float or None
        Clip the gradient norm at this value.
    seed : int
        Seeds the model initialisation, held-out split, shuffling and augmentation.
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` …
    precision : {"auto", "fp32", "amp", "amp_bf16"}
        fp32 weights always; ``amp`` autocasts to float16 with a GradScaler,
        ``amp_bf16`` to bfloat16; ``auto``: ``amp`` on CUDA, ``fp32`` on CPU.
    heldout : int or None
        Samples held out for the metrics (fixed by seed); None:
        ``min(256, max(2, n // 10))``.
    log_every : int
        Log every this many optimizer steps (and after every epoch).
    augment : bool
        Random training transforms (open_clip's ``preprocess_train``); False
        trains on the deterministic evaluation transform.
    workers : int
        DataLoader worker processes (0: in the main process; resuming mid-epoch
        is exact only with 0).
    resume : bool
        Continue the run in ``out`` from its ``checkpoint.pt``.
    stop_after_epochs : int or None
        Train at most this many epochs in this invocation, then checkpoint and
        stop (continue later with ``resume``).
    data : dict
        Description of the data source, for provenance.
    """

    out: str
    model: str = "tiny"
    pretrained: str | None = "none"
    checkpoint: str | None = None
    objective: str = "clip"
    objective_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_steps: int | None = None
    min_lr_ratio: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    grad_clip: float | None = None
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    heldout: int | None = None
    log_every: int = 20
    augment: bool = True
    workers: int = 0
    resume: bool = False
    stop_after_epochs: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    #: options that must not change when a run is resumed
    FIXED_ON_RESUME: ClassVar[tuple[str, ...]] = (
        "model", "objective", "objective_options", "epochs", "batch_size", "lr", "weight_decay", "warmup_steps",
        "min_lr_ratio", "seed", "heldout", "augment", "data",
    )  # fmt: skip


@dataclass
class TrainResult:
    """What a finished run produced.

    Attributes
    ----------
    run_dir : Path
    metrics : dict
        The last logged row (loss, recall@1, geometry …).
    steps : int
        Optimizer steps taken in total.
    seconds : float
        Wall time of the training loop in this invocation.
    finished : bool
        All epochs are done (False after ``stop_after_epochs``).
    heldout_indices : ndarray of int64
        Samples of the source held out for the metrics.
    pair_names : (str, str)
        Names of the two embeddings in the metric keys.
    rank : int
        Rank of this process (0 unless distributed; only rank 0 has metrics).
    """

    run_dir: Path
    metrics: dict[str, float]
    steps: int
    seconds: float
    finished: bool = True
    heldout_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pair_names: tuple[str, str] = ("image", "text")
    rank: int = 0

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def weights(self) -> Path:
        return self.run_dir / "model.safetensors"


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for but CUDA is not available; use --device cpu")
        if device == "cuda" and dist_utils.is_distributed():
            device = f"cuda:{dist_utils.local_rank()}"
    try:
        return torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "amp" if device.type == "cuda" else "fp32"
    return precision


def _param_groups(objective: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for name, p in objective.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "logit_scale" in name or "bias" in name.rsplit(".", 1)[-1]:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31)


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _scalar(value: Any) -> float:
    return float(value.detach().float().mean().item()) if isinstance(value, torch.Tensor) else float(value)


def _validate(config: TrainConfig, n: int) -> None:
    if n == 0:
        raise InputError("the training data is empty; check the data options (e.g. --shapes N with N > 0)")
    for name in ("epochs", "batch_size", "log_every"):
        value = getattr(config, name)
        if int(value) != value or value < 1:
            raise InputError(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise InputError(f"the learning rate must be positive, got {config.lr!r}")
    if config.weight_decay < 0:
        raise InputError(f"weight decay must be >= 0, got {config.weight_decay!r}")
    if config.workers < 0:
        raise InputError(f"workers must be >= 0, got {config.workers}")


# --------------------------------------------------------------------------- the loop


class _StopFlag:
    """Set by SIGTERM; the loop checkpoints and stops after the current step."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def install(self) -> None:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no signal handling
            self._previous = None

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _heldout_batch(dataset) -> dict[str, torch.Tensor]:
    return collate([dataset[i] for i in range(len(dataset))])


def _embed_heldout(objective: Objective, batch: dict[str, torch.Tensor], chunk: int, device, autocast) -> tuple:
    was_training = objective.training
    objective.eval()
    a_parts, b_parts = [], []
    n = len(next(iter(v for v in batch.values() if isinstance(v, torch.Tensor))))
    with torch.no_grad(), autocast():
        for start in range(0, n, chunk):
            part = _to_device({k: v[start : start + chunk] for k, v in batch.items()}, device)
            a, b = objective.embed_pair(part)
            a_parts.append(a.float().cpu())
            b_parts.append(b.float().cpu())
    objective.train(was_training)
    return torch.cat(a_parts), torch.cat(b_parts)


def train(
    config: TrainConfig,
    source: Sequence,
    *,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
    progress: bool = False,
) -> TrainResult:
    """Train ``config.objective`` on ``source`` and log the geometry over training.

    Parameters
    ----------
    config : TrainConfig
    source : sequence of (image, caption)
        The data (PIL images or paths, and strings), e.g.
        :class:`clipgeo.data.shapes.CaptionedShapes`; ``labels`` and
        ``captions`` attributes are used when present.  A fixed held-out
        part (``config.heldout`` samples, by seed) is kept out of training.
    callbacks : sequence of callables
        Called after every optimizer step with a dict ``epoch``,
        ``step_in_epoch``, ``global_step``, ``loss``, ``request_stop``
        (a function that makes the loop checkpoint and stop, as SIGTERM does).
    progress : bool
        Print one line per log row on stderr.

    Returns
    -------
    TrainResult

    Raises
    ------
    InputError
        Empty data, batch larger than the data, bad options.
    TrainingDiverged
        The loss became NaN/inf; the checkpoint of the last finished epoch is kept.
    TrainingStopped
        SIGTERM (or ``request_stop``) arrived; a checkpoint was written.
    """
    from ..models import load_model
    from ..provenance import provenance

    n = len(source)
    _validate(config, n)
    wants_cuda = config.device.startswith("cuda") or (config.device == "auto" and torch.cuda.is_available())
    distributed = dist_utils.init_distributed("cuda" if wants_cuda else "cpu")
    rank, world = dist_utils.rank(), dist_utils.world_size()
    device = _resolve_device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    precision = _resolve_precision(config.precision, device)
    main = rank == 0

    n_heldout = config.heldout if config.heldout is not None else min(256, max(2, n // 10))
    if n_heldout < 2:
        raise InputError(f"--heldout must be at least 2 (recall@1 needs two pairs), got {n_heldout}")
    if n - n_heldout < 1:
        raise InputError(f"{n} samples leave nothing to train on after holding out {n_heldout}; use more data or a smaller --heldout")
    train_idx, heldout_idx = split_heldout(n, n_heldout, config.seed)
    num_train = len(train_idx)
    if config.batch_size * world > num_train:
        raise InputError(
            f"batch size {config.batch_size}{f' x {world} ranks' if world > 1 else ''} is larger than the "
            f"{num_train} training samples ({n} minus {n_heldout} held out); lower --batch-size or use more data"
        )

    run_dir = Path(config.out)
    ckpt_path = run_dir / "checkpoint.pt"
    resumed = None
    if config.resume:
        resumed = load_checkpoint(ckpt_path)
        old = resumed.get("config", {})
        changed = [k for k in TrainConfig.FIXED_ON_RESUME if k in old and old[k] != _jsonable(getattr(config, k))]
        if changed:
            k = changed[0]
            raise InputError(
                f"cannot resume {run_dir}: it was trained with {k}={old[k]!r}, now {getattr(config, k)!r}; "
                "resume with the same options or start a new run with another --out"
            )
    elif ckpt_path.exists():
        raise InputError(f"{run_dir} already holds a training run; pass --resume to continue it or choose another --out")
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)

    # ---- model, objective, data (identical initialisation on every rank)
    _seed_all(config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "random initialisation" is the point of --pretrained none
        loaded = load_model(config.model, config.pretrained, checkpoint=config.checkpoint, device=str(device))
    loaded.model.train()
    labels = getattr(source, "labels", None)
    num_classes = int(np.max(labels)) + 1 if labels is not None and len(labels) else 0
    ctx = ObjectiveContext(loaded=loaded, num_train=num_train, num_classes=num_classes, device=device, config=config)
    objective_cls = get_objective(config.objective)
    objective = objective_cls(ctx, **config.objective_options).to(device)
    objective.train()
    train_set = objective.make_dataset(source, train_idx, train=True)
    heldout_batch = _heldout_batch(objective.make_dataset(source, heldout_idx, train=False))

    sampler = EpochSampler(num_train, config.batch_size, config.seed, rank, world)
    loader_rng = torch.Generator()  # worker seeds come from here, not from the global RNG
    loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        collate_fn=collate,
        drop_last=True,
        pin_memory=device.type == "cuda",
        generator=loader_rng,
    )
    steps_per_epoch = sampler.batches_per_epoch
    total_steps = steps_per_epoch * config.epochs
    warmup = config.warmup_steps if config.warmup_steps is not None else int(round(0.05 * total_steps))
    warmup = min(warmup, total_steps)

    optimizer = torch.optim.AdamW(
        _param_groups(objective, config.weight_decay), lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps
    )
    scheduler = warmup_cosine_scheduler(optimizer, warmup, total_steps, config.min_lr_ratio)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "amp")
    amp_dtype = {"amp": torch.float16, "amp_bf16": torch.bfloat16}.get(precision)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)

    wrapped: nn.Module = objective
    if distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=objective.find_unused_parameters,
        )

    # ---- where to start
    epoch, step_in_epoch, global_step = 0, 0, 0
    saved_epoch: int | None = None
    if resumed is not None:
        _restore(objective, optimizer, scheduler, scaler, resumed)
        epoch, step_in_epoch, global_step = resumed["epoch"], resumed["step_in_epoch"], resumed["global_step"]
        saved_epoch = epoch

    pair_names = tuple(objective.pair_names)
    columns = list(BASE_COLUMNS)
    log = None
    if main:
        meta = {
            "config": config.to_dict(),
            "resolved": {
                "device": str(device), "precision": precision, "world_size": world, "num_train": num_train,
                "num_classes": num_classes, "num_heldout": n_heldout, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
                "warmup_steps": warmup, "pair_names": list(pair_names), "objective_class": objective_cls.__name__,
                "model": loaded.meta,
            },
            "provenance": provenance(config.to_dict()),
        }  # fmt: skip
        _write_json(run_dir / "config.json", meta)

    stop = _StopFlag()
    stop.install()
    started = time.perf_counter()
    elapsed_before = float(resumed.get("elapsed_s", 0.0)) if resumed is not None else 0.0
    # step outputs since the last row (carried over a mid-epoch resume)
    running: dict[str, list[float]] = {k: list(v) for k, v in (resumed or {}).get("running", {}).items()}
    last_row: dict[str, Any] = {}
    epochs_this_run = 0

    def averages() -> dict[str, float]:
        """Means of the step outputs since the last row, averaged over ranks (every rank calls this)."""
        keys = sorted(running)
        means = torch.tensor([float(np.mean(running[k])) for k in keys], dtype=torch.float64)
        running.clear()
        if distributed and keys:
            means = dist_utils.all_reduce_mean(means)
        return dict(zip(keys, means.tolist(), strict=True))

    def log_row(step_means: dict[str, float]) -> dict[str, Any]:
        nonlocal log, last_row
        a, b = _embed_heldout(objective, heldout_batch, config.batch_size, device, autocast)
        row: dict[str, Any] = {
            "epoch": global_step / steps_per_epoch,
            "step": global_step,
            "samples": global_step * config.batch_size * world,
            "elapsed_s": elapsed_before + time.perf_counter() - started,
            "lr": optimizer.param_groups[0]["lr"],
        }
        row.update(step_means)
        row.update({k: _scalar(v) for k, v in objective.logged_state().items()})
        row.update(heldout_metrics(a, b, pair_names))
        if log is None:
            log = MetricsLog(run_dir / "metrics.csv", columns + metric_columns(pair_names),
                             insert_before=metric_columns(pair_names)[0])  # fmt: skip
        log.write(row)
        if progress:
            first, second = metric_columns(pair_names)[:2]
            loss_text = f"{row['loss']:.4f}" if "loss" in row else "-"
            print(
                f"epoch {row['epoch']:.2f} step {global_step}: loss {loss_text}, "
                f"R@1 {row[first]:.3f}/{row[second]:.3f} (chance {row['chance_r1']:.3f}), "
                f"gap {row['l2_centroid_distance']:.3f}",
                flush=True,
                file=sys.stderr,
            )
        last_row = row
        return row

    def checkpoint(epoch_: int, step_: int) -> None:
        rng = capture_rng()
        if distributed:
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, rng)
        else:
            gathered = [rng]
        if main:
            extra = {k: v for k, v in objective.state_dict().items() if not k.startswith("model.")}
            save_checkpoint(
                ckpt_path,
                model=objective.model.state_dict(),
                objective=extra,
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                epoch=epoch_,
                step_in_epoch=step_,
                global_step=global_step,
                rng=gathered,
                world_size=world,
                elapsed_s=elapsed_before + time.perf_counter() - started,
                running={k: list(v) for k, v in running.items()},
                config=_jsonable(config.to_dict()),
            )
        nonlocal saved_epoch
        saved_epoch = epoch_
        dist_utils.barrier()

    try:
        if main and resumed is None:
            log_row({})  # the untrained model
        elif main:
            log = MetricsLog(run_dir / "metrics.csv", columns + metric_columns(pair_names), keep_until_step=global_step,
                             insert_before=metric_columns(pair_names)[0])  # fmt: skip
        if resumed is not None and step_in_epoch > 0:
            rngs = resumed["rng"]
            if len(rngs) == world:
                restore_rng(rngs[rank])
        while epoch < config.epochs:
            if step_in_epoch == 0:
                _seed_all(_epoch_seed(config.seed, epoch, rank))
            loader_rng.manual_seed(_epoch_seed(config.seed, epoch, rank) + step_in_epoch)
            sampler.set_epoch(epoch, skip_batches=step_in_epoch)
            for batch in loader:
                batch = _to_device(batch, device)
                with autocast():
                    out = wrapped(batch)
                loss = out["loss"]
                finite = torch.isfinite(loss.detach()).float()
                if distributed:
                    finite = dist_utils.all_reduce_mean(finite)
                if finite.item() < 1.0:
                    where = f"epoch {epoch + 1} step {step_in_epoch + 1}"
                    kept = (
                        f"the last good checkpoint {ckpt_path} (after epoch {saved_epoch}) is kept"
                        if saved_epoch is not None
                        else "no checkpoint had been written yet"
                    )
                    raise TrainingDiverged(
                        f"the loss became {loss.item()} at {where}; {kept}; lower --lr, or use --precision fp32"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(objective.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                with torch.no_grad():
                    objective.on_after_step()
                step_in_epoch += 1
                global_step += 1
                for key, value in out.items():
                    running.setdefault(key, []).append(_scalar(value))
                for callback in callbacks:
                    callback({
                        "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
                        "loss": running["loss"][-1], "request_stop": _request(stop),
                    })  # fmt: skip
                if global_step % config.log_every == 0 and step_in_epoch < steps_per_epoch:
                    step_means = averages()
                    if main:
                        log_row(step_means)
                if _agreed(stop.requested) and step_in_epoch < steps_per_epoch:
                    checkpoint(epoch, step_in_epoch)
                    raise TrainingStopped(
                        f"stopped by SIGTERM at epoch {epoch + 1} step {step_in_epoch}; checkpoint saved in {ckpt_path}, "
                        "continue with --resume"
                    )
            epoch += 1
            step_in_epoch = 0
            epochs_this_run += 1
            step_means = averages()
            if main:
                log_row(step_means)
            checkpoint(epoch, 0)
            if main:
                _plot(run_dir, pair_names)
            if _agreed(stop.requested) and epoch < config.epochs:
                raise TrainingStopped(
                    f"stopped by SIGTERM after epoch {epoch}; checkpoint saved in {ckpt_path}, continue with --resume"
                )
            if config.stop_after_epochs is not None and epochs_this_run >= config.stop_after_epochs:
                break
    finally:
        stop.restore()

    seconds = time.perf_counter() - started
    if main and epoch >= config.epochs:
        save_weights(run_dir / "model.safetensors", objective.model.state_dict())
        meta["final_metrics"] = last_row
        meta["train_seconds"] = elapsed_before + seconds
        _write_json(run_dir / "config.json", meta)
        _plot(run_dir, pair_names)
    dist_utils.barrier()
    return TrainResult(
        run_dir=run_dir,
        metrics=last_row,
        steps=global_step,
        seconds=seconds,
        finished=epoch >= config.epochs,
        heldout_indices=heldout_idx,
        pair_names=pair_names,
        rank=rank,
    )


def _agreed(flag: bool) -> bool:
    """True when any rank raised ``flag`` (the flag itself when not distributed)."""
    if not dist_utils.is_distributed():
        return flag
    return dist_utils.all_reduce_mean(torch.tensor(float(flag))).item() > 0


def _request(stop: _StopFlag) -> Callable[[], None]:
    def request() -> None:
        stop.requested = True

    return request


def _restore(objective: Objective, optimizer, scheduler, scaler, state: dict[str, Any]) -> None:
    full = {f"model.{k}": v for k, v in state["model"].items()}
    full.update(state.get("objective", {}))
    objective.load_state_dict(full, strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2) + "\n")
    tmp.replace(path)


def _plot(run_dir: Path, pair_names: Sequence[str]) -> None:
    from .curves import plot_curves

    plot_curves(run_dir / "metrics.csv", run_dir / "curves.png", pair_names=pair_names)
