"""SwAV: Sinkhorn–Knopp equipartition, swapped prediction vs NumPy, prototypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clipgeo.errors import InputError
from clipgeo.train.objectives import SwAVLoss, sinkhorn_knopp, swapped_prediction_loss


def unit_np(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def sinkhorn_reference(scores, eps, n_iters):
    """Sinkhorn–Knopp as in the SwAV paper, in float64 loops over rows and columns."""
    batch, k = scores.shape
    q = np.exp(scores / eps).T  # (K, B)
    q = q / q.sum()
    for _ in range(n_iters):
        for r in range(k):
            q[r] = q[r] / q[r].sum() / k
        for c in range(batch):
            q[:, c] = q[:, c] / q[:, c].sum() / batch
    return (q * batch).T


def log_softmax_np(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("seed", [0, 1])
def test_sinkhorn_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    scores = np.tanh(rng.normal(size=(12, 5)))  # cosines-like, in (-1, 1)
    got = sinkhorn_knopp(torch.tensor(scores, dtype=torch.float32), epsilon=0.1, n_iters=3).double().numpy()
    np.testing.assert_allclose(got, sinkhorn_reference(scores, 0.1, 3), rtol=1e-5, atol=1e-7)


def test_sinkhorn_equipartition_is_balanced():
    """All samples prefer prototype 0, yet the codes spread the batch evenly over the prototypes."""
    rng = np.random.default_rng(0)
    batch, k = 64, 8
    scores = rng.uniform(-0.2, 0.2, size=(batch, k))
    scores[:, 0] += 0.5
    q = sinkhorn_knopp(torch.tensor(scores), epsilon=0.05, n_iters=200).double().numpy()
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-6)  # one unit of mass per sample
    np.testing.assert_allclose(q.sum(axis=0), batch / k, rtol=1e-3)  # equal share per prototype
    # the paper's 3 iterations: far more balanced than the plain softmax, whose prototype 0 takes almost all
    softmax = np.exp(log_softmax_np(scores / 0.05))
    q3 = sinkhorn_knopp(torch.tensor(scores), epsilon=0.05, n_iters=3).double().numpy()
    assert softmax.sum(axis=0)[0] > 0.9 * batch
    assert np.abs(q3.sum(axis=0) - batch / k).max() < 0.05 * batch / k
    # hard assignments (argmax of the codes) use every prototype
    assert len(np.unique(q.argmax(axis=1))) == k


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (7, 4), elements=st.floats(-1, 1)), st.integers(1, 5))
def test_sinkhorn_codes_are_distributions(scores, n_iters):
    q = sinkhorn_knopp(torch.tensor(scores), epsilon=0.05, n_iters=n_iters).double().numpy()
    assert np.all(q >= 0) and np.isfinite(q).all()
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)


def test_sinkhorn_is_permutation_equivariant():
    rng = np.random.default_rng(2)
    scores = torch.tensor(rng.normal(size=(10, 4)))
    perm = torch.tensor(rng.permutation(10))
    torch.testing.assert_close(sinkhorn_knopp(scores[perm]), sinkhorn_knopp(scores)[perm])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_swav_loss_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    dim, k, tau, eps = 6, 5, 0.1, 0.05
    obj = SwAVLoss(dim, n_prototypes=k, temperature=tau, epsilon=eps, sinkhorn_iters=3, seed=seed)
    c = obj.prototypes.detach().double().numpy().copy()
    z1, z2 = rng.normal(size=(8, dim)), rng.normal(size=(8, dim))
    loss = obj(torch.tensor(z1, dtype=torch.float32), torch.tensor(z2, dtype=torch.float32))
    s1, s2 = unit_np(z1) @ unit_np(c).T, unit_np(z2) @ unit_np(c).T
    q1, q2 = sinkhorn_reference(s1, eps, 3), sinkhorn_reference(s2, eps, 3)
    ref = -0.5 * np.mean((q1 * log_softmax_np(s2 / tau)).sum(1) + (q2 * log_softmax_np(s1 / tau)).sum(1))
    assert loss.item() == pytest.approx(ref, rel=1e-4)


def test_analytic_uniform_scores():
    """Equal scores everywhere: codes 1/K, prediction uniform, loss log K."""
    k = 6
    scores = torch.zeros(10, k)
    codes = sinkhorn_knopp(scores)
    torch.testing.assert_close(codes, torch.full((10, k), 1 / k))
    assert float(swapped_prediction_loss(scores, scores, codes, codes, 0.1)) == pytest.approx(math.log(k), rel=1e-6)


def test_prototypes_normalised_and_trained_codes_not_differentiated():
    torch.manual_seed(0)
    obj = SwAVLoss(4, n_prototypes=3)
    with torch.no_grad():
        obj.prototypes.mul_(3.0)
    z1 = torch.randn(6, 4, requires_grad=True)
    loss = obj(z1, torch.randn(6, 4))
    torch.testing.assert_close(obj.prototypes.norm(dim=1), torch.ones(3))
    loss.backward()
    assert obj.prototypes.grad is not None and obj.prototypes.grad.abs().sum() > 0
    assert z1.grad is not None and z1.grad.abs().sum() > 0
    assert not sinkhorn_knopp(torch.randn(3, 2, requires_grad=True)).requires_grad


def test_swav_trains_a_tiny_encoder():
    """Three well-separated groups, two noisy views: the loss falls."""
    torch.manual_seed(0)
    centres = torch.randn(3, 10) * 3
    group = torch.arange(48) % 3
    encoder = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    obj = SwAVLoss(8, n_prototypes=6, temperature=0.1)
    opt = torch.optim.Adam([*encoder.parameters(), *obj.parameters()], lr=1e-2)
    losses = []
    for _ in range(60):
        x = centres[group] + 0.5 * torch.randn(48, 10)
        loss = obj(encoder(x + 0.1 * torch.randn_like(x)), encoder(x + 0.1 * torch.randn_like(x)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"n_prototypes": 1}, "n_prototypes"), ({"epsilon": 0}, "epsilon"), ({"sinkhorn_iters": 0}, "sinkhorn_iters")],
)
def test_bad_hyper_parameters(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        SwAVLoss(4, **kwargs)


def test_mismatched_views():
    with pytest.raises(InputError, match="views"):
        SwAVLoss(4, n_prototypes=3)(torch.randn(5, 4), torch.randn(4, 4))
