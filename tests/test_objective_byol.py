"""BYOL: loss vs NumPy, analytic values, EMA target update, no gradient to the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from clipgeo.errors import InputError
from clipgeo.train.objectives import BYOL, byol_loss


def unit_np(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def byol_reference(p, z) -> float:
    return float(np.mean([np.sum((a - b) ** 2) for a, b in zip(unit_np(p), unit_np(z), strict=True)]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    p, z = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    assert byol_loss(torch.tensor(p), torch.tensor(z)).item() == pytest.approx(byol_reference(p, z), rel=1e-5)


def test_analytic_values():
    z = torch.randn(4, 3)
    assert byol_loss(2 * z, z).item() == pytest.approx(0.0, abs=1e-6)  # same direction
    assert byol_loss(-z, z).item() == pytest.approx(4.0, rel=1e-6)  # opposite
    orthogonal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert byol_loss(orthogonal, orthogonal.flip(1)).item() == pytest.approx(2.0, rel=1e-6)


def make_byol(momentum=0.9):
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 5))
    return BYOL(encoder, 5, projection_dim=4, hidden_dim=12, momentum=momentum)


def test_target_gets_no_gradient_and_online_does():
    byol = make_byol()
    byol.train()
    loss = byol(torch.randn(8, 6), torch.randn(8, 6))
    loss.backward()
    target = [*byol.target_encoder.parameters(), *byol.target_projector.parameters()]
    assert all(not p.requires_grad and p.grad is None for p in target)
    online = [*byol.encoder.parameters(), *byol.projector.parameters(), *byol.predictor.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in online)
    # an optimizer over the objective's trainable parameters never sees the target
    trainable = {id(p) for p in byol.parameters() if p.requires_grad}
    assert not trainable & {id(p) for p in target}


def test_ema_update_of_the_target():
    byol = make_byol(momentum=0.8)
    byol.train()
    opt = torch.optim.SGD([p for p in byol.parameters() if p.requires_grad], lr=0.5)
    x1, x2 = torch.randn(8, 6), torch.randn(8, 6)
    # at the start the target is a copy of the online network
    for t, o in zip(byol.target_encoder.parameters(), byol.encoder.parameters(), strict=True):
        assert torch.equal(t, o)
    loss = byol(x1, x2)
    opt.zero_grad()
    loss.backward()
    opt.step()
    before = [p.detach().clone() for p in [*byol.target_encoder.parameters(), *byol.target_projector.parameters()]]
    online = [*byol.encoder.parameters(), *byol.projector.parameters()]
    byol(x1, x2)  # next forward: ξ ← m ξ + (1 − m) θ first
    after = [*byol.target_encoder.parameters(), *byol.target_projector.parameters()]
    for a, b, o in zip(after, before, online, strict=True):
        torch.testing.assert_close(a, 0.8 * b + 0.2 * o.detach())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    # eval mode: target untouched
    byol.eval()
    frozen = [p.clone() for p in after]
    byol(x1, x2)
    for a, b in zip(after, frozen, strict=True):
        assert torch.equal(a, b)


def test_forward_matches_a_manual_computation():
    byol = make_byol()
    byol.eval()  # no EMA step, BatchNorm uses running statistics
    x1, x2 = torch.randn(5, 6), torch.randn(5, 6)
    with torch.no_grad():
        p1 = byol.predictor(byol.projector(byol.encoder(x1)))
        p2 = byol.predictor(byol.projector(byol.encoder(x2)))
        z1 = byol.target_projector(byol.target_encoder(x1))
        z2 = byol.target_projector(byol.target_encoder(x2))
        expected = byol_reference(p1.numpy(), z2.numpy()) + byol_reference(p2.numpy(), z1.numpy())
        assert byol(x1, x2).item() == pytest.approx(expected, rel=1e-5)


def test_byol_trains_a_tiny_encoder():
    """Noisy views of fixed points: the online network learns to predict the target."""
    byol = make_byol(momentum=0.9)
    byol.train()
    points = torch.randn(64, 6)
    opt = torch.optim.Adam([p for p in byol.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(50):
        x = points[torch.randperm(64)[:32]]
        loss = byol(x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_bad_arguments():
    with pytest.raises(InputError, match="momentum"):
        BYOL(nn.Linear(2, 2), 2, momentum=1.5)
    with pytest.raises(InputError, match="projection_dim"):
        BYOL(nn.Linear(2, 2), 2, projection_dim=0)
    with pytest.raises(InputError, match="views"):
        make_byol()(torch.randn(3, 6), torch.randn(4, 6))
