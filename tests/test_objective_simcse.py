"""SimCSE: in-batch InfoNCE vs NumPy, dropout in the open_clip text tower, a training step."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from clipgeo.errors import InputError
from clipgeo.train.objectives import SimCSE, add_dropout, simcse_loss


def unit_np(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def simcse_reference(h, h_pos, tau) -> float:
    a, b = unit_np(h), unit_np(h_pos)
    total = 0.0
    for i in range(len(a)):
        logits = np.array([a[i] @ b[j] for j in range(len(b))]) / tau
        total += -(logits[i] - np.log(np.exp(logits).sum()))
    return total / len(a)


class TextTower(nn.Module):
    """The text half of a tiny open_clip CLIP (the image tower dropped)."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        from clipgeo.models import load_model

        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = load_model("tiny")
        loaded.model.visual = nn.Identity()
        self.clip = loaded.model
        self.tokenizer = loaded.tokenizer

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)


@pytest.fixture(scope="module")
def captions():
    from clipgeo.data.shapes import CaptionedShapes

    return CaptionedShapes(16, seed=0).captions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    h, h_pos = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    loss = simcse_loss(torch.tensor(h), torch.tensor(h_pos), temperature=0.05)
    assert loss.item() == pytest.approx(simcse_reference(h, h_pos, 0.05), rel=1e-5)


def test_analytic_identical_passes_orthogonal_sentences():
    """h = h⁺ and different sentences orthogonal: L = log(1 + (B − 1) exp(−1/τ))."""
    h = torch.eye(5, dtype=torch.float64)[:4] * 3.0
    expected = math.log(1 + 3 * math.exp(-1 / 0.5))
    assert simcse_loss(h, h.clone(), temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_dropout_makes_two_passes_differ_only_in_training(captions):
    tower = TextTower()
    tokens = tower.tokenizer(captions[:4])
    tower.eval()
    clean = tower(tokens).detach()
    handles = add_dropout(tower, 0.1)
    assert len(handles) == 2 * len(tower.clip.transformer.resblocks) + 1  # two sub-layers per block + embeddings
    tower.train()
    a, b = tower(tokens), tower(tokens)
    assert not torch.allclose(a, b)
    cos = nn.functional.cosine_similarity(a, b).detach()
    assert (cos > 0.5).all()  # the same sentence, slightly perturbed
    tower.eval()
    torch.testing.assert_close(tower(tokens).detach(), clean)
    for handle in handles:
        handle.remove()
    tower.train()
    torch.testing.assert_close(tower(tokens).detach(), clean)


def test_add_dropout_needs_transformer_blocks():
    with pytest.raises(InputError, match="transformer blocks"):
        add_dropout(nn.Linear(3, 3), 0.1)
    with pytest.raises(InputError, match="dropout"):
        SimCSE(TextTower(), dropout=0.0)


def test_dropout_on_a_whole_clip_model_leaves_the_image_tower_alone():
    from clipgeo.models import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip = load_model("tiny").model
    handles = add_dropout(clip, 0.1)
    assert len(handles) == 2 * len(clip.transformer.resblocks) + 1
    clip.train()
    images = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(clip.encode_image(images), clip.encode_image(images))  # no dropout there
    handles.remove()


def test_two_passes_keep_dropout_on_in_eval_mode(captions):
    tower = TextTower()
    objective = SimCSE(tower, dropout=0.1)
    tokens = tower.tokenizer(captions[:4])
    objective.eval()
    a, b = objective.two_passes(tokens)
    assert not torch.allclose(a, b)
    # and only there: a plain eval pass is deterministic, and the loss of identical passes is the analytic one
    torch.testing.assert_close(tower(tokens), tower(tokens))
    h = tower(tokens).detach()
    assert objective(tokens).item() == pytest.approx(simcse_reference(h.numpy(), h.numpy(), 0.05), rel=1e-4)


def test_simcse_training_steps_lower_the_loss(captions):
    torch.manual_seed(0)
    tower = TextTower(seed=1)
    tokens = tower.tokenizer(captions)
    objective = SimCSE(tower, temperature=0.05, dropout=0.1)
    objective.train()
    opt = torch.optim.Adam(objective.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = objective(tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    # the positive pair really is two different passes
    with torch.no_grad():
        assert not torch.allclose(tower(tokens), tower(tokens))
