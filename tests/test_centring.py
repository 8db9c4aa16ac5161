"""Centred initialisation: each tower's raw outputs have mean 0 on the samples it was centred on."""

from __future__ import annotations

import warnings

import pytest
import torch

from clipgeo.train.centring import centre_towers


@pytest.fixture(scope="module")
def tiny():
    from clipgeo.models import load_model

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("tiny", "none", device="cpu")


def test_centred_towers_have_zero_mean_output(tiny):
    model = tiny.model
    g = torch.Generator().manual_seed(1)
    images = torch.randn(24, 3, 32, 32, generator=g)
    texts = tiny.tokenizer([f"a small red shape number {i}" for i in range(24)])
    with torch.no_grad():
        img_before = model.encode_image(images).double()
        other = model.encode_text(tiny.tokenizer(["a large blue cross"] * 2)).double()
    report = centre_towers(model, images, texts)
    with torch.no_grad():
        img_after = model.encode_image(images).double()
        txt_after = model.encode_text(texts).double()
    # the random-init cone: the mean output is far from 0 before; ~0 after (float32 round-off of the outputs)
    assert report["image_mean_norm_before"] > 1.0 and report["text_mean_norm_before"] > 1.0
    tol = 64 * torch.finfo(torch.float32).eps * float(img_before.abs().max()) * 10
    assert float(img_after.mean(0).norm()) < tol
    assert float(txt_after.mean(0).norm()) < 64 * torch.finfo(torch.float32).eps * float(txt_after.abs().max()) * 10
    assert report["image_mean_norm_after"] == pytest.approx(float(img_after.mean(0).norm()), abs=tol)
    # every output moved by the same vector: differences between rows are unchanged
    torch.testing.assert_close(img_after - img_after[0], img_before - img_before[0], rtol=0, atol=tol)
    with torch.no_grad():
        moved = model.encode_text(tiny.tokenizer(["a large blue cross"] * 2)).double()
    assert not torch.allclose(moved, other)  # the text tower changed for other captions too


def test_a_tower_without_layernorm_bias_is_refused():
    from torch import nn

    from clipgeo.errors import InputError

    class NoViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = nn.Linear(3, 2)

        def encode_image(self, x, normalize=False):
            return self.visual(x)

    with pytest.raises(InputError, match="ViT image tower"):
        centre_towers(NoViT(), images=torch.randn(4, 3))
