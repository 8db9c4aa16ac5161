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

Losses that are not a mean over anchors (Barlow Twins, VICReg: batch statistics; SwAV:
Sinkhorn over the batch) gather the global batch and compute the global loss on every rank;
with the summed backward and DDP's average that is again the full-batch gradient.  Batch
norm in heads becomes :class:`GatheredBatchNorm1d` (global-batch statistics, on any
backend).  State that ranks write — memory-bank rows, queue keys, clusterings — is
updated from :func:`gather` (every rank's rows, no gradient) so that every rank holds the
same state as one process on the full batch; the trainer's DistributedDataParallel does not
broadcast buffers (``broadcast_buffers=False``), which would copy rank 0's over the others.

Rank, world size, barriers and reductions are :mod:`clipgeo.runtime`'s; this module
holds only what the losses need on top.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..runtime import is_distributed

__all__ = ["GatheredBatchNorm1d", "convert_batchnorm", "gather", "gather_with_grad"]


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


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (n, ...) from every rank, rank 0's rows first, without gradient.

    For state every rank must hold the same (memory-bank rows and their indices, queue keys,
    Sinkhorn scores): gathered before the update, so each rank writes all ranks' rows.  The
    input itself when not distributed.
    """
    if not is_distributed():
        return tensor
    tensor = tensor.detach().contiguous()
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return torch.cat(parts, dim=0)


class GatheredBatchNorm1d(torch.nn.BatchNorm1d):
    """``BatchNorm1d`` whose training statistics are those of the global batch of every rank.

    ``nn.SyncBatchNorm`` does this on GPUs only; this version gathers the inputs with
    :func:`gather_with_grad` and works on any backend (gloo included), so a head with batch
    norm gives the single-process result on the full batch.  Outside training, or when not
    distributed, it is a plain ``BatchNorm1d`` (same parameters and buffers, same state dict).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (n, C) -> (n, C)
        if not (self.training and is_distributed()):
            return super().forward(x)
        n = x.shape[0]
        everything = gather_with_grad(x)  # (W*n, C)
        mean = everything.mean(dim=0)
        var = everything.var(dim=0, unbiased=False)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                unbiased = var * everything.shape[0] / max(everything.shape[0] - 1, 1)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
                self.num_batches_tracked += 1
        start = torch.distributed.get_rank() * n
        local = (everything[start : start + n] - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            local = local * self.weight + self.bias
        return local


def convert_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Replace every ``BatchNorm1d`` in ``module`` by a :class:`GatheredBatchNorm1d` (in place; returns ``module``).

    The trainer calls this under ``torchrun``; parameters and buffers are kept, so checkpoints
    load either way.
    """
    for name, child in list(module.named_children()):
        if type(child) is torch.nn.BatchNorm1d:
            device = next((t.device for t in child.state_dict().values()), torch.device("cpu"))
            gathered = GatheredBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                           child.track_running_stats).to(device)  # fmt: skip
            gathered.load_state_dict(child.state_dict())
            for p_new, p_old in zip(gathered.parameters(), child.parameters(), strict=True):
                p_new.requires_grad_(p_old.requires_grad)
            setattr(module, name, gathered)
        else:
            convert_batchnorm(child)
    return module
