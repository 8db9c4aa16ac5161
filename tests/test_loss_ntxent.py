"""NTXentLoss against a slow NumPy reference, analytic values and low precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clipgeo.errors import InputError
from clipgeo.train import NTXentLoss


def ntxent_numpy(z_a: np.ndarray, z_b: np.ndarray, temperature: float) -> float:
    """NT-Xent written out anchor by anchor, float64."""
    z = np.concatenate([z_a, z_b]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_n = z.shape[0]
    n = two_n // 2
    total = 0.0
    for i in range(two_n):
        positive = i + n if i < n else i - n
        terms = []
        for k in range(two_n):
            if k != i:
                terms.append(float(np.dot(z[i], z[k])) / temperature)
        top = max(terms)
        log_denominator = top + math.log(sum(math.exp(t - top) for t in terms))
        total += -(float(np.dot(z[i], z[positive])) / temperature - log_denominator)
    return total / two_n


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.07, 0.5, 2.0])
@pytest.mark.parametrize("n,d", [(2, 3), (9, 16)])
def test_matches_numpy_reference(seed, temperature, n, d):
    rng = np.random.default_rng(seed)
    z_a = rng.normal(size=(n, d))
    z_b = z_a + rng.normal(size=(n, d))
    got = NTXentLoss(temperature)(torch.tensor(z_a, dtype=torch.float32), torch.tensor(z_b, dtype=torch.float32))
    assert got.item() == pytest.approx(ntxent_numpy(z_a, z_b, temperature), rel=1e-5, abs=1e-5)


def test_default_temperature_is_one_half():
    assert NTXentLoss().temperature == 0.5


@pytest.mark.parametrize("n", [2, 5, 16])
def test_all_equal_embeddings(n):
    x = torch.ones(n, 8)
    assert NTXentLoss(0.3)(x, 2 * x).item() == pytest.approx(math.log(2 * n - 1), abs=1e-5)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_perfect_views_of_orthogonal_samples(temperature):
    n = 5
    x = torch.eye(n)
    expected = math.log(1 + (2 * n - 2) * math.exp(-1 / temperature))
    assert NTXentLoss(temperature)(x, x).item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 10), d=st.integers(2, 8))
def test_invariances(seed, n, d):
    rng = np.random.default_rng(seed)
    z_a = torch.tensor(rng.normal(size=(n, d)))
    z_b = torch.tensor(rng.normal(size=(n, d)))
    loss = NTXentLoss(0.2)
    base = loss(z_a, z_b).item()
    assert loss(z_b, z_a).item() == pytest.approx(base, rel=1e-5, abs=1e-6)  # the views are interchangeable
    perm = torch.as_tensor(rng.permutation(n))
    assert loss(z_a[perm], z_b[perm]).item() == pytest.approx(base, rel=1e-5, abs=1e-6)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q = torch.tensor(q)
    assert loss(z_a @ q * 7.0, z_b @ q).item() == pytest.approx(base, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_and_low_temperature_are_finite(dtype):
    g = torch.Generator().manual_seed(0)
    z_a = torch.randn(32, 16, generator=g) * 500
    z_b = z_a + 100 * torch.randn(32, 16, generator=g)
    expected = NTXentLoss(0.01)(z_a, z_b).item()
    low_a, low_b = z_a.to(dtype).requires_grad_(), z_b.to(dtype).requires_grad_()
    got = NTXentLoss(0.01)(low_a, low_b)
    assert torch.isfinite(got)
    got.backward()
    assert torch.isfinite(low_a.grad).all() and torch.isfinite(low_b.grad).all()
    assert got.item() == pytest.approx(expected, rel=0.1, abs=0.1)


def test_tiny_temperature_with_wrong_positives_is_finite():
    x = torch.eye(3)
    loss = NTXentLoss(0.001)(x, x.roll(1, dims=0))
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(1000.0, rel=1e-3)


def test_bad_inputs():
    with pytest.raises(InputError, match="temperature"):
        NTXentLoss(0.0)
    with pytest.raises(InputError, match="temperature"):
        NTXentLoss(float("nan"))
    with pytest.raises(InputError, match="same shape"):
        NTXentLoss()(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(InputError, match="at least 2"):
        NTXentLoss()(torch.ones(1, 4), torch.ones(1, 4))
