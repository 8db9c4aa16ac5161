"""The synthetic generators: the ground truth they report is what they draw."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.errors import InputError
from clipgeo.synthetic import (
    DISTRIBUTIONS,
    embedding_set,
    random_rotation,
    sample_anisotropic,
    sample_isotropic,
    thin_shell_curve,
)


def test_double_ellipsoid_truth_is_consistent():
    img, txt, truth = cg.double_ellipsoid(200, 40, offset_ratio=1.2, separating_features=[3, 11], seed=1)
    assert img.shape == txt.shape == (200, 40) and img.dtype == np.float32
    assert truth.separating_features == (3, 11)
    sigma_i = np.sqrt(np.diag(truth.cov_image))
    sigma_t = np.sqrt(np.diag(truth.cov_text))
    assert truth.offset_ratio_image == pytest.approx(1.2, rel=1e-12)
    assert np.linalg.norm(truth.mean_image) / np.linalg.norm(sigma_i) == pytest.approx(1.2, rel=1e-12)
    assert np.linalg.norm(truth.mean_text) / np.linalg.norm(sigma_t) == pytest.approx(truth.offset_ratio_text)
    pooled = np.sqrt((sigma_i**2 + sigma_t**2) / 2)
    dprime = (truth.mean_image - truth.mean_text) / pooled
    np.testing.assert_allclose(dprime[[3, 11]], truth.separation, rtol=1e-12)
    others = np.setdiff1d(np.arange(40), [3, 11])
    np.testing.assert_allclose(dprime[others], 0.0, atol=1e-12)
    # planted tilt: equicorrelation ρ inside blocks of 8
    corr = truth.cov_image / np.outer(sigma_i, sigma_i)
    assert corr[0, 7] == pytest.approx(truth.tilt_rho) and corr[0, 8] == 0.0
    assert np.all(np.linalg.eigvalsh(truth.cov_image) > 0)


def test_large_sample_recovers_the_truth():
    img, txt, truth = cg.double_ellipsoid(40000, 16, tilt_block=4, tilt_rho=0.6, pair_correlation=0.5, seed=2)
    img, txt = img.astype(np.float64), txt.astype(np.float64)
    sigma = np.sqrt(np.diag(truth.cov_image))
    assert np.abs(img.mean(0) - truth.mean_image).max() < 5 * sigma.max() / np.sqrt(40000)
    np.testing.assert_allclose(np.cov(img, rowvar=False), truth.cov_image, atol=0.02 * truth.cov_image.max())
    odd = cg.off_diagonal_dominance(img).per_feature
    np.testing.assert_allclose(odd, truth.odd_image, rtol=0.1)
    # matched rows share latent draws: corr(img_k, txt_k) = pair_correlation
    zi = (img - img.mean(0)) / img.std(0)
    zt = (txt - txt.mean(0)) / txt.std(0)
    # through the Cholesky factors corr(img_k, txt_k) = ρ_pair · (L_i L_tᵀ)_kk / (σ_i,k σ_t,k) = ρ_pair here (L_t ∝ L_i)
    np.testing.assert_allclose((zi * zt).mean(0), 0.5, atol=0.03)
    gap = cg.modality_gap(img, txt)
    assert gap.raw_centroid_distance == pytest.approx(truth.raw_centroid_distance, rel=0.02)
    shell = cg.thin_shell(img)
    assert shell.sqrt_trace_cov == pytest.approx(truth.sqrt_trace_image, rel=0.02)


def test_unit_norm_option_and_validation():
    img, txt, truth = cg.double_ellipsoid(50, 8, separating_features=1, unit_norm=True, dtype=np.float64, seed=3)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, rtol=1e-12)
    assert truth.unit_norm and img.dtype == np.float64
    with pytest.raises(InputError, match="offset_ratio"):
        cg.double_ellipsoid(10, 8, offset_ratio=0.1, separating_features=4)
    with pytest.raises(InputError, match="0..7"):
        cg.double_ellipsoid(10, 8, separating_features=[9])
    with pytest.raises(InputError, match="distribution"):
        cg.double_ellipsoid(10, 8, distribution="cauchy")


def test_same_seed_same_draw():
    a = cg.double_ellipsoid(30, 16, seed=5)
    b = cg.double_ellipsoid(30, 16, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], cg.double_ellipsoid(30, 16, seed=6)[0])


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_isotropic_samplers_have_unit_variance(distribution):
    x = sample_isotropic(20000, 8, distribution, seed=1)
    np.testing.assert_allclose(x.var(axis=0), 1.0, atol=0.05)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.05)


def test_anisotropic_sampler_covariance():
    q = random_rotation(4, seed=1)
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-12)
    variances = np.array([4.0, 1.0, 0.25, 0.01])
    x = sample_anisotropic(50000, variances, mean=np.ones(4), rotation=q, seed=2)
    np.testing.assert_allclose(np.cov(x, rowvar=False), q @ np.diag(variances) @ q.T, atol=0.05)
    np.testing.assert_allclose(x.mean(0), 1.0, atol=0.03)


def test_thin_shell_curve():
    frame = thin_shell_curve(dims=(2, 64, 512), n_samples=3000)
    assert len(frame) == 9 and set(frame["distribution"]) == set(DISTRIBUTIONS)
    big = frame[frame["dim"] == 512]
    np.testing.assert_allclose(big["mean_norm"], np.sqrt(512), rtol=0.01)
    # thickness stays O(1) (isotropic log-concave), so the relative thickness shrinks with n
    for _, group in frame.groupby("distribution"):
        assert group.sort_values("dim")["relative_thickness"].is_monotonic_decreasing
        assert (group["std_norm"] < 1.5).all()


def test_embedding_set_wraps_arrays():
    img, txt, _ = cg.double_ellipsoid(20, 16, seed=1)
    es = embedding_set(img, txt, captions=[f"c{i}" for i in range(20)])
    assert es.n_pairs == 20 and es.dim == 16 and not es.meta.normalized
    a, b = es.paired_arrays()
    np.testing.assert_array_equal(a, img)
    only_text = embedding_set(None, txt)
    assert only_text.n_image == 0 and only_text.n_pairs == 0
    unpaired = embedding_set(img, txt[:10])
    assert unpaired.n_pairs == 0
