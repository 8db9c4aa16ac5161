"""ClipLoss against a slow NumPy reference, open_clip, analytic values and low precision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clipgeo.errors import InputError
from clipgeo.train import ClipLoss


def clip_loss_numpy(img: np.ndarray, txt: np.ndarray, scale: float, normalize: bool = True) -> float:
    """Symmetric InfoNCE written out with loops, float64."""
    img = np.asarray(img, dtype=np.float64)
    txt = np.asarray(txt, dtype=np.float64)
    if normalize:
        img = img / np.linalg.norm(img, axis=1, keepdims=True)
        txt = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    n = img.shape[0]
    logits = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            logits[i, j] = scale * float(np.dot(img[i], txt[j]))
    image_to_text = 0.0
    text_to_image = 0.0
    for i in range(n):
        row = logits[i]
        image_to_text += -(row[i] - (row.max() + math.log(np.exp(row - row.max()).sum())))
        col = logits[:, i]
        text_to_image += -(col[i] - (col.max() + math.log(np.exp(col - col.max()).sum())))
    return 0.5 * (image_to_text / n + text_to_image / n)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n,d", [(2, 3), (7, 16), (32, 64)])
def test_matches_numpy_reference(seed, n, d):
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n, d)) * rng.uniform(0.5, 5)
    txt = rng.normal(size=(n, d)) + 0.3 * img
    loss = ClipLoss()
    got = loss(torch.tensor(img, dtype=torch.float32), torch.tensor(txt, dtype=torch.float32)).item()
    assert got == pytest.approx(clip_loss_numpy(img, txt, 1 / 0.07), rel=1e-5, abs=1e-5)


def test_initial_and_clamped_scale():
    """The scale is exp(t) as it stands; clamp_() clamps the parameter (after the step), the loss never does."""
    loss = ClipLoss()
    assert loss.scale.item() == pytest.approx(1 / 0.07, rel=1e-6)
    assert loss.logit_scale.requires_grad
    with torch.no_grad():
        loss.logit_scale.fill_(math.log(1000.0))
    assert loss.scale.item() == pytest.approx(1000.0, rel=1e-6)  # as if an optimizer step overshot
    rng = np.random.default_rng(3)
    img, txt = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    got = loss(torch.tensor(img), torch.tensor(txt)).item()
    assert got == pytest.approx(clip_loss_numpy(img, txt, 1000.0), rel=1e-5)
    loss.clamp_()
    assert loss.logit_scale.item() == pytest.approx(math.log(100.0))
    got = loss(torch.tensor(img), torch.tensor(txt)).item()
    assert got == pytest.approx(clip_loss_numpy(img, txt, 100.0), rel=1e-5)
    # an explicit scale is used as given (open_clip's ClipLoss semantics)
    got = ClipLoss()(torch.tensor(img), torch.tensor(txt), logit_scale=torch.tensor(500.0)).item()
    assert got == pytest.approx(clip_loss_numpy(img, txt, 500.0), rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_equals_open_clip(seed):
    from open_clip.loss import ClipLoss as OpenClipLoss

    g = torch.Generator().manual_seed(seed)
    img = torch.randn(16, 32, generator=g)
    txt = torch.randn(16, 32, generator=g) + 0.5 * img
    scale = torch.tensor(23.7)
    reference = OpenClipLoss()
    # open_clip expects unit features: compare on unit inputs (ours normalises itself) ...
    unit_img, unit_txt = torch.nn.functional.normalize(img, dim=-1), torch.nn.functional.normalize(txt, dim=-1)
    expected = reference(unit_img, unit_txt, scale)
    assert ClipLoss()(img, txt, logit_scale=scale).item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    # ... and with normalize=False on arbitrary inputs, exactly its arithmetic
    expected_raw = reference(img, txt, scale)
    assert ClipLoss(normalize=False)(img, txt, logit_scale=scale).item() == pytest.approx(expected_raw.item(), rel=1e-5, abs=1e-6)


def test_gradients_equal_open_clip():
    from open_clip.loss import ClipLoss as OpenClipLoss

    g = torch.Generator().manual_seed(4)
    base_img, base_txt = torch.randn(8, 12, generator=g), torch.randn(8, 12, generator=g)
    ours = ClipLoss()
    img, txt = base_img.clone().requires_grad_(), base_txt.clone().requires_grad_()
    ours(img, txt).backward()

    t = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    img2, txt2 = base_img.clone().requires_grad_(), base_txt.clone().requires_grad_()
    norm = torch.nn.functional.normalize
    OpenClipLoss()(norm(img2, dim=-1), norm(txt2, dim=-1), t.exp()).backward()
    torch.testing.assert_close(img.grad, img2.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(txt.grad, txt2.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ours.logit_scale.grad, t.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("n", [1, 4, 33])
def test_all_equal_embeddings_give_log_n(n):
    x = torch.ones(n, 10)
    assert ClipLoss()(x, x * 3).item() == pytest.approx(math.log(n), abs=1e-6)


@pytest.mark.parametrize("scale", [1.0, 14.285714, 100.0])
def test_orthogonal_matched_pairs(scale):
    # u_i = v_i = e_i: the positive logit is s, the N-1 negatives are 0.
    n = 6
    x = torch.eye(n)
    expected = math.log(1 + (n - 1) * math.exp(-scale))
    assert ClipLoss()(x, x, logit_scale=scale).item() == pytest.approx(expected, rel=1e-5, abs=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 12), d=st.integers(2, 9))
def test_invariances(seed, n, d):
    rng = np.random.default_rng(seed)
    img = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float64)
    txt = torch.tensor(rng.normal(size=(n, d)), dtype=torch.float64)
    loss = ClipLoss()
    base = loss(img, txt).item()
    # symmetric in the two modalities
    assert loss(txt, img).item() == pytest.approx(base, rel=1e-5, abs=1e-6)
    # the same permutation of both batches leaves it unchanged
    perm = torch.as_tensor(rng.permutation(n))
    assert loss(img[perm], txt[perm]).item() == pytest.approx(base, rel=1e-5, abs=1e-6)
    # a common rotation and positive per-row scalings leave cosines unchanged
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q = torch.tensor(q)
    scales = torch.tensor(rng.uniform(0.1, 10, size=(n, 1)))
    assert loss(img @ q * scales, txt @ q).item() == pytest.approx(base, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_is_finite_and_close(dtype):
    g = torch.Generator().manual_seed(5)
    img = torch.randn(64, 32, generator=g) * 300  # squared norms overflow float16
    txt = torch.randn(64, 32, generator=g) * 300 + img
    expected = ClipLoss()(img, txt, logit_scale=100.0).item()
    low_img, low_txt = img.to(dtype).requires_grad_(), txt.to(dtype).requires_grad_()
    got = ClipLoss()(low_img, low_txt, logit_scale=100.0)
    assert torch.isfinite(got)
    got.backward()
    assert torch.isfinite(low_img.grad).all() and torch.isfinite(low_txt.grad).all()
    assert low_img.grad.dtype == dtype
    assert got.item() == pytest.approx(expected, rel=0.05, abs=0.05)


def test_maximal_scale_with_confident_mistakes_is_finite():
    # s = 100 and every pair assigned to the wrong partner: logits differ by 200.
    x = torch.eye(4)
    loss = ClipLoss()(x, x.roll(1, dims=0), logit_scale=100.0)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(100.0, rel=1e-4)


def test_bad_inputs():
    with pytest.raises(InputError, match="same shape"):
        ClipLoss()(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(InputError, match="init_logit_scale"):
        ClipLoss(init_logit_scale=-1)
    with pytest.raises(InputError, match="max_logit_scale"):
        ClipLoss(init_logit_scale=10, max_logit_scale=5)


def test_fixed_scale_is_a_buffer():
    loss = ClipLoss(init_logit_scale=20.0, learnable=False)
    assert list(loss.parameters()) == []
    assert loss.scale.item() == pytest.approx(20.0, rel=1e-6)
