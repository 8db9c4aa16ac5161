"""All-gather that keeps the gradient: the negatives of every rank for the contrastive losses.

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

Rank, world size, barriers and reductions are :mod:`clipgeo.runtime`'s; this module
holds only what the losses need on top: the gather that keeps the gradient.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..runtime import is_distributed

__all__ = ["gather_with_grad"]


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
        ``clipgeo.runtime.rank() * n``.  The input itself when not distributed.
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)
