"""Pieces shared by several objectives: feature checks, EMA copies, unit vectors, MLP heads.

Scalar arguments are checked with :mod:`clipgeo.validation`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...errors import InputError
from ...runtime import is_distributed
from ...validation import check_count, check_scalar
from ..distributed import gather_with_grad


def check_features(name: str, x: torch.Tensor, dim: int | None = None) -> None:
    """Raise :class:`InputError` unless ``x`` is a 2-D float tensor (with ``dim`` columns)."""
    if x.ndim != 2 or not x.is_floating_point():
        raise InputError(f"{name} must be a 2-D float tensor (batch, dim), got shape {tuple(x.shape)} {x.dtype}")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{name} has {x.shape[1]} features, expected {dim}; build the objective with dim={x.shape[1]}")


def unit(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm. x: (..., d)."""
    return nn.functional.normalize(x, dim=-1)


def attach(owner: nn.Module, name: str, module: nn.Module, register: bool) -> None:
    """Set ``owner.<name> = module``, as a registered submodule or as a plain reference.

    A plain reference keeps ``module`` out of ``owner``'s parameters and state
    dict: for an encoder that a wrapping objective already owns and saves.
    """
    if register:
        setattr(owner, name, module)
    else:
        object.__setattr__(owner, name, module)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters take no gradient (an EMA target)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``θ_target ← m · θ_target + (1 − m) · θ_online`` for every parameter; buffers are copied.

    ``momentum = 0`` copies the online weights, ``momentum = 1`` leaves the target unchanged.
    """
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


def mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear → BatchNorm → ReLU → Linear: the projector/predictor head of SimCLR, BYOL and SwAV."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


def optional_head(in_dim: int, projection_dim: int, hidden_dim: int) -> nn.Module:
    """:func:`mlp` to ``projection_dim`` outputs when ``projection_dim > 0``, else identity (the loss then acts
    on the tower's output itself, which is what the analyzers see)."""
    check_scalar(projection_dim, "projection_dim", target_type=int, min_val=0)
    if not projection_dim:
        return nn.Identity()
    return mlp(in_dim, check_count(hidden_dim, "hidden_dim"), int(projection_dim))


def global_views(z_a: torch.Tensor, z_b: torch.Tensor, gather: bool | None, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (N, D) views checked, in at least float32, and gathered over the ranks (with gradient) when ``gather``
    (None: when running under torchrun); for losses of batch statistics, which must see the global batch."""
    check_features("z_a", z_a)
    check_features("z_b", z_b, dim=z_a.shape[1])
    if z_a.shape != z_b.shape:
        raise InputError(f"the two views have {z_a.shape[0]} and {z_b.shape[0]} rows; pass the same samples twice")
    a, b = (z if z.dtype == torch.float64 else z.float() for z in (z_a, z_b))
    if is_distributed() if gather is None else gather:
        a, b = gather_with_grad(a), gather_with_grad(b)  # (W*n, D): the global batch
    if a.shape[0] < 2:
        raise InputError(f"{method} needs at least 2 samples per batch (it takes statistics along the batch)")
    return a, b
