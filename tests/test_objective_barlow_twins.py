"""Barlow Twins: loss vs a NumPy reference, analytic values, gradients, and the objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipgeo.errors import InputError
from clipgeo.train.objectives.barlow_twins import EPS, BarlowTwinsLoss, barlow_twins_terms, cross_correlation


def barlow_reference(a: np.ndarray, b: np.ndarray, lam: float, eps: float = EPS) -> tuple[float, float, float]:
    """Loops over the feature pairs; biased batch variance, as the paper's BatchNorm."""
    n, d = a.shape
    za = (a - a.mean(0)) / np.sqrt(a.var(0) + eps)
    zb = (b - b.mean(0)) / np.sqrt(b.var(0) + eps)
    on = off = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(za[k, i] * zb[k, j] for k in range(n)) / n
            if i == j:
                on += (1 - c) ** 2
            else:
                off += c**2
    return on + lam * off, on, off


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(9, 5)) * rng.uniform(0.5, 3, size=5) + rng.normal(size=5)
    b = a + 0.7 * rng.normal(size=(9, 5))
    loss = BarlowTwinsLoss(offdiag_weight=0.02)
    value = loss(torch.tensor(a), torch.tensor(b)).item()  # float64 in, float64 arithmetic
    total, on, off = barlow_reference(a, b, 0.02)
    assert value == pytest.approx(total, rel=1e-10)
    assert loss.last_terms["on_diagonal"] == pytest.approx(on, rel=1e-10)
    assert loss.last_terms["off_diagonal"] == pytest.approx(off, rel=1e-10)
    value32 = BarlowTwinsLoss(offdiag_weight=0.02)(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert value32.dtype == torch.float32 and value32.item() == pytest.approx(total, rel=1e-4)


def test_identical_standardised_views_give_zero_on_diagonal_term():
    rng = np.random.default_rng(3)
    z = torch.tensor(rng.normal(size=(64, 6)) * 4 + 2)
    on, off = barlow_twins_terms(z, z.clone())
    # c_ii = var / (var + eps): 0 up to the standardisation's eps
    var = z.var(dim=0, unbiased=False)
    assert on.item() == pytest.approx(float(((eps_ratio := EPS / (var + EPS)) ** 2).sum()), rel=1e-6)
    assert on.item() < 1e-10 and eps_ratio.max() < 1e-5
    assert off.item() > 0  # random features are correlated a little in a finite batch


def test_identical_views_with_uncorrelated_features_give_zero_loss():
    # columns of a Hadamard matrix (without its constant column): zero mean, orthogonal, variance 1
    h = np.array([[1.0]])
    for _ in range(3):
        h = np.block([[h, h], [h, -h]])  # (8, 8)
    z = torch.tensor(h[:, 1:] * 3.0)  # (8, 7)
    c = cross_correlation(z, z)
    torch.testing.assert_close(c, torch.eye(7, dtype=torch.float64) * (9 / (9 + EPS)), rtol=0, atol=1e-12)
    assert BarlowTwinsLoss()(z, z).item() == pytest.approx(7 * (EPS / (9 + EPS)) ** 2, abs=1e-15)


def test_independent_views_give_about_d():
    """Independent views: c ≈ 0, so L ≈ D (the diagonal term) + λ·(small)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20000, 4, generator=g, dtype=torch.float64), torch.randn(20000, 4, generator=g, dtype=torch.float64)
    on, off = barlow_twins_terms(a, b)
    assert on.item() == pytest.approx(4.0, abs=0.1)
    assert off.item() < 12 * 5 / 20000  # E c_ij² = 1/N for each of the 12 pairs


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: BarlowTwinsLoss(offdiag_weight=0.3, gather=False)(x, y), (a, b))


def test_bad_input():
    with pytest.raises(InputError, match="offdiag_weight"):
        BarlowTwinsLoss(offdiag_weight=0)
    with pytest.raises(InputError, match="at least 2 samples"):
        BarlowTwinsLoss()(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(InputError, match="rows"):
        BarlowTwinsLoss()(torch.randn(4, 3), torch.randn(5, 3))


def test_objective_is_registered_and_trains_the_image_tower():
    from clipgeo.train.objective import get_objective
    from clipgeo.train.runs import build_objective

    assert get_objective("barlow-twins").name == "barlow-twins"
    torch.manual_seed(0)
    objective = build_objective(None, model="tiny", objective="barlow-twins")
    objective.train()
    g = torch.Generator().manual_seed(1)
    batch = {"view1": torch.randn(6, 3, 32, 32, generator=g), "view2": torch.randn(6, 3, 32, 32, generator=g)}
    out = objective.training_step(batch)
    with torch.no_grad():
        a = objective.model.encode_image(batch["view1"]).double()
        b = objective.model.encode_image(batch["view2"]).double()
    assert out["loss"].item() == pytest.approx(objective.loss(a, b).item(), rel=1e-4)  # the loss of the raw tower output
    assert "on_diagonal" in out
    out["loss"].backward()
    assert objective.model.visual.conv1.weight.grad.abs().sum() > 0
    assert objective.embed_pair(batch)[0].shape == (6, objective.dim)
