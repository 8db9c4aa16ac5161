"""The trainer: one loop for every objective, logging the geometry as it forms.

``train(config, source)`` trains an open_clip model on a sample source (a sequence of
``(image, caption)``, e.g. :class:`clipgeo.data.shapes.CaptionedShapes`) with AdamW, linear
warm-up + cosine decay, and autocast on GPU.  It writes into ``config.out`` (RUN_DIR):

- ``config.json``: the resolved configuration and provenance;
- ``metrics.csv``: loss, objective scalars (e.g. ``logit_scale``), held-out recall@1 and the
  geometry (l2 centroid distance, conformity, relative thickness, offset ratio …; see
  :mod:`clipgeo.train.metrics`) every ``log_every`` steps, at step 0 (the untrained model) and
  after every epoch;
- ``curves.png`` (and ``curves.json``, the numbers it plots): those curves, redrawn after every epoch
  (:func:`clipgeo.plotting._training.plot_training_curves`);
- ``checkpoint.pt``: after every epoch and on SIGTERM (atomic), for ``resume``; it also loads in
  ``clipgeo extract --checkpoint``;
- ``model.safetensors``: the final model weights.

The story, as :func:`train` tells it::

    state = setup(config, source)              # model, objective, data, optimizer, resume
    while state.epoch < config.epochs:
        train_one_epoch(state)                 # steps; a log row every log_every steps
        end_epoch(state)                       # log row, checkpoint, curves
    finish(state)                              # weights, final config.json

Everything the steps share lives in one :class:`RunState`.  What is optimised is an
:class:`~clipgeo.train.objective.Objective` (the contract is in :mod:`clipgeo.train.objective`).

Distributed training: under ``torchrun`` the trainer joins the process group
(:mod:`clipgeo.runtime`), wraps the objective in DistributedDataParallel, and shards every
global batch with :class:`~clipgeo.train.data.EpochSampler`; losses gather features across
ranks with gradient (:mod:`clipgeo.train.distributed`).  ``batch_size`` is per rank.  Only
rank 0 writes files.
"""

from __future__ import annotations

import signal
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import runtime
from .._io import to_jsonable, write_json
from ..errors import InputError
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint, save_weights
from .config import TrainConfig, TrainingDiverged, TrainingStopped, TrainResult, check_config
from .data import EpochSampler, collate, split_heldout
from .distributed import convert_batchnorm
from .metrics import BASE_COLUMNS, MetricsLog, heldout_metrics, metric_columns
from .objective import Objective, ObjectiveContext, get_objective
from .schedule import warmup_cosine_scheduler

__all__ = ["RunState", "end_epoch", "finish", "setup", "train", "train_one_epoch"]

Callback = Callable[[dict[str, Any]], None]


class _StopFlag:
    """Set by SIGTERM (or a callback's ``request_stop``); the loop checkpoints and stops after the current step."""

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

    def request(self) -> None:
        self.requested = True

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


