"""The SimCLR objective: NT-Xent of the image tower's two views, checked against NumPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from clipgeo.train.runs import build_objective


def ntxent_reference(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """2N anchors; the positive of view i is the other view of sample i; the anchor itself is excluded."""
    z = np.concatenate([a, b])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(a)
    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        logits = [float(z[i] @ z[k]) / tau for k in range(2 * n) if k != i]
        others = [k for k in range(2 * n) if k != i]
        total += -(logits[others.index(positive)] - math.log(sum(math.exp(x) for x in logits)))
    return total / (2 * n)


@pytest.fixture(scope="module")
def simclr():
    torch.manual_seed(0)
    return build_objective(None, model="tiny", objective="simclr")


def test_training_step_is_ntxent_of_the_two_views(simclr):
    torch.manual_seed(1)
    batch = {"view1": torch.randn(6, 3, 32, 32), "view2": torch.randn(6, 3, 32, 32)}
    simclr.train()
    loss = simclr.training_step(batch)["loss"]
    with torch.no_grad():
        a = simclr.model.encode_image(batch["view1"]).double().numpy()
        b = simclr.model.encode_image(batch["view2"]).double().numpy()
    assert loss.item() == pytest.approx(ntxent_reference(a, b, 0.5), rel=1e-4)
    loss.backward()
    assert simclr.model.visual.conv1.weight.grad.abs().sum() > 0


def test_embed_pair_is_the_raw_tower_output(simclr):
    simclr.eval()
    batch = {"view1": torch.randn(3, 3, 32, 32), "view2": torch.randn(3, 3, 32, 32)}
    with torch.no_grad():
        a, b = simclr.embed_pair(batch)
        torch.testing.assert_close(a, simclr.model.visual(batch["view1"]))
    assert not torch.allclose(a.norm(dim=1), torch.ones(3))  # not normalised


def test_constant_images_give_log_2n_minus_1(simclr):
    """Every embedding the same vector (constant images): L = log(2N − 1)."""
    simclr.eval()
    same = torch.zeros(4, 3, 32, 32)
    loss = simclr.training_step({"view1": same, "view2": same.clone()})["loss"]
    assert loss.item() == pytest.approx(math.log(7), rel=1e-5)
