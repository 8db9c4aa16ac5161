"""Instance discrimination with a memory bank (NCE / sampled softmax), PIRL configuration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipgeo.errors import InputError
from clipgeo.train.objectives import InstanceDiscriminationLoss, MemoryBank, nce_loss, sampled_softmax_loss


def unit_np(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def nce_reference(v, bank, idx, neg, tau, z) -> float:
    """Slow NCE loss: one anchor at a time, probabilities in plain float64."""
    n_data, k = len(bank), neg.shape[1]
    total = 0.0
    for b in range(len(v)):
        p_pos = math.exp(float(bank[idx[b]] @ v[b]) / tau) / z
        loss = -math.log(p_pos / (p_pos + k / n_data))
        for j in neg[b]:
            p = math.exp(float(bank[j] @ v[b]) / tau) / z
            loss -= math.log(1 - p / (p + k / n_data))
        total += loss
    return total / len(v)


def softmax_reference(v, bank, idx, neg, tau) -> float:
    total = 0.0
    for b in range(len(v)):
        logits = [float(bank[idx[b]] @ v[b]) / tau] + [float(bank[j] @ v[b]) / tau for j in neg[b]]
        m = max(logits)
        total += -(logits[0] - m - math.log(sum(math.exp(x - m) for x in logits)))
    return total / len(v)


def make_batch(rng, n_data=50, dim=8, batch=6, k=10):
    features = rng.normal(size=(batch, dim))
    idx = rng.choice(n_data, size=batch, replace=False)
    neg = rng.integers(0, n_data, size=(batch, k))
    return features, idx, neg


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nce_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    n_data, tau = 50, 0.2
    features, idx, neg = make_batch(rng, n_data=n_data)
    obj = InstanceDiscriminationLoss(n_data, 8, n_negatives=10, temperature=tau, loss="nce", seed=seed)
    bank = obj.bank.vectors.double().numpy().copy()
    loss = obj(torch.tensor(features, dtype=torch.float32), torch.tensor(idx), negatives=torch.tensor(neg), update=False)
    # Z is estimated once: N times the mean of exp(v̄_j · v / τ) over the batch's noise rows
    v = unit_np(features)
    z = n_data * np.mean([math.exp(float(bank[j] @ v[b]) / tau) for b in range(len(v)) for j in neg[b]])
    assert float(obj.log_z) == pytest.approx(math.log(z), rel=1e-6)
    assert float(loss) == pytest.approx(nce_reference(v, bank, idx, neg, tau, z), rel=1e-4)


def test_nce_normaliser_is_held_constant():
    rng = np.random.default_rng(3)
    features, idx, neg = make_batch(rng)
    obj = InstanceDiscriminationLoss(50, 8, n_negatives=10, temperature=0.1)
    obj(torch.tensor(features, dtype=torch.float32), torch.tensor(idx), negatives=torch.tensor(neg))
    first = float(obj.log_z)
    features2, idx2, neg2 = make_batch(rng)
    obj(torch.tensor(features2 * 5, dtype=torch.float32), torch.tensor(idx2), negatives=torch.tensor(neg2))
    assert float(obj.log_z) == first
    # and the loss of the second batch uses that Z
    bank = obj.bank.vectors.double().numpy()
    loss = obj(torch.tensor(features2, dtype=torch.float32), torch.tensor(idx2), negatives=torch.tensor(neg2), update=False)
    ref = nce_reference(unit_np(features2), bank, idx2, neg2, 0.1, math.exp(first))
    assert float(loss) == pytest.approx(ref, rel=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_softmax_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    features, idx, neg = make_batch(rng)
    obj = InstanceDiscriminationLoss(50, 8, n_negatives=10, temperature=0.07, loss="softmax", seed=seed)
    bank = obj.bank.vectors.double().numpy().copy()
    loss = obj(torch.tensor(features, dtype=torch.float32), torch.tensor(idx), negatives=torch.tensor(neg))
    assert float(loss) == pytest.approx(softmax_reference(unit_np(features), bank, idx, neg, 0.07), rel=1e-4)


def test_analytic_all_similarities_equal():
    """Bank and anchors all the same vector: P(i|v) = 1/N for every row, h = 1/(K+1)."""
    k, n_data = 7, 40
    logits_pos = torch.full((5,), 3.0)
    logits_neg = torch.full((5, k), 3.0)
    log_z = 3.0 + math.log(n_data)  # Z = N exp(3)
    expected = math.log(k + 1) + k * math.log((k + 1) / k)
    assert float(nce_loss(logits_pos, logits_neg, log_z, n_data)) == pytest.approx(expected, rel=1e-6)
    assert float(sampled_softmax_loss(logits_pos, logits_neg)) == pytest.approx(math.log(k + 1), rel=1e-6)
    # and through the module: every bank row equal to every anchor
    obj = InstanceDiscriminationLoss(n_data, 4, n_negatives=k, temperature=0.5)
    obj.bank.vectors[:] = torch.tensor([1.0, 0, 0, 0])
    loss = obj(torch.tensor([[2.0, 0, 0, 0]] * 5), torch.arange(5))
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_nce_loss_is_small_when_positive_dominates():
    # positive far more likely than noise, negatives far less: loss -> 0
    loss = nce_loss(torch.full((3,), 50.0), torch.full((3, 4), -50.0), log_z=0.0, n_data=100)
    assert float(loss) < 1e-6


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_bank_update_semantics(momentum):
    rng = np.random.default_rng(1)
    bank = MemoryBank(20, 5, momentum=momentum, seed=4)
    before = bank.vectors.double().numpy().copy()
    idx = np.array([3, 7, 11])
    new = rng.normal(size=(3, 5))
    bank.update(torch.tensor(idx), torch.tensor(new, dtype=torch.float32))
    after = bank.vectors.double().numpy()
    expected = unit_np(momentum * before[idx] + (1 - momentum) * unit_np(new))
    np.testing.assert_allclose(after[idx], expected, atol=1e-6)
    others = np.setdiff1d(np.arange(20), idx)
    np.testing.assert_array_equal(after[others], before[others])
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-6)
    if momentum == 0.0:
        np.testing.assert_allclose(after[idx], unit_np(new), atol=1e-6)


def test_forward_updates_only_batch_rows_and_returns_gradient():
    obj = InstanceDiscriminationLoss(30, 6, n_negatives=5, temperature=0.1, momentum=0.0)
    before = obj.bank.vectors.clone()
    x = torch.randn(4, 6, requires_grad=True)
    idx = torch.tensor([0, 5, 9, 29])
    loss = obj(x, idx)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    torch.testing.assert_close(obj.bank.vectors[idx], torch.nn.functional.normalize(x.detach(), dim=1))
    mask = torch.ones(30, dtype=torch.bool)
    mask[idx] = False
    assert torch.equal(obj.bank.vectors[mask], before[mask])


def test_pirl_mixes_the_two_anchors_and_updates_bank_from_the_untransformed_view():
    rng = np.random.default_rng(5)
    features, idx, neg = make_batch(rng)
    transformed = rng.normal(size=features.shape)
    lam = 0.3
    obj = InstanceDiscriminationLoss(50, 8, n_negatives=10, temperature=0.2, loss="softmax", momentum=0.0, pirl_weight=lam)
    bank = obj.bank.vectors.double().numpy().copy()
    loss = obj(
        torch.tensor(features, dtype=torch.float32),
        torch.tensor(idx),
        transformed=torch.tensor(transformed, dtype=torch.float32),
        negatives=torch.tensor(neg),
    )
    ref = lam * softmax_reference(unit_np(transformed), bank, idx, neg, 0.2) + (1 - lam) * softmax_reference(
        unit_np(features), bank, idx, neg, 0.2
    )
    assert float(loss) == pytest.approx(ref, rel=1e-4)
    np.testing.assert_allclose(obj.bank.vectors.double().numpy()[idx], unit_np(features), atol=1e-6)


def test_negatives_are_uniform_over_the_bank():
    torch.manual_seed(0)
    bank = MemoryBank(10, 3)
    draws = bank.sample(2000, 50).flatten().numpy()
    counts = np.bincount(draws, minlength=10)
    assert draws.min() == 0 and draws.max() == 9
    # 100,000 uniform draws: each count is 10,000 ± a few hundred
    assert np.all(np.abs(counts - 10_000) < 500), counts


def test_loss_is_invariant_to_batch_order():
    rng = np.random.default_rng(8)
    features, idx, neg = make_batch(rng)
    perm = rng.permutation(len(idx))
    obj = InstanceDiscriminationLoss(50, 8, n_negatives=10, temperature=0.2, loss="nce")
    obj.log_z.fill_(2.0)
    a = obj(torch.tensor(features, dtype=torch.float32), torch.tensor(idx), negatives=torch.tensor(neg), update=False)
    b = obj(
        torch.tensor(features[perm], dtype=torch.float32), torch.tensor(idx[perm]), negatives=torch.tensor(neg[perm]), update=False
    )
    assert float(a) == pytest.approx(float(b), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"n_negatives": 50}, "n_negatives"),
        ({"temperature": 0.0}, "temperature"),
        ({"momentum": 1.0}, "momentum"),
        ({"loss": "hinge"}, "unknown memory-bank loss"),
        ({"pirl_weight": 1.5}, "pirl_weight"),
    ],
)
def test_bad_hyper_parameters(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        InstanceDiscriminationLoss(50, 8, **{"n_negatives": 10, **kwargs})


def test_bad_indices():
    obj = InstanceDiscriminationLoss(20, 4, n_negatives=5)
    with pytest.raises(InputError, match="repeat"):
        obj(torch.randn(3, 4), torch.tensor([1, 1, 2]))
    with pytest.raises(InputError, match=r"\[0, 20\)"):
        obj(torch.randn(2, 4), torch.tensor([1, 20]))
    with pytest.raises(InputError, match="features"):
        obj(torch.randn(2, 5), torch.tensor([1, 2]))
