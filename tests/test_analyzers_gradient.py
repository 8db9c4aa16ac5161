"""The perturbation experiment of SPEC §9: a fixed-size move changes the cosine less far from the origin."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.analyzers._gradient import sphere_projection_mean
from clipgeo.errors import InputError


def test_planted_offset_far_from_the_origin_changes_the_cosine_less():
    # a double ellipsoid planted twice as far from the origin as it is wide: α < 0 moves the image rows
    # farther out, α = 1 centres them; the same random move must change both cosines less far out
    img, txt, _ = cg.double_ellipsoid(400, 32, offset_ratio=2.0, seed=3)
    res = cg.cosine_gradient(img, txt, alphas=[-1.0, -0.5, 0.0, 0.5, 1.0], n_samples=200)
    assert np.all(np.diff(res.mean_norm) < 0)  # ||u|| falls as α rises
    assert np.all(np.diff(res.delta_cos_own) > 0) and np.all(np.diff(res.delta_cos_negative) > 0)
    assert res.delta_cos_own[0] < 0.5 * res.delta_cos_own[-1]
    assert res.sensitivity_ratio == pytest.approx(res.delta_cos_own[0] / res.delta_cos_own[-1])
    # the gradient formula predicts the measured change to first order (δ is 5 % of the shell radius)
    np.testing.assert_allclose(res.delta_cos_own, res.formula_delta_cos_own, rtol=0.1)
    np.testing.assert_allclose(res.delta_cos_negative, res.formula_delta_cos_negative, rtol=0.1)
    assert res.perturbation_norm == pytest.approx(
        0.05 * np.linalg.norm(img - img.astype(np.float64).mean(0), axis=1).mean(), rel=1e-5
    )


def test_a_centred_cloud_has_no_such_effect():
    # without an offset, shifting along the (near-zero) mean barely moves the rows: the change stays flat
    rng = np.random.default_rng(1)
    img, txt = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    res = cg.cosine_gradient(img, txt, alphas=[-1.0, 1.0])
    assert res.sensitivity_ratio == pytest.approx(1.0, abs=0.05)


def test_sphere_factor_is_the_mean_projection_of_a_random_unit_vector():
    rng = np.random.default_rng(0)
    for d in (2, 3, 16, 512):
        r = rng.normal(size=(200_000 if d < 100 else 20_000, d))
        r /= np.linalg.norm(r, axis=1, keepdims=True)
        assert sphere_projection_mean(d) == pytest.approx(np.abs(r[:, 0]).mean(), rel=0.01)
    assert sphere_projection_mean(2) == pytest.approx(2 / np.pi, rel=1e-12)
    assert sphere_projection_mean(3) == pytest.approx(0.5, rel=1e-12)


def test_the_nearest_negative_is_never_an_own_caption():
    # every caption points exactly at its image: the nearest text is always an own caption, so the
    # nearest *unpaired* one must be another image's -- its cosine is below 1 while the own one is 1
    rng = np.random.default_rng(4)
    images = rng.normal(size=(30, 8)) + 3
    texts = np.repeat(images, 2, axis=0)  # two captions per image, both equal to it
    res = cg.cosine_gradient(images, texts, alphas=[0.0, 0.5], image_index=np.repeat(np.arange(30), 2))
    np.testing.assert_allclose(res.cosine[res.alpha == 0.0], 1.0, atol=1e-12)
    # at α = 0 an exact match has zero gradient, so to first order its cosine does not move; the negative's does
    assert res.delta_cos_own[0] < 0.2 * res.delta_cos_negative[0]


def test_bad_parameters(rng):
    x = rng.normal(size=(10, 3))
    with pytest.raises(InputError, match="one point"):
        cg.cosine_gradient(x, x, alphas=[0.0])
    with pytest.raises(InputError, match="epsilon"):
        cg.cosine_gradient(x, x, epsilon=0)
    with pytest.raises(InputError, match="image_index"):
        cg.cosine_gradient(x, x[:4])
