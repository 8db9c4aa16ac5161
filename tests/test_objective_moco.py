"""MoCo: InfoNCE against a queue, FIFO queue semantics, EMA key encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from clipgeo.errors import InputError
from clipgeo.train.objectives import KeyQueue, MoCo, moco_loss
from clipgeo.train.objectives._common import ema_update


def unit_np(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def moco_reference(q, k, queue, tau) -> float:
    total = 0.0
    for i in range(len(q)):
        logits = np.array([q[i] @ k[i]] + [q[i] @ key for key in queue]) / tau
        total += -(logits[0] - np.log(np.sum(np.exp(logits))))
    return total / len(q)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_moco_loss_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    q, k, queue = unit_np(rng.normal(size=(5, 6))), unit_np(rng.normal(size=(5, 6))), unit_np(rng.normal(size=(12, 6)))
    loss = moco_loss(*(torch.tensor(a, dtype=torch.float64) for a in (q, k, queue)), temperature=0.2)
    assert float(loss) == pytest.approx(moco_reference(q, k, queue, 0.2), rel=1e-10)


def test_moco_loss_analytic_orthogonal_queue():
    """q = k and every queued key orthogonal to q: L = log(1 + K exp(−1/τ))."""
    tau, n_queue = 0.1, 9
    eye = torch.eye(12, dtype=torch.float64)
    q = eye[:2]
    queue = eye[2 : 2 + n_queue]
    assert float(moco_loss(q, q.clone(), queue, tau)) == pytest.approx(math.log(1 + n_queue * math.exp(-1 / tau)), rel=1e-9)


def test_queue_is_fifo():
    queue = KeyQueue(8, 4, seed=1)
    initial = queue.ordered().clone()
    batches = [torch.nn.functional.normalize(torch.randn(3, 4), dim=1) for _ in range(5)]
    queue.enqueue(batches[0])
    # one batch in: the 3 oldest random keys left, the batch is at the newest end
    torch.testing.assert_close(queue.ordered(), torch.cat([initial[3:], batches[0]]))
    assert int(queue.ptr) == 3
    for b in batches[1:]:
        queue.enqueue(b)
    # 15 keys went through an 8-slot queue: it holds the last 8, oldest first
    torch.testing.assert_close(queue.ordered(), torch.cat(batches)[-8:])
    assert int(queue.ptr) == 15 % 8


def test_queue_batch_larger_than_queue_keeps_newest():
    queue = KeyQueue(4, 2)
    keys = torch.randn(10, 2)
    queue.enqueue(keys)
    torch.testing.assert_close(queue.ordered(), keys[-4:])


def test_ema_update_formula():
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    ema_update(target, online, 0.9)
    for t, b, o in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o.detach())
    ema_update(target, online, 0.0)
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, o.detach())


def test_moco_step_semantics():
    torch.manual_seed(0)
    encoder = nn.Linear(6, 4)
    moco = MoCo(encoder, 4, queue_size=8, momentum=0.75, temperature=0.2)
    moco.train()
    assert all(not p.requires_grad for p in moco.key_encoder.parameters())
    opt = torch.optim.SGD(encoder.parameters(), lr=0.5)
    x_q, x_k = torch.randn(4, 6), torch.randn(4, 6)
    # step 1: key encoder equals the query encoder (copy); loss against the initial queue
    queue_before = moco.queue.keys.clone()
    with torch.no_grad():
        q = nn.functional.normalize(encoder(x_q), dim=1)
        k = nn.functional.normalize(encoder(x_k), dim=1)
    expected = moco_reference(q.double().numpy(), k.double().numpy(), queue_before.double().numpy(), 0.2)
    loss = moco(x_q, x_k)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    torch.testing.assert_close(moco.queue.ordered()[-4:], k)  # keys enqueued
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in moco.key_encoder.parameters())
    key_before = [p.detach().clone() for p in moco.key_encoder.parameters()]
    opt.step()
    # step 2: first θ_k ← m θ_k + (1 − m) θ_q with the new θ_q
    moco(x_q, x_k)
    for p_k, b, p_q in zip(moco.key_encoder.parameters(), key_before, encoder.parameters(), strict=True):
        torch.testing.assert_close(p_k, 0.75 * b + 0.25 * p_q.detach())
    assert int(moco.queue.ptr) == 0  # 8 keys in an 8-slot queue
    # eval: nothing moves
    moco.eval()
    state = {k: v.clone() for k, v in moco.state_dict().items()}
    moco(x_q, x_k)
    for name, value in moco.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_moco_trains_a_tiny_encoder():
    """Two noisy views of points from a pool of 256: the loss falls as the encoder learns them."""
    torch.manual_seed(0)
    points = torch.randn(256, 10)
    encoder = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 8))
    moco = MoCo(encoder, 8, queue_size=64, momentum=0.9, temperature=0.2)
    opt = torch.optim.Adam(encoder.parameters(), lr=1e-2)
    losses = []
    for _ in range(80):
        x = points[torch.randperm(256)[:32]]
        loss = moco(x + 0.3 * torch.randn_like(x), x + 0.3 * torch.randn_like(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:10])


def test_bad_arguments():
    with pytest.raises(InputError, match="momentum"):
        MoCo(nn.Linear(2, 2), 2, momentum=1.0)
    with pytest.raises(InputError, match="temperature"):
        MoCo(nn.Linear(2, 2), 2, temperature=-1)
    with pytest.raises(InputError, match="views"):
        MoCo(nn.Linear(2, 2), 2, queue_size=4)(torch.randn(3, 2), torch.randn(2, 2))
    with pytest.raises(InputError, match="features"):
        KeyQueue(4, 3).enqueue(torch.randn(2, 5))