@dataclass
class RunState:
    """Everything one training run holds between steps.

    Attributes
    ----------
    config : TrainConfig
    run_dir : Path
    device : torch.device
    precision : {"fp32", "fp16", "bf16"}
        Resolved (:func:`clipgeo.runtime.resolve_precision`).
    rank, world : int
    objective : Objective
        What is optimised; ``wrapped`` is the same under DistributedDataParallel.
    optimizer, scheduler, scaler
        AdamW, warm-up + cosine ``LambdaLR``, the fp16 gradient scaler (disabled otherwise).
    loader, sampler, loader_rng
        The training batches; the sampler skips the batches a mid-epoch resume already took.
    heldout_batch : dict of Tensor
        The fixed held-out samples the metrics embed.
    epoch, step_in_epoch, global_step : int
        Where training stands (the next batch is batch ``step_in_epoch`` of ``epoch``).
    resumed : bool
        Continued from ``checkpoint.pt``.
    saved_epoch : int or None
        Epoch of the last checkpoint written.
    running : dict of str to list of float
        Step outputs since the last log row.
    last_row : dict
        The last row logged.
    meta : dict
        Contents of ``config.json``.
    """

    config: TrainConfig
    run_dir: Path
    device: torch.device
    precision: str
    rank: int
    world: int
    objective: Objective
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    loader: torch.utils.data.DataLoader
    sampler: EpochSampler
    loader_rng: torch.Generator
    heldout_batch: dict[str, torch.Tensor]
    heldout_indices: np.ndarray
    steps_per_epoch: int
    meta: dict[str, Any]
    callbacks: Sequence[Callback] = ()
    progress: bool = False
    resumed: bool = False
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    epochs_this_run: int = 0
    saved_epoch: int | None = None
    running: dict[str, list[float]] = field(default_factory=dict)
    last_row: dict[str, Any] = field(default_factory=dict)
    log: MetricsLog | None = None
    elapsed_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    stop: _StopFlag = field(default_factory=_StopFlag)

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files."""
        return self.rank == 0

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def pair_names(self) -> tuple[str, str]:
        return tuple(self.objective.pair_names)

    def elapsed(self) -> float:
        """Seconds trained, over every invocation of this run."""
        return self.elapsed_before + time.perf_counter() - self.started

    def autocast(self):
        return runtime.autocast(self.device, self.precision)


# --------------------------------------------------------------------------- setup


def setup(config: TrainConfig, source: Sequence, *, callbacks: Sequence[Callback] = (), progress: bool = False) -> RunState:
    """Check the options, join the process group, build model, objective, data and optimizer, and resume.

    Every rank builds the same initial model (seeded); only rank 0 creates ``config.out`` and
    writes ``config.json``.
    """
    from ..models import load_model
    from ..provenance import provenance

    n = len(source)
    n_heldout, num_train = check_config(config, n)
    device = runtime.resolve_device(config.device)
    runtime.init_distributed(device)
    rank, world = runtime.rank(), runtime.world_size()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    precision = runtime.resolve_precision(config.precision, device)
    if config.batch_size * world > num_train:
        raise InputError(
            f"batch size {config.batch_size}{f' x {world} ranks' if world > 1 else ''} is larger than the "
            f"{num_train} training samples ({n} minus {n_heldout} held out); lower batch_size or use more data"
        )
    train_idx, heldout_idx = split_heldout(n, n_heldout, config.seed)

    run_dir = Path(config.out)
    resumed = _read_resume(config, run_dir)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)

    # model, objective, data: identical initialisation on every rank
    runtime.seed_all(config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "random initialisation" is the point of pretrained="none"
        loaded = load_model(config.model, config.pretrained, checkpoint=config.checkpoint, device=str(device))
    loaded.model.train()
    labels = getattr(source, "labels", None)
    num_classes = int(np.max(labels)) + 1 if labels is not None and len(labels) else 0
    ctx = ObjectiveContext(loaded=loaded, num_train=num_train, num_classes=num_classes, device=device, config=config)
    objective_cls = get_objective(config.objective)
    objective = objective_cls(ctx, **config.objective_options).to(device)
    objective.train()
    train_set = objective.make_dataset(source, train_idx, train=True)
    heldout_set = objective.make_dataset(source, heldout_idx, train=False)
    heldout_batch = collate([heldout_set[i] for i in range(len(heldout_set))])
    centring = None
    if resumed is None:  # a resumed run restores all of this from its checkpoint
        with torch.no_grad():
            objective.on_train_start()
            if config.init == "centred":
                centring = _centre(objective, source, train_idx, device)

    sampler = EpochSampler(num_train, config.batch_size, config.seed, rank, world)
    loader_rng = torch.Generator()  # worker seeds come from here, not from the global RNG
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers, collate_fn=collate,
        drop_last=True, pin_memory=device.type == "cuda", generator=loader_rng,
    )  # fmt: skip
    steps_per_epoch = sampler.batches_per_epoch
    total_steps = steps_per_epoch * config.epochs
    warmup = config.warmup_steps if config.warmup_steps is not None else int(round(0.05 * total_steps))
    warmup = min(warmup, total_steps)

    optimizer = _adamw(objective, config, device)
    scheduler = warmup_cosine_scheduler(optimizer, warmup, total_steps, config.min_lr_ratio)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    wrapped: nn.Module = objective
    if runtime.is_distributed():
        # batch norm on the global batch (heads of SimCLR, BYOL, SwAV …), on any backend
        convert_batchnorm(objective)
        wrapped = nn.parallel.DistributedDataParallel(
            objective,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=objective.find_unused_parameters,
            # banks, queues and clusterings are gathered by the objectives, so every rank holds the same
            # state; broadcasting rank 0's buffers at every forward would overwrite the other ranks' writes
            broadcast_buffers=False,
        )

    meta = {
        "config": config.to_dict(),
        "resolved": {
            "device": str(device), "precision": precision, "world_size": world, "num_train": num_train,
            "num_classes": num_classes, "num_heldout": n_heldout, "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps, "warmup_steps": warmup, "pair_names": list(objective.pair_names),
            "objective_class": objective_cls.__name__, "model": loaded.meta, "centring": centring,
        },
        "provenance": provenance(config.to_dict()),
    }  # fmt: skip
    state = RunState(
        config=config, run_dir=run_dir, device=device, precision=precision, rank=rank, world=world,
        objective=objective, wrapped=wrapped, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
        loader=loader, sampler=sampler, loader_rng=loader_rng, heldout_batch=heldout_batch,
        heldout_indices=heldout_idx, steps_per_epoch=steps_per_epoch, meta=meta, callbacks=tuple(callbacks),
        progress=progress,
    )  # fmt: skip
    if resumed is not None:
        _restore(state, resumed)
    if state.main:
        write_json(run_dir / "config.json", meta)
        # a resumed run keeps the rows up to its checkpoint; a new one starts the file
        state.log = MetricsLog(run_dir / "metrics.csv", list(BASE_COLUMNS) + metric_columns(state.pair_names),
                               keep_until_step=state.global_step if state.resumed else None,
                               insert_before=metric_columns(state.pair_names)[0])  # fmt: skip
    return state


def _read_resume(config: TrainConfig, run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint to resume from (checked against ``config``), or None for a new run."""
    path = run_dir / "checkpoint.pt"
    if not config.resume:
        if path.exists():
            raise InputError(f"{run_dir} already holds a training run; pass resume=True to continue it or another out=DIR")
        return None
    resumed = load_checkpoint(path)
    old = resumed.get("config", {})
    changed = [k for k in TrainConfig.FIXED_ON_RESUME if k in old and old[k] != to_jsonable(getattr(config, k))]
    if changed:
        k = changed[0]
        raise InputError(
            f"cannot resume {run_dir}: it was trained with {k}={old[k]!r}, now {getattr(config, k)!r}; "
            "resume with the same options or start a new run in another out=DIR"
        )
    return resumed


