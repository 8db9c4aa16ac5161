"""VICReg: loss vs a NumPy reference, analytic values, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipgeo.errors import InputError
from clipgeo.train.objectives.vicreg import EPS, VICRegLoss, vicreg_terms


def vicreg_reference(a: np.ndarray, b: np.ndarray, lam=25.0, mu=25.0, nu=1.0, gamma=1.0) -> tuple[float, ...]:
    n, d = a.shape
    inv = float(np.mean((a - b) ** 2))

    def var_term(z):
        return float(np.mean([max(0.0, gamma - math.sqrt(np.var(z[:, k], ddof=1) + EPS)) for k in range(d)]))

    def cov_term(z):
        c = np.cov(z, rowvar=False, ddof=1)
        return sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d

    var = 0.5 * (var_term(a) + var_term(b))
    cov = cov_term(a) + cov_term(b)
    return lam * inv + mu * var + nu * cov, inv, var, cov


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    # some features below the target std of 1, some above: both branches of the hinge
    a = rng.normal(size=(10, 6)) * np.array([0.2, 0.5, 0.9, 1.5, 3.0, 0.05]) + rng.normal(size=6)
    b = a + 0.3 * rng.normal(size=(10, 6))
    loss = VICRegLoss(sim_weight=2.0, var_weight=3.0, cov_weight=0.5)
    value = loss(torch.tensor(a), torch.tensor(b)).item()
    total, inv, var, cov = vicreg_reference(a, b, 2.0, 3.0, 0.5)
    assert value == pytest.approx(total, rel=1e-10)
    assert loss.last_terms == pytest.approx({"invariance": inv, "variance": var, "covariance": cov}, rel=1e-10)
    value32 = VICRegLoss()(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert value32.item() == pytest.approx(vicreg_reference(a, b)[0], rel=1e-4)


def test_identical_views_have_zero_invariance():
    z = torch.randn(16, 5, dtype=torch.float64)
    inv, _, _ = vicreg_terms(z, z.clone())
    assert inv.item() == 0.0


def test_collapsed_batch_gives_mu_times_one_minus_sqrt_eps():
    z = torch.ones(8, 4, dtype=torch.float64) * 0.3  # every row the same: std 0, covariance 0
    inv, var, cov = vicreg_terms(z, z)
    assert (inv.item(), cov.item()) == (0.0, 0.0)
    assert var.item() == pytest.approx(1 - math.sqrt(EPS), rel=1e-12)
    assert VICRegLoss()(z, z).item() == pytest.approx(25 * 0.99, rel=1e-12)


def test_uncorrelated_features_with_large_std_give_zero_loss():
    h = np.array([[1.0]])
    for _ in range(3):
        h = np.block([[h, h], [h, -h]])  # (8, 8) Hadamard
    z = torch.tensor(h[:, 1:] * 2.0)  # zero-mean orthogonal columns, std 2·sqrt(8/7) > 1
    assert VICRegLoss()(z, z.clone()).item() == pytest.approx(0.0, abs=1e-12)


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True) * 0.5
    b = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True) * 0.5
    a, b = a.detach().requires_grad_(), b.detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: VICRegLoss(gather=False)(x, y), (a, b))


def test_bad_input():
    with pytest.raises(InputError, match="all 0"):
        VICRegLoss(sim_weight=0, var_weight=0, cov_weight=0)
    with pytest.raises(InputError, match="var_weight"):
        VICRegLoss(var_weight=-1)
    with pytest.raises(InputError, match="at least 2 samples"):
        VICRegLoss()(torch.randn(1, 3), torch.randn(1, 3))


def test_objective_is_registered_and_trains_the_image_tower():
    from clipgeo.train.objective import get_objective
    from clipgeo.train.runs import build_objective

    assert get_objective("vicreg").name == "vicreg"
    torch.manual_seed(0)
    objective = build_objective(None, model="tiny", objective="vicreg")
    objective.train()
    g = torch.Generator().manual_seed(1)
    batch = {"view1": torch.randn(6, 3, 32, 32, generator=g), "view2": torch.randn(6, 3, 32, 32, generator=g)}
    out = objective.training_step(batch)
    with torch.no_grad():
        a = objective.model.encode_image(batch["view1"]).double()
        b = objective.model.encode_image(batch["view2"]).double()
    assert out["loss"].item() == pytest.approx(objective.loss(a, b).item(), rel=1e-4)  # the loss of the raw tower output
    assert "invariance" in out
    out["loss"].backward()
    assert objective.model.visual.conv1.weight.grad.abs().sum() > 0
    assert objective.embed_pair(batch)[0].shape == (6, objective.dim)
