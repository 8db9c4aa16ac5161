"""Training runs read back: a run folder, its configuration and weights, and its objective rebuilt.

:mod:`clipgeo.train.probe` and :mod:`clipgeo.train.compare` both start here; this module imports
neither.  ``config.json`` is parsed here and nowhere else.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import reopen_source
from ..errors import ClipgeoError, InputError
from .config import TrainConfig

__all__ = ["EVAL_SEED", "Run", "build_objective", "load_run", "tower_of"]

EVAL_SEED = 20_250  # seed of the evaluation shapes: no run trains on it by default


@dataclass
class Run:
    """A training run directory written by ``clipgeo train``.

    Attributes
    ----------
    path : Path
    meta : dict
        The contents of ``config.json`` (``config``, ``resolved``, ``provenance`` …).
    weights : Path
        ``model.safetensors`` of a finished run, else ``checkpoint.pt``.
    """

    path: Path
    meta: dict[str, Any]
    weights: Path

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def objective(self) -> str:
        return str(self.config["objective"])

    @property
    def model(self) -> str:
        return str(self.config["model"])

    @property
    def finished(self) -> bool:
        return self.weights.name == "model.safetensors"


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; :class:`ClipgeoError` if it is not one."""
    path = Path(run_dir)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ClipgeoError(f"{path} is not a training run (no config.json); pass the out folder of a clipgeo train run")
    try:
        meta = json.loads(config_path.read_text())
        meta["config"]["objective"], meta["config"]["model"]
    except (ValueError, KeyError, TypeError):
        raise ClipgeoError(f"{config_path} is not a clipgeo training config; pass the out folder of a clipgeo train run") from None
    for name in ("model.safetensors", "checkpoint.pt"):
        if (path / name).is_file():
            return Run(path=path, meta=meta, weights=path / name)
    raise ClipgeoError(f"{path} holds no weights yet (no model.safetensors or checkpoint.pt); let the run finish an epoch")


def build_objective(run: Run | None, *, model: str | None = None, objective: str | None = None, device: str = "cpu"):
    """The objective of a run, with the run's trained weights, in eval mode.

    With ``run=None``: the objective ``objective`` on the architecture ``model``
    with random weights (the untrained baseline; seeded, so reproducible).

    Returns
    -------
    clipgeo.train.objective.Objective
    """
    import torch

    from ..models import load_model
    from ..runtime import resolve_device
    from .objective import ObjectiveContext, get_objective

    device = str(resolve_device(device))

    if run is not None:
        fields = TrainConfig.__dataclass_fields__
        config = TrainConfig(**{k: v for k, v in run.config.items() if k in fields})
        config.resume = False
        resolved = run.meta.get("resolved", {})
        num_train = int(resolved.get("num_train", 2))
        num_classes = resolved.get("num_classes")
        if num_classes is None:  # runs written before the trainer recorded it
            labels = getattr(reopen_source(run.config.get("data") or {}), "labels", None)
            num_classes = int(np.max(labels)) + 1 if labels is not None and len(labels) else 0
    else:
        if model is None or objective is None:
            raise InputError("a baseline needs model=NAME and objective=NAME")
        config = TrainConfig(out="", model=model, objective=objective, device=device)
        num_train, num_classes = 2, 0
    torch.manual_seed(config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if run is None:
            loaded = load_model(config.model, "none", device=device)
        else:  # model.safetensors, or the "model" entry of checkpoint.pt
            loaded = load_model(config.model, checkpoint=run.weights, device=device)
    cls = get_objective(config.objective)
    if run is None and num_classes < 2 and config.objective == "supervised":
        num_classes = 5
    ctx = ObjectiveContext(
        loaded=loaded, num_train=max(num_train, 4), num_classes=int(num_classes), device=torch.device(device), config=config
    )
    options = dict(config.objective_options) if run is not None else {}
    built = cls(ctx, **options).to(device)
    built.eval()
    return built


def tower_of(objective) -> str:
    """The tower an objective trains: ``"text"`` for text-only objectives, else ``"image"``."""
    return "text" if getattr(objective, "data_kind", "") == "text" else "image"
