"""Learning-rate schedule: linear warm-up, then cosine decay (as in CLIP training).

``WarmupCosine`` is the multiplier of the base learning rate at each optimizer
step, used through ``torch.optim.lr_scheduler.LambdaLR`` so that its position
is saved with the scheduler's state dict:

    step < W:       (step + 1) / W
    W ≤ step < T:   r + (1 − r) · ½ (1 + cos(π (step − W) / (T − W)))
    step ≥ T:       r

with W warm-up steps, T total steps and r = ``min_ratio`` (final lr / base lr).
"""

from __future__ import annotations

import math

import torch

from ..errors import InputError

__all__ = ["WarmupCosine", "warmup_cosine_scheduler"]


class WarmupCosine:
    """Multiplier of the base learning rate at a 0-based optimizer step (a picklable callable)."""

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> None:
        if total_steps < 1:
            raise InputError(f"the schedule needs at least 1 step, got total_steps={total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise InputError(f"warm-up steps must be between 0 and the total {total_steps}, got {warmup_steps}")
        if not 0.0 <= min_ratio <= 1.0:
            raise InputError(f"min_ratio must be in [0, 1], got {min_ratio}")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = self.total_steps - self.warmup_steps
        if step >= self.total_steps or decay_steps == 0:
            return self.min_ratio
        progress = (step - self.warmup_steps) / decay_steps
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :class:`WarmupCosine`; call ``.step()`` after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps, min_ratio))
