"""Where and how torch runs: device, precision, autocast, seeding, the torchrun process group, safe loading.

One place for what ``clipgeo extract`` and ``clipgeo train`` (and the evaluation of runs) share.
torch is imported inside the functions, so ``import clipgeo.runtime`` costs nothing.

Devices
    ``auto`` (CUDA if available, else MPS, else CPU), ``cpu``, ``cuda`` (under torchrun: this
    rank's GPU, ``LOCAL_RANK``), ``cuda:N``, ``mps``.
Precision (one vocabulary for extraction and training)
    ``fp32``: no autocast.  ``fp16`` / ``bf16``: the weights stay float32 and the forward pass runs
    under ``torch.autocast`` to float16 / bfloat16; in training ``fp16`` adds a gradient scaler
    (``bf16`` needs none).  ``auto``: ``fp16`` on CUDA, ``fp32`` elsewhere.  Extraction defaults to
    ``fp32`` (exact stores), training to ``auto``.
torchrun
    :func:`init_distributed` joins the process group described by the environment (``WORLD_SIZE`` > 1;
    NCCL on CUDA, gloo otherwise); :func:`rank`, :func:`world_size`, :func:`barrier`,
    :func:`all_reduce_mean`, :func:`all_reduce_sum`, :func:`gather_object` work with or without it;
    :func:`destroy_distributed` leaves after a barrier (a gloo teardown while another rank still
    talks aborts now and then).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ClipgeoError, InputError

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "all_reduce_mean",
    "all_reduce_sum",
    "autocast",
    "autocast_dtype",
    "barrier",
    "destroy_distributed",
    "distributed",
    "gather_object",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "load_torch_file",
    "local_rank",
    "rank",
    "resolve_device",
    "resolve_precision",
    "seed_all",
    "world_size",
]

#: device names (``cuda:N`` is accepted too)
DEVICES = ("auto", "cpu", "cuda", "mps")
#: compute precisions, ``auto`` resolved per device by :func:`resolve_precision`
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


# --------------------------------------------------------------------------- device


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(device: str = "auto"):
    """The ``torch.device`` that ``device`` names, checked to exist on this machine.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}
        ``auto``: CUDA if available, else MPS, else CPU.  ``cuda`` is this rank's GPU under
        torchrun (``LOCAL_RANK`` modulo the GPUs visible), else GPU 0.

    Raises
    ------
    InputError
        Unknown name, or a device this machine does not have.
    """
    import torch

    name = str(device).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    base, _, index = name.partition(":")
    if base not in DEVICES[1:] or (index and (base != "cuda" or not index.isdigit())):
        raise InputError(f"unknown device={device!r}; use one of auto, cpu, cuda, cuda:N, mps")
    if base == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device={device!r} asked for but no CUDA GPU is visible; use device='cpu' (or 'auto')")
        count = torch.cuda.device_count()
        gpu = int(index) if index else local_rank() % count
        if gpu >= count:
            raise InputError(f"device={device!r} asked for but only {count} CUDA GPU(s) are visible; use cuda:0 … cuda:{count - 1}")
        return torch.device("cuda", gpu)
    if base == "mps" and not _mps_available():
        raise InputError(f"device={device!r} asked for but MPS is not available; use device='cpu' (or 'auto')")
    return torch.device(base)


# --------------------------------------------------------------------------- precision


def resolve_precision(precision: str, device: Any = None) -> str:
    """``precision`` checked, with ``auto`` resolved for ``device`` (fp16 on CUDA, else fp32).

    Raises
    ------
    InputError
        A name outside :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision={precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        kind = getattr(device, "type", str(device or "cpu").split(":")[0])
        return "fp16" if kind == "cuda" else "fp32"
    return precision


def autocast_dtype(precision: str):
    """The autocast dtype of a resolved precision: float16, bfloat16, or None for fp32."""
    import torch

    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[resolve_precision(precision)]


def autocast(device: Any, precision: str):
    """Context manager running the forward pass in ``precision`` on ``device`` (a no-op for fp32)."""
    import torch

    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=getattr(device, "type", str(device).split(":")[0]), dtype=dtype)


# --------------------------------------------------------------------------- seeding


def seed_all(seed: int) -> None:
    """Seed torch (every device), numpy's global generator and ``random``."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


# --------------------------------------------------------------------------- torchrun


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def local_rank() -> int:
    """Rank of this process on its machine (``LOCAL_RANK`` set by torchrun, else 0)."""
    return _env_int("LOCAL_RANK", 0)


def _initialized() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    import torch.distributed as dist

    return _initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    import torch.distributed as dist

    return dist.get_rank() if _initialized() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    import torch.distributed as dist

    return dist.get_world_size() if _initialized() else 1


def is_main_process() -> bool:
    """True on rank 0: the process that writes files."""
    return rank() == 0


_joined_here = False


def init_distributed(device: Any = "cpu") -> bool:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE`` > 1).

    NCCL for a CUDA ``device`` (a ``torch.device`` or its name), gloo otherwise.  Returns True when
    distributed; False (and nothing happens) for a plain ``python`` / ``clipgeo`` launch.
    """
    global _joined_here
    if _env_int("WORLD_SIZE", 1) <= 1:
        return False
    if not _initialized():
        import datetime

        import torch.distributed as dist

        kind = getattr(device, "type", str(device).split(":")[0])
        backend = "nccl" if kind == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=12))
        _joined_here = True
    return True


def destroy_distributed() -> None:
    """Leave the process group joined by :func:`init_distributed`, after a barrier (no-op otherwise)."""
    global _joined_here
    if not _joined_here or not _initialized():
        return
    import torch.distributed as dist

    with contextlib.suppress(Exception):
        dist.barrier()
    dist.destroy_process_group()
    _joined_here = False


@contextlib.contextmanager
def distributed(device: Any = "cpu") -> Iterator[bool]:
    """:func:`init_distributed` on entry, :func:`destroy_distributed` on a normal exit; yields whether distributed.

    After an error the group is left as it is: a barrier could wait forever for a rank that
    failed, and the process is about to exit anyway.
    """
    joined = init_distributed(device)
    yield joined
    destroy_distributed()


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def _reduce(value, op: str):
    import torch
    import torch.distributed as dist

    # NCCL reduces CUDA tensors only
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else value.device
    dtype = value.dtype if value.is_floating_point() else torch.float64
    out = value.detach().to(device, dtype=dtype).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    if op == "mean":
        out = out / world_size()
    return out.to(value.device)


def all_reduce_mean(value):
    """Mean of a tensor over ranks (a copy; the input is unchanged)."""
    if not is_distributed():
        return value.clone()
    return _reduce(value, "mean")


def all_reduce_sum(value):
    """Sum of a tensor over ranks (a copy; the input is unchanged)."""
    if not is_distributed():
        return value.clone()
    return _reduce(value, "sum")


def gather_object(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` when not distributed); picklable objects only."""
    if not is_distributed():
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


# --------------------------------------------------------------------------- safe loading


def load_torch_file(path: str | os.PathLike, *, fix: str) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU: tensors and plain containers, no pickled code.

    Parameters
    ----------
    path : path
    fix : str
        What the user should do when the file cannot be read (the end of the one-line error).

    Raises
    ------
    ClipgeoError
        The file cannot be read safely (truncated, not a torch file, or it holds code).
    """
    import torch

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise ClipgeoError(f"{path} could not be loaded safely ({type(exc).__name__}: {first}); {fix}") from None
