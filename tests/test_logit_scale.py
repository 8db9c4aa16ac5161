"""The logit scale is clamped on the parameter after the optimizer step, never inside the loss (SPEC §11).

In float32 exp(log 100) = 100.0000076 > 100, so a clamp inside the loss zeroes the scale's gradient
for ever once it reaches 100 (from step 0 for OpenAI weights).  Value and gradients must equal
open_clip's ``ClipLoss`` (which takes the scale as given) at, below and above the bound, and training
that wants a smaller scale must be able to leave 100.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from clipgeo.train.objectives.clip import ClipLoss

open_clip_loss = pytest.importorskip("open_clip.loss")

LOG100 = torch.tensor(math.log(100.0), dtype=torch.float32)


def features(seed: int = 0, n: int = 8, d: int = 6, noise: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n, d, generator=g)
    txt = img + noise * torch.randn(n, d, generator=g)  # weakly aligned: the best scale is small
    return img, txt


def test_float32_log_100_overshoots_100():
    assert float(LOG100.exp()) > 100.0  # the root of the defect


@pytest.mark.parametrize("t", [math.log(50.0), float(LOG100), math.log(150.0)], ids=["below", "at", "above"])
def test_value_and_gradients_equal_open_clip(t):
    img, txt = features()
    ours_t = torch.tensor(t, dtype=torch.float32, requires_grad=True)
    ref_t = torch.tensor(t, dtype=torch.float32, requires_grad=True)
    ours_img, ref_img = img.clone().requires_grad_(), img.clone().requires_grad_()
    ours = ClipLoss(normalize=True, gather=False)(ours_img, txt, logit_scale=ours_t.exp())
    ref = open_clip_loss.ClipLoss()(F.normalize(ref_img, dim=-1), F.normalize(txt, dim=-1), ref_t.exp())
    ours.backward()
    ref.backward()
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    assert ref_t.grad.abs().item() > 0.1  # the reference does move the scale here
    atol = 64 * torch.finfo(torch.float32).eps * float(ref_t.grad.abs())
    torch.testing.assert_close(ours_t.grad, ref_t.grad, rtol=1e-5, atol=atol)
    atol = 64 * torch.finfo(torch.float32).eps * float(ref_img.grad.abs().max())
    torch.testing.assert_close(ours_img.grad, ref_img.grad, rtol=1e-5, atol=atol)


def train_scale(loss_fn, steps: int = 50, lr: float = 0.01) -> float:
    """AdamW on the scale alone from t = log 100, clamped to [0, log 100] after each step; the final exp(t)."""
    img, txt = features(1, n=16)
    t = torch.nn.Parameter(LOG100.clone())
    opt = torch.optim.AdamW([t], lr=lr, weight_decay=0.0)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(img, txt, t).backward()
        opt.step()
        with torch.no_grad():
            t.clamp_(0.0, math.log(100.0))
    return float(t.detach().exp())


def test_fifty_adamw_steps_leave_100_as_open_clip_does():
    def reference(img, txt, t):
        return open_clip_loss.ClipLoss()(F.normalize(img, dim=-1), F.normalize(txt, dim=-1), t.exp())

    def ours(img, txt, t):
        return ClipLoss(gather=False)(img, txt, logit_scale=t.exp())

    expected = train_scale(reference)
    assert expected < 80  # the data wants a smaller scale
    assert train_scale(ours) == pytest.approx(expected, rel=1e-4)


def test_the_objective_moves_the_model_scale_at_100_and_clamps_it_after_the_step():
    from clipgeo.train.runs import build_objective

    torch.manual_seed(0)
    objective = build_objective(None, model="tiny", objective="clip")
    objective.train()
    with torch.no_grad():
        objective.model.logit_scale.copy_(LOG100)  # OpenAI weights start here
    g = torch.Generator().manual_seed(2)
    batch = {"image": torch.randn(6, 3, 32, 32, generator=g), "text": torch.randint(1, 400, (6, 32), generator=g)}
    objective.training_step(batch)["loss"].backward()
    assert objective.model.logit_scale.grad is not None and objective.model.logit_scale.grad.abs().item() > 0
    with torch.no_grad():
        objective.model.logit_scale.fill_(5.0)  # as if a step overshot
        objective.on_after_step()
    assert objective.model.logit_scale.item() == pytest.approx(math.log(100.0), rel=1e-7)
