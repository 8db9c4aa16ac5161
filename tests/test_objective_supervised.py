"""Supervised softmax with one prototype per class."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipgeo.errors import InputError
from clipgeo.train.objectives import SupervisedSoftmax


def ce_reference(logits, labels) -> float:
    total = 0.0
    for row, y in zip(logits, labels, strict=True):
        m = row.max()
        total += -(row[y] - m - math.log(np.exp(row - m).sum()))
    return total / len(labels)


@pytest.mark.parametrize("cosine", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_loss_matches_numpy_reference(cosine, seed):
    rng = np.random.default_rng(seed)
    obj = SupervisedSoftmax(5, 4, cosine=cosine, temperature=0.2, seed=seed)
    with torch.no_grad():
        if obj.bias is not None:
            obj.bias.copy_(torch.tensor(rng.normal(size=4)))
    w = obj.prototypes.detach().double().numpy()
    z, y = rng.normal(size=(9, 5)), rng.integers(0, 4, size=9)
    if cosine:
        logits = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T / 0.2
    else:
        logits = z @ w.T + obj.bias.detach().double().numpy()
    loss = obj(torch.tensor(z, dtype=torch.float32), torch.tensor(y))
    assert loss.item() == pytest.approx(ce_reference(logits, y), rel=1e-5)


def test_analytic_zero_prototypes_give_log_classes():
    obj = SupervisedSoftmax(3, 7)
    with torch.no_grad():
        obj.prototypes.zero_()
    assert obj(torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 6])).item() == pytest.approx(math.log(7), rel=1e-6)


def test_learns_separable_classes():
    torch.manual_seed(0)
    centres = torch.randn(3, 4) * 4
    labels = torch.arange(60) % 3
    x = centres[labels] + torch.randn(60, 4)
    obj = SupervisedSoftmax(4, 3)
    opt = torch.optim.Adam(obj.parameters(), lr=0.1)
    first = obj(x, labels).item()
    for _ in range(100):
        loss = obj(x, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first
    assert (obj.logits(x).argmax(1) == labels).float().mean() > 0.95


def test_bad_labels():
    obj = SupervisedSoftmax(3, 4)
    with pytest.raises(InputError, match=r"\[0, 4\)"):
        obj(torch.randn(2, 3), torch.tensor([0, 4]))
    with pytest.raises(InputError, match="integer tensor"):
        obj(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(InputError, match="n_classes"):
        SupervisedSoftmax(3, 1)
