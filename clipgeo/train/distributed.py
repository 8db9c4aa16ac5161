"""Distributed helpers: rank / world size, and all-gather that keeps the gradient.

Contrastive losses need every other sample of the *global* batch as a
negative, so under ``torchrun`` each rank gathers the features of all ranks.
clipgeo follows open_clip's ``gather_with_grad=True, local_loss=True``
semantics:

- :func:`gather_with_grad` concatenates the features of all ranks, shape
  ``(world_size * n, d)``, and its backward pass *sums* the incoming gradients
  of every rank and hands each rank the slice of its own rows;
- each rank computes the loss of its **local** anchors only (mean over them)
  against the gathered candidates;
- DistributedDataParallel then *averages* the parameter gradients over ranks.

Together these give exactly the loss and the gradients of the full batch on
one process: with ``L = (1/W) Σ_k L_k``, rank ``r`` receives
``Σ_k ∂L_k/∂f_r`` for its features ``f_r``, and the DDP average turns
``Σ_r Σ_k ∂L_k/∂f_r · ∂f_r/∂θ`` into ``(1/W) Σ_k ∂L_k/∂θ = ∂L/∂θ``.
``tests/test_distributed.py`` checks this on two gloo processes.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = [
    "all_reduce_mean",
    "barrier",
    "gather_with_grad",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "local_rank",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """Global rank of this process (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    """Rank of this process on its machine (``LOCAL_RANK`` set by torchrun, else 0)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on rank 0: the process that writes checkpoints, metrics and plots."""
    return rank() == 0


def init_distributed(device: str) -> bool:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Uses NCCL for CUDA devices and gloo otherwise.  Returns True when
    distributed; a no-op (False) for a plain ``python``/``clipgeo`` launch.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; the input is unchanged)."""
    if not is_distributed():
        return value.clone()
    # NCCL reduces CUDA tensors only
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else value.device
    out = value.detach().to(device, dtype=torch.float32).clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / world_size()).to(value.device)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums the gradients of all ranks."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # (n, ...) -> (W*n, ...)
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.n = tensor.shape[0]
        ctx.rank = dist.get_rank()
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # (W*n, ...) -> (n, ...)
        grad = grad.contiguous()
        # Every rank holds d L_k / d(all features); the gradient of this rank's
        # rows is the sum over k.  all_reduce then slice works on every backend
        # (gloo has no reduce_scatter).
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.n
        return grad[start : start + ctx.n]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank, keeping the gradient to the local rows.

    Parameters
    ----------
    tensor : Tensor of shape (n, ...)
        The local rows; every rank must pass the same shape.

    Returns
    -------
    Tensor of shape (world_size * n, ...)
        Rows of rank 0 first, then rank 1, …; this rank's rows start at
        ``rank() * n``.  The input itself when not distributed.
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)
