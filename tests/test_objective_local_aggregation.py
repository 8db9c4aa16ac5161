"""Local aggregation: background / close neighbour sets, loss vs NumPy, re-clustering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipgeo.errors import InputError
from clipgeo.train.objectives import LocalAggregationLoss, close_mask, local_aggregation_loss


def unit_np(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def la_reference(v, bank, idx, labels, k, tau) -> float:
    """Slow LA loss: background = own row + the k−1 nearest other rows; close = same cluster in any clustering."""
    total = 0.0
    for b in range(len(v)):
        sims = bank @ v[b]
        others = [j for j in np.argsort(-sims, kind="stable") if j != idx[b]][: k - 1]
        background = [idx[b], *others]
        close = [j for j in background if any(labels[h, j] == labels[h, idx[b]] for h in range(len(labels)))]
        p_background = sum(math.exp(sims[j] / tau) for j in background)
        p_close = sum(math.exp(sims[j] / tau) for j in close)
        total += -math.log(p_close / p_background)
    return total / len(v)


def test_close_mask_matches_loop():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(2, 15))
    anchors = np.array([0, 4, 9])
    neighbours = rng.integers(0, 15, size=(3, 5))
    got = close_mask(torch.tensor(labels), torch.tensor(anchors), torch.tensor(neighbours)).numpy()
    for b in range(3):
        for j in range(5):
            n = neighbours[b, j]
            assert got[b, j] == any(labels[h, n] == labels[h, anchors[b]] for h in range(2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    n_data, dim, k, tau = 40, 6, 8, 0.3
    obj = LocalAggregationLoss(n_data, dim, n_background=k, n_clusters=4, n_clusterings=2, temperature=tau, seed=seed)
    obj.labels.copy_(torch.tensor(rng.integers(0, 4, size=(2, n_data))))
    features = rng.normal(size=(5, dim))
    idx = rng.choice(n_data, size=5, replace=False)
    bank = obj.bank.vectors.double().numpy().copy()
    loss = obj(torch.tensor(features, dtype=torch.float32), torch.tensor(idx), update=False)
    ref = la_reference(unit_np(features), bank, idx, obj.labels.numpy(), k, tau)
    assert float(loss) == pytest.approx(ref, rel=1e-4)


def test_background_is_own_row_plus_nearest():
    obj = LocalAggregationLoss(10, 2, n_background=3, n_clusters=2)
    angles = np.linspace(0, np.pi, 10)  # bank rows spread over a half circle
    obj.bank.vectors.copy_(torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1), dtype=torch.float32))
    anchor = torch.tensor([[1.0, 0.0]])  # nearest rows: 0, 1, 2
    got = obj.background(anchor, torch.tensor([7])).numpy()[0]
    assert got[0] == 7  # own row always in, first
    assert set(got[1:]) == {0, 1}


def test_analytic_cases():
    logits = torch.randn(4, 6)
    # every background neighbour close: P(C ∩ B) = P(B), loss 0
    assert float(local_aggregation_loss(logits, torch.ones(4, 6, dtype=torch.bool))) == pytest.approx(0.0, abs=1e-6)
    # only the anchor itself close and all similarities equal: loss = log k
    close = torch.zeros(4, 6, dtype=torch.bool)
    close[:, 0] = True
    assert float(local_aggregation_loss(torch.zeros(4, 6), close)) == pytest.approx(math.log(6), rel=1e-6)
    with pytest.raises(InputError, match="no close neighbour"):
        local_aggregation_loss(logits, torch.zeros(4, 6, dtype=torch.bool))


def test_before_first_clustering_each_sample_is_its_own_cluster():
    obj = LocalAggregationLoss(20, 4, n_background=5, n_clusters=3, n_clusterings=2)
    assert torch.equal(obj.labels, torch.arange(20).repeat(2, 1))
    mask = close_mask(obj.labels, torch.tensor([3, 4]), obj.background(torch.randn(2, 4), torch.tensor([3, 4])))
    assert mask[:, 0].all() and not mask[:, 1:].any()


def test_reclustering_after_one_pass_recovers_planted_clusters():
    rng = np.random.default_rng(0)
    n_per, n_clusters, dim = 10, 3, 5
    centres = np.eye(dim)[:n_clusters] * 10
    truth = np.repeat(np.arange(n_clusters), n_per)
    points = unit_np(centres[truth] + rng.normal(size=(n_per * n_clusters, dim)))
    n_data = len(points)
    obj = LocalAggregationLoss(n_data, dim, n_background=6, n_clusters=n_clusters, n_clusterings=2, momentum=0.0)
    order = rng.permutation(n_data)
    for start in range(0, n_data - 6, 6):  # 24 of the 30 samples: no clustering yet
        batch = order[start : start + 6]
        obj(torch.tensor(points[batch], dtype=torch.float32), torch.tensor(batch))
    assert int(obj.n_reclusterings) == 0
    batch = order[24:]
    obj(torch.tensor(points[batch], dtype=torch.float32), torch.tensor(batch))  # pass complete -> k-means
    assert int(obj.n_reclusterings) == 1 and int(obj.seen) == 0
    np.testing.assert_allclose(obj.bank.vectors.numpy(), points, atol=1e-6)  # momentum 0: bank = features
    for labels in obj.labels.numpy():
        # same partition as the planted one, up to renaming the clusters
        assert len(set(zip(labels, truth, strict=True))) == n_clusters
    # now the close neighbours of a sample are exactly its planted cluster among the background
    idx = torch.tensor([0, 15])
    neighbours = obj.background(torch.tensor(points[[0, 15]], dtype=torch.float32), idx)
    mask = close_mask(obj.labels, idx, neighbours).numpy()
    np.testing.assert_array_equal(mask, truth[neighbours.numpy()] == truth[[0, 15]][:, None])


def test_gradient_and_training_step():
    torch.manual_seed(0)
    encoder = torch.nn.Linear(8, 4)
    obj = LocalAggregationLoss(32, 4, n_background=8, n_clusters=4, n_clusterings=2, temperature=0.1)
    data = torch.randn(32, 8)
    opt = torch.optim.SGD(encoder.parameters(), lr=0.1)
    before = obj.bank.vectors.clone()
    losses = []
    for _epoch in range(3):
        for start in range(0, 32, 8):
            idx = torch.arange(start, start + 8)
            loss = obj(encoder(data[idx]), idx)
            opt.zero_grad()
            loss.backward()
            assert encoder.weight.grad.abs().sum() > 0
            opt.step()
            losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert int(obj.n_reclusterings) == 3
    assert not torch.equal(obj.bank.vectors, before)
    assert obj.labels.max() < 4


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"n_background": 50}, "n_background"),
        ({"n_clusters": 40}, "n_clusters"),
        ({"n_clusterings": 0}, "n_clusterings"),
        ({"temperature": float("nan")}, "temperature"),
    ],
)
def test_bad_hyper_parameters(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        LocalAggregationLoss(40, 4, **{"n_background": 8, "n_clusters": 4, **kwargs})