def _restore(state: RunState, saved: dict[str, Any]) -> None:
    full = {f"model.{k}": v for k, v in saved["model"].items()}
    full.update(saved.get("objective", {}))
    state.objective.load_state_dict(full, strict=True)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.scaler.load_state_dict(saved["scaler"])
    state.epoch, state.step_in_epoch, state.global_step = saved["epoch"], saved["step_in_epoch"], saved["global_step"]
    state.saved_epoch = state.epoch
    state.elapsed_before = float(saved.get("elapsed_s", 0.0))
    state.running = {k: list(v) for k, v in saved.get("running", {}).items()}  # carried over a mid-epoch resume
    if state.step_in_epoch > 0 and len(saved["rng"]) == state.world:
        restore_rng(saved["rng"][state.rank])
    state.resumed = True


def _adamw(objective: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, fused on CPU and CUDA (one kernel over all parameters: 3.5x faster steps on the tiny CLIP on CPU)."""
    groups = _param_groups(objective, config.weight_decay)
    kwargs = dict(lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # an older torch or an unsupported dtype
            groups = _param_groups(objective, config.weight_decay)
    return torch.optim.AdamW(groups, **kwargs)


#: training samples the centred initialisation averages over
CENTRING_SAMPLES = 256


def _centre(objective: Objective, source: Sequence, train_idx: np.ndarray, device: torch.device) -> dict[str, float]:
    """``init="centred"``: shift the towers so their raw outputs on the first training samples have mean 0."""
    from .centring import centre_towers

    idx = train_idx[:CENTRING_SAMPLES]  # the same samples on every rank
    dataset = objective.make_dataset(source, idx, train=False)
    batch = _to_device(collate([dataset[i] for i in range(len(dataset))]), device)
    was_training = objective.training
    objective.eval()
    if objective.data_kind == "pairs":
        report = centre_towers(objective.model, images=batch["image"], texts=batch["text"])
    else:  # the image objectives train the image tower only
        report = centre_towers(objective.model, images=batch[next(k for k in batch if k.startswith("view"))])
    objective.train(was_training)
    return report


def _param_groups(objective: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on gains, biases, 1-d parameters and the logit scale."""
    decay, no_decay = [], []
    for name, p in objective.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "logit_scale" in name or "bias" in name.rsplit(".", 1)[-1]:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --------------------------------------------------------------------------- one epoch


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31)


