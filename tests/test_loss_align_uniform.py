"""Alignment / uniformity against NumPy references and analytic values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clipgeo.errors import InputError
from clipgeo.train import AlignUniformLoss, alignment, uniformity


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def alignment_numpy(x, y, alpha=2.0):
    u, v = unit(np.asarray(x, np.float64)), unit(np.asarray(y, np.float64))
    return float(np.mean([np.linalg.norm(u[i] - v[i]) ** alpha for i in range(len(u))]))


def uniformity_numpy(x, t=2.0):
    u = unit(np.asarray(x, np.float64))
    values = [math.exp(-t * np.sum((u[i] - u[j]) ** 2)) for i in range(len(u)) for j in range(i + 1, len(u))]
    return math.log(np.mean(values))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_alignment_matches_numpy(seed, alpha):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(20, 7)), rng.normal(size=(20, 7))
    got = alignment(torch.tensor(x), torch.tensor(y), alpha=alpha).item()
    assert got == pytest.approx(alignment_numpy(x, y, alpha), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("t", [0.5, 2.0, 10.0])
def test_uniformity_matches_numpy(seed, t):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(25, 6)) + 1.0
    assert uniformity(torch.tensor(x), t=t).item() == pytest.approx(uniformity_numpy(x, t), rel=1e-5, abs=1e-6)


def test_analytic_values():
    x = torch.eye(4)
    assert alignment(x, x).item() == pytest.approx(0.0, abs=1e-7)
    assert alignment(x, -x).item() == pytest.approx(4.0)
    # orthonormal rows: every squared distance is 2
    assert uniformity(x).item() == pytest.approx(-4.0, rel=1e-6)
    # coinciding rows: every distance 0, and the gradient stays finite
    same = torch.ones(5, 3, requires_grad=True)
    value = uniformity(same)
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    value.backward()
    assert torch.isfinite(same.grad).all()
    # two antipodal rows reach the minimum -4t
    assert uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), t=2).item() == pytest.approx(-8.0)


def test_extreme_kernel_does_not_underflow():
    x = torch.eye(3)
    # exp(-2000 * 2) underflows to 0 in float32; log-mean-exp stays finite
    assert uniformity(x, t=2000.0).item() == pytest.approx(-4000.0, rel=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 10))
def test_invariances(seed, n):
    rng = np.random.default_rng(seed)
    x, y = torch.tensor(rng.normal(size=(n, 5))), torch.tensor(rng.normal(size=(n, 5)))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    q = torch.tensor(q)
    perm = torch.as_tensor(rng.permutation(n))
    assert alignment(y, x).item() == pytest.approx(alignment(x, y).item(), rel=1e-6, abs=1e-9)
    assert alignment(x @ q, y @ q).item() == pytest.approx(alignment(x, y).item(), rel=1e-5, abs=1e-7)
    assert uniformity(x[perm] @ q * 3.0).item() == pytest.approx(uniformity(x).item(), rel=1e-5, abs=1e-6)
    assert uniformity(x).item() <= 1e-6


def test_loss_combines_terms():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    expected = 0.5 * alignment_numpy(x, y) + 2.0 * 0.5 * (uniformity_numpy(x) + uniformity_numpy(y))
    got = AlignUniformLoss(align_weight=0.5, uniform_weight=2.0)(torch.tensor(x), torch.tensor(y)).item()
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_is_finite(dtype):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(16, 8, generator=g) * 400).to(dtype).requires_grad_()
    y = (torch.randn(16, 8, generator=g) * 400).to(dtype).requires_grad_()
    loss = AlignUniformLoss()(x, y)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_bad_inputs():
    with pytest.raises(InputError, match="same shape"):
        alignment(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(InputError, match="N >= 2"):
        uniformity(torch.ones(1, 3))
    with pytest.raises(InputError, match="alpha"):
        alignment(torch.ones(2, 2), torch.ones(2, 2), alpha=0)
