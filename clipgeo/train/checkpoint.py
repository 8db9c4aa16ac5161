"""Checkpoints of a training run: written atomically, read without unpickling code.

``RUN_DIR/checkpoint.pt`` is a dict of plain containers and tensors:

- ``model``: the open_clip model's state dict — so the file itself loads in
  ``clipgeo extract --checkpoint`` (:func:`clipgeo.models.read_state_dict`
  takes the ``"model"`` entry);
- ``objective``: the rest of the objective's state (queues, banks, EMA
  weights …; its keys without the ``model.`` prefix);
- ``optimizer``, ``scheduler``, ``scaler``: their state dicts;
- ``epoch``, ``step_in_epoch``, ``global_step``: where training stands (the
  next batch to train is batch ``step_in_epoch`` of epoch ``epoch``);
- ``rng``: the random states (torch, CUDA, numpy, python) of every rank;
- ``config``: the resolved training configuration;
- ``format``: ``"clipgeo-train-checkpoint"`` and ``format_version``.

Writes go through :func:`clipgeo._io.atomic_path`, so a crash or a kill never
leaves a half-written checkpoint.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path
from ..errors import ClipgeoError
from ..runtime import load_torch_file

__all__ = ["FORMAT", "capture_rng", "load_checkpoint", "restore_rng", "save_checkpoint", "save_weights"]

FORMAT = "clipgeo-train-checkpoint"
FORMAT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    """The random states of this process, as tensors and plain values (safe to load with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set the random states captured by :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, **entries: Any) -> Path:
    """Write a checkpoint atomically (:func:`clipgeo._io.atomic_path`); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "format_version": FORMAT_VERSION, **entries}, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only``: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise ClipgeoError(f"no checkpoint at {path}; pass resume=False to start a new run in that folder")
    state = load_torch_file(path, fix="it may be truncated; start a new run in another out folder")
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ClipgeoError(f"{path} is not a clipgeo training checkpoint; give out=DIR of a run made by clipgeo train")
    return state


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor]) -> Path:
    """Save a bare model state dict as ``.safetensors`` (atomic; loads in ``clipgeo extract --checkpoint``)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    return path