def train_one_epoch(state: RunState) -> None:
    """Train the rest of epoch ``state.epoch``: steps, callbacks, a log row every ``log_every`` steps.

    Raises
    ------
    TrainingDiverged
        The loss is not finite on some rank.
    TrainingStopped
        SIGTERM or ``request_stop`` mid-epoch (a checkpoint was written first).
    """
    config = state.config
    seed = _epoch_seed(config.seed, state.epoch, state.rank)
    if state.step_in_epoch == 0:
        runtime.seed_all(seed)
    state.loader_rng.manual_seed(seed + state.step_in_epoch)
    state.sampler.set_epoch(state.epoch, skip_batches=state.step_in_epoch)
    for batch in state.loader:
        out = train_step(state, batch)
        state.step_in_epoch += 1
        state.global_step += 1
        for key, value in out.items():
            state.running.setdefault(key, []).append(_scalar(value))
        for callback in state.callbacks:
            callback({
                "epoch": state.epoch, "step_in_epoch": state.step_in_epoch, "global_step": state.global_step,
                "loss": state.running["loss"][-1], "request_stop": state.stop.request,
            })  # fmt: skip
        inside = state.step_in_epoch < state.steps_per_epoch
        if state.global_step % config.log_every == 0 and inside:
            log(state)
        if inside and _agreed(state.stop.requested):
            checkpoint(state)
            raise TrainingStopped(
                f"stopped by SIGTERM at epoch {state.epoch + 1} step {state.step_in_epoch}; checkpoint saved in "
                f"{state.checkpoint_path}, continue with resume=True"
            )


