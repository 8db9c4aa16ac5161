"""What a training run is told and what it returns: :class:`TrainConfig`, :class:`TrainResult`, and its stops.

No torch here: the command line reads its defaults from :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ClipgeoError, InputError
from ..runtime import resolve_precision
from ..validation import check_count, check_positive, check_scalar

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "TrainingStopped", "check_config"]


class TrainingDiverged(ClipgeoError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingStopped(ClipgeoError):
    """Training stopped early on request (SIGTERM); the checkpoint allows ``resume``."""


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
    temperature : float or None
        A **fixed** temperature τ > 0 of the CLIP objective: the logit scale is 1/τ and is not
        learned (e.g. 0.01, CLIP's end value).  None: the scale is learned.
    init_temperature : float or None
        Where a **learnable** logit scale starts (1/init_temperature, e.g. 0.07 as CLIP); None:
        the model's own (1/0.07 for a random init, the learned value of pretrained weights).
        Clamped at 100 on the parameter after every optimizer step.  Conflicts with ``temperature``.
    init : {"random", "centred"}
        ``random``: the model as loaded.  ``centred``: before the first step each tower is shifted
        so that its raw outputs on the first (up to 256) training samples have mean 0
        (:mod:`clipgeo.train.centring`), removing the modality gap of the random-init cone.
    seed : int
        Seeds the model initialisation, held-out split, shuffling and augmentation.
    device : str
        ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``
        (:func:`clipgeo.runtime.resolve_device`).
    precision : {"auto", "fp32", "fp16", "bf16"}
        fp32 weights always; ``fp16`` autocasts to float16 with a gradient scaler,
        ``bf16`` to bfloat16; ``auto``: ``fp16`` on CUDA, ``fp32`` elsewhere
        (:mod:`clipgeo.runtime`).
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
    temperature: float | None = None
    init_temperature: float | None = None
    init: str = "random"
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
        "min_lr_ratio", "seed", "heldout", "augment", "data", "temperature", "init_temperature", "init",
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


#: the initialisations ``TrainConfig.init`` takes
INITS = ("random", "centred")
#: objectives with a CLIP logit scale (``temperature`` / ``init_temperature`` apply to them)
SCALED_OBJECTIVES = ("clip",)


def check_temperature_options(config: TrainConfig) -> None:
    """Refuse a temperature ≤ 0, an unknown init, and options that contradict each other."""
    if config.init not in INITS:
        raise InputError(f"unknown init {config.init!r}; choose one of {', '.join(INITS)}")
    given = [name for name in ("temperature", "init_temperature") if getattr(config, name) is not None]
    for name in given:
        check_positive(getattr(config, name), name)
    if len(given) == 2:
        raise InputError(
            f"temperature={config.temperature} fixes the logit scale but init_temperature={config.init_temperature} "
            "starts a learnable one; give one of them"
        )
    if given and config.objective not in SCALED_OBJECTIVES:
        raise InputError(
            f"{given[0]} sets the CLIP logit scale, which objective {config.objective!r} does not have; "
            "set its own temperature with objective_option temperature=VALUE"
        )
    if config.temperature is not None and "max_logit_scale" in config.objective_options:
        raise InputError(
            f"temperature={config.temperature} fixes the logit scale, so the learnable-scale option max_logit_scale "
            "has nothing to clamp; drop one of them"
        )


def check_config(config: TrainConfig, n: int) -> tuple[int, int]:
    """Check ``config`` against a source of ``n`` samples, once; returns (held-out, training) sample counts.

    The world size is not known here; :func:`clipgeo.train.trainer.setup` checks the global batch.
    """
    if n == 0:
        raise InputError("the training data is empty; check the data options (e.g. shapes=N with N > 0)")
    for name in ("epochs", "batch_size", "log_every"):
        check_count(getattr(config, name), name)
    check_positive(config.lr, "lr")
    check_scalar(config.weight_decay, "weight_decay", min_val=0.0)
    check_count(config.workers, "workers", minimum=0)
    resolve_precision(config.precision)
    check_temperature_options(config)
    if config.grad_clip is not None:
        check_positive(config.grad_clip, "grad_clip")
    n_heldout = config.heldout if config.heldout is not None else min(256, max(2, n // 10))
    if n_heldout < 2:
        raise InputError(f"heldout must be at least 2 (recall@1 needs two pairs), got {n_heldout}")
    if n - n_heldout < 1:
        raise InputError(f"{n} samples leave nothing to train on after holding out {n_heldout}; "
                         "use more data or a smaller heldout")  # fmt: skip
    return n_heldout, n - n_heldout