def train_step(state: RunState, batch: dict[str, Any]) -> dict[str, Any]:
    """One optimizer step on ``batch``; returns the objective's outputs (``loss`` and its scalars)."""
    batch = _to_device(batch, state.device)
    with state.autocast():
        out = state.wrapped(batch)
    loss = out["loss"]
    finite = runtime.all_reduce_mean(torch.isfinite(loss.detach()).float())
    if finite.item() < 1.0:
        kept = (
            f"the last good checkpoint {state.checkpoint_path} (after epoch {state.saved_epoch}) is kept"
            if state.saved_epoch is not None
            else "no checkpoint had been written yet"
        )
        raise TrainingDiverged(
            f"the loss became {loss.item()} at epoch {state.epoch + 1} step {state.step_in_epoch + 1}; {kept}; "
            "lower lr, or use precision='fp32'"
        )
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if state.config.grad_clip:
        state.scaler.unscale_(state.optimizer)
        nn.utils.clip_grad_norm_(state.objective.parameters(), state.config.grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    with torch.no_grad():
        state.objective.on_after_step()
    return out


def end_epoch(state: RunState) -> bool:
    """Close the epoch: log row, checkpoint, curves; True when this invocation should stop here.

    Raises
    ------
    TrainingStopped
        SIGTERM arrived during the epoch and epochs remain (the checkpoint is written).
    """
    state.epoch += 1
    state.step_in_epoch = 0
    state.epochs_this_run += 1
    log(state)
    checkpoint(state)
    if state.main:
        _plot(state)
    if _agreed(state.stop.requested) and state.epoch < state.config.epochs:
        raise TrainingStopped(
            f"stopped by SIGTERM after epoch {state.epoch}; checkpoint saved in {state.checkpoint_path}, "
            "continue with resume=True"
        )
    limit = state.config.stop_after_epochs
    return limit is not None and state.epochs_this_run >= limit


# --------------------------------------------------------------------------- log and save


def log(state: RunState) -> None:
    """Average the step outputs over ranks (every rank), then rank 0 writes a row of ``metrics.csv``."""
    keys = sorted(state.running)
    means = torch.tensor([float(np.mean(state.running[k])) for k in keys], dtype=torch.float64)
    state.running.clear()
    if keys:
        means = runtime.all_reduce_mean(means)
    if state.main:
        write_row(state, dict(zip(keys, means.tolist(), strict=True)))


def write_row(state: RunState, step_means: dict[str, float]) -> dict[str, Any]:
    """Embed the held-out batch and append one row (step means, logged state, held-out metrics)."""
    a, b = _embed_heldout(state)
    row: dict[str, Any] = {
        "epoch": state.global_step / state.steps_per_epoch,
        "step": state.global_step,
        "samples": state.global_step * state.config.batch_size * state.world,
        "elapsed_s": state.elapsed(),
        "lr": state.optimizer.param_groups[0]["lr"],
    }
    row.update(step_means)
    row.update({k: _scalar(v) for k, v in state.objective.logged_state().items()})
    row.update(heldout_metrics(a, b, state.pair_names))
    state.log.write(row)
    if state.progress:
        first, second = metric_columns(state.pair_names)[:2]
        loss_text = f"{row['loss']:.4f}" if "loss" in row else "-"
        print(
            f"epoch {row['epoch']:.2f} step {state.global_step}: loss {loss_text}, "
            f"R@1 {row[first]:.3f}/{row[second]:.3f} (chance {row['chance_r1']:.3f}), "
            f"gap {row['l2_centroid_distance']:.3f}",
            flush=True,
            file=sys.stderr,
        )
    state.last_row = row
    return row


def checkpoint(state: RunState) -> None:
    """Write ``checkpoint.pt`` (rank 0, with the random states of every rank); every rank calls this."""
    rngs = runtime.gather_object(capture_rng())
    if state.main:
        objective = state.objective
        save_checkpoint(
            state.checkpoint_path,
            model=objective.model.state_dict(),
            objective={k: v for k, v in objective.state_dict().items() if not k.startswith("model.")},
            optimizer=state.optimizer.state_dict(),
            scheduler=state.scheduler.state_dict(),
            scaler=state.scaler.state_dict(),
            epoch=state.epoch,
            step_in_epoch=state.step_in_epoch,
            global_step=state.global_step,
            rng=rngs,
            world_size=state.world,
            elapsed_s=state.elapsed(),
            running={k: list(v) for k, v in state.running.items()},
            config=to_jsonable(state.config.to_dict()),
        )
    state.saved_epoch = state.epoch
    runtime.barrier()


def finish(state: RunState) -> TrainResult:
    """Final weights and ``config.json`` (when every epoch is done), then the result of this invocation."""
    seconds = time.perf_counter() - state.started
    done = state.epoch >= state.config.epochs
    if state.main and done:
        save_weights(state.run_dir / "model.safetensors", state.objective.model.state_dict())
        state.meta["final_metrics"] = state.last_row
        state.meta["train_seconds"] = state.elapsed_before + seconds
        write_json(state.run_dir / "config.json", state.meta)
        _plot(state)
    runtime.barrier()
    return TrainResult(
        run_dir=state.run_dir, metrics=state.last_row, steps=state.global_step, seconds=seconds, finished=done,
        heldout_indices=state.heldout_indices, pair_names=state.pair_names, rank=state.rank,
    )  # fmt: skip


# --------------------------------------------------------------------------- the story


def train(
    config: TrainConfig,
    source: Sequence,
    *,
    callbacks: Sequence[Callback] = (),
    progress: bool = False,
) -> TrainResult:
    """Train ``config.objective`` on ``source`` and log the geometry over training.

    Parameters
    ----------
    config : TrainConfig
    source : sequence of (image, caption)
        The data (PIL images or paths, and strings), e.g.
        :class:`clipgeo.data.shapes.CaptionedShapes`; ``labels`` and ``captions`` attributes are
        used when present.  A fixed held-out part (``config.heldout`` samples, by seed) is kept
        out of training.
    callbacks : sequence of callables
        Called after every optimizer step with a dict ``epoch``, ``step_in_epoch``,
        ``global_step``, ``loss``, ``request_stop`` (a function that makes the loop checkpoint
        and stop, as SIGTERM does).
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
    state = setup(config, source, callbacks=callbacks, progress=progress)
    state.started = time.perf_counter()
    state.stop.install()
    try:
        if state.main and not state.resumed:
            write_row(state, {})  # the untrained model
        while state.epoch < config.epochs:
            train_one_epoch(state)
            if end_epoch(state):
                break
        result = finish(state)
    except (TrainingStopped, TrainingDiverged):
        runtime.destroy_distributed()  # every rank agreed on these: leave together
        raise
    finally:
        state.stop.restore()
    runtime.destroy_distributed()
    return result


# --------------------------------------------------------------------------- helpers


def _agreed(flag: bool) -> bool:
    """True when any rank raised ``flag`` (the flag itself when not distributed)."""
    if not runtime.is_distributed():
        return flag
    return runtime.all_reduce_mean(torch.tensor(float(flag))).item() > 0


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _scalar(value: Any) -> float:
    return float(value.detach().float().mean().item()) if isinstance(value, torch.Tensor) else float(value)


def _embed_heldout(state: RunState) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw embeddings ``(a, b)`` of the held-out batch, in eval mode, chunked by ``batch_size``."""
    objective, batch, chunk = state.objective, state.heldout_batch, state.config.batch_size
    was_training = objective.training
    objective.eval()
    a_parts, b_parts = [], []
    n = len(next(iter(v for v in batch.values() if isinstance(v, torch.Tensor))))
    with torch.no_grad(), state.autocast():
        for start in range(0, n, chunk):
            part = _to_device({k: v[start : start + chunk] for k, v in batch.items()}, state.device)
            a, b = objective.embed_pair(part)
            a_parts.append(a.float().cpu())
            b_parts.append(b.float().cpu())
    objective.train(was_training)
    return torch.cat(a_parts), torch.cat(b_parts)


def _plot(state: RunState) -> None:
    from ..plotting._training import plot_training_curves

    plot_training_curves(state.run_dir / "metrics.csv", state.run_dir, pair_names=state.pair_names)
