"""Thin shell, Mahalanobis shell, off-diagonal dominance, ellipsoid offset (SPEC §3-6)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

import clipgeo as cg
from clipgeo.synthetic import random_rotation, sample_anisotropic, sample_isotropic


def exact_covariance_sample(n: int, cov: np.ndarray, seed: int = 0, mean: np.ndarray | None = None) -> np.ndarray:
    """Rows whose sample covariance (ddof = 1) is exactly ``cov``."""
    d = len(cov)
    z = np.random.default_rng(seed).standard_normal((n, d))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)  # orthonormal, centred columns
    z = q * np.sqrt(n - 1)  # sample covariance exactly identity
    x = z @ np.linalg.cholesky(cov).T
    return x if mean is None else x + mean


# -- thin shell -------------------------------------------------------------------------------------


@pytest.mark.parametrize("distribution", ["gaussian", "laplace", "uniform"])
def test_isotropic_centred_norm_concentrates_at_sqrt_d(distribution):
    d = 256
    x = sample_isotropic(3000, d, distribution, seed=1) + 5.0  # offset: centring must remove it
    res = cg.thin_shell(x)
    assert res.mean_centered_norm == pytest.approx(np.sqrt(d), rel=0.01)
    assert res.sqrt_trace_cov == pytest.approx(np.sqrt(d), rel=0.01)
    assert res.relative_thickness < 0.1  # thin: O(1) thickness against sqrt(256) = 16
    assert res.mean_norm == pytest.approx(np.sqrt(d + 25 * d), rel=0.01)


def test_thin_shell_matches_numpy_reference(rng):
    x = rng.normal(size=(40, 7)) * np.arange(1, 8) + 3
    res = cg.thin_shell(x)
    norms = np.linalg.norm(x, axis=1)
    cn = np.linalg.norm(x - x.mean(0), axis=1)
    assert res.mean_norm == pytest.approx(norms.mean(), rel=1e-12)
    assert res.std_norm == pytest.approx(norms.std(ddof=1), rel=1e-12)
    assert res.mean_centered_norm == pytest.approx(cn.mean(), rel=1e-12)
    assert res.std_centered_norm == pytest.approx(cn.std(ddof=1), rel=1e-12)
    assert res.sqrt_trace_cov == pytest.approx(np.sqrt(np.trace(np.cov(x, rowvar=False))), rel=1e-12)
    np.testing.assert_allclose(res.feature_variance, x.var(axis=0, ddof=1), rtol=1e-12)
    assert res.squared_mean_centered_norm == pytest.approx(cn.mean() ** 2)
    assert set(res.to_dict()) >= {"mean_norm", "std_norm", "mean_centered_norm", "std_centered_norm", "sqrt_trace_cov"}


# -- Mahalanobis shell ------------------------------------------------------------------------------


def test_mahalanobis_mean_is_sqrt_d_for_a_gaussian():
    d = 32
    variances = np.geomspace(0.01, 4, d)
    x = sample_anisotropic(20000, variances, mean=np.full(d, 3.0), rotation=random_rotation(d, seed=2), seed=3)
    res = cg.mahalanobis_shell(x)
    assert res.mean == pytest.approx(np.sqrt(d), rel=0.02)
    assert res.shrinkage < 0.01
    assert res.cv == pytest.approx(1 / np.sqrt(2 * d), rel=0.05)  # chi distribution with d degrees of freedom
    # strongly anisotropic: the ellipsoidal shell is much thinner than the spherical one
    assert res.thinner_than_euclidean and res.cv < 0.7 * res.euclidean_cv


def test_mahalanobis_uses_default_ledoit_wolf(rng):
    x = rng.normal(size=(30, 50)) * np.linspace(0.5, 2, 50)  # n < d: a plain inverse does not exist
    res = cg.mahalanobis_shell(x)
    lw = LedoitWolf().fit(x)
    assert res.shrinkage == pytest.approx(lw.shrinkage_, rel=1e-12)
    np.testing.assert_allclose(res.distances_in_sample**2, lw.mahalanobis(x), rtol=1e-9)
    d = res.distances_in_sample
    assert res.cv_in_sample == pytest.approx(d.std(ddof=1) / d.mean(), rel=1e-12)
    cn = np.linalg.norm(x - x.mean(0), axis=1)
    assert res.euclidean_cv_in_sample == pytest.approx(cn.std(ddof=1) / cn.mean(), rel=1e-12)


@pytest.mark.parametrize("shape", [(300, 40), (25, 60)])
def test_ledoit_wolf_fit_in_row_blocks_is_sklearns(rng, monkeypatch, shape):
    """The fit sums blocks of rows (never a centred copy of them all): sklearn's shrinkage and distances, with
    many blocks, rows far from the origin, and n < d."""
    from clipgeo.analyzers import _blocks

    monkeypatch.setattr(_blocks, "BLOCK_ROWS", 7)
    n, d = shape
    x = rng.normal(size=(n, d)) * np.linspace(0.1, 3, d) + 50.0
    res = cg.mahalanobis_shell(x, seed=2)
    lw = LedoitWolf().fit(x)
    assert res.shrinkage == pytest.approx(lw.shrinkage_, rel=1e-10)
    np.testing.assert_allclose(res.distances_in_sample**2, lw.mahalanobis(x), rtol=1e-8)


def test_mahalanobis_held_out_distances_use_the_other_folds_fit(rng):
    from sklearn.model_selection import KFold

    x = rng.normal(size=(40, 12)) * np.linspace(0.5, 2, 12) + 1.0
    res = cg.mahalanobis_shell(x, seed=3)
    assert res.folds == 5 and len(res.fold_shrinkage) == 5
    held, euclid = np.empty(40), np.empty(40)
    for train, test in KFold(5, shuffle=True, random_state=3).split(x):
        held[test] = np.sqrt(LedoitWolf().fit(x[train]).mahalanobis(x[test]))
        euclid[test] = np.linalg.norm(x[test] - x[train].mean(0), axis=1)
    np.testing.assert_allclose(res.distances, held, rtol=1e-9)
    np.testing.assert_allclose(res.centered_norms_held_out, euclid, rtol=1e-12)
    assert res.cv == pytest.approx(held.std(ddof=1) / held.mean(), rel=1e-9)
    assert res.euclidean_cv == pytest.approx(euclid.std(ddof=1) / euclid.mean(), rel=1e-12)
    assert res.thinner_than_euclidean == (res.cv < res.euclidean_cv)
    d = res.to_dict()
    assert {"cv", "cv_in_sample", "euclidean_cv", "thinner_than_euclidean"} <= set(d) and "distances" not in d


def test_mahalanobis_in_sample_shell_is_an_artifact_when_n_is_below_d():
    # a planted double ellipsoid with N < d: the rows the fit saw look closer than new rows do, so the
    # in-sample cv understates the shell's thickness; held out it is at least as large
    img, _, _ = cg.double_ellipsoid(60, 96, seed=12)
    res = cg.mahalanobis_shell(img)
    assert res.n < res.dim
    assert res.cv >= res.cv_in_sample
    assert res.mean > res.mean_in_sample  # new rows lie farther out under the fit than its own rows
    # with N >> d both agree
    big, _, _ = cg.double_ellipsoid(4000, 16, seed=12)
    many = cg.mahalanobis_shell(big)
    assert many.cv == pytest.approx(many.cv_in_sample, rel=0.05)


def test_mahalanobis_with_two_rows_has_no_held_out_numbers(rng):
    res = cg.mahalanobis_shell(rng.normal(size=(2, 3)))
    assert res.folds == 0 and np.isnan(res.cv) and not res.thinner_than_euclidean
    assert res.to_dict()["cv"] is None and np.isfinite(res.cv_in_sample)


# -- off-diagonal dominance -------------------------------------------------------------------------


def test_off_diagonal_dominance_of_a_known_covariance():
    cov = np.array(
        [
            [4.0, 1.0, -1.0, 0.0],
            [1.0, 1.0, 0.5, 0.0],
            [-1.0, 0.5, 2.0, 0.1],
            [0.0, 0.0, 0.1, 0.5],
        ]
    )
    x = exact_covariance_sample(500, cov, mean=np.array([1.0, -2.0, 3.0, 0.0]))
    res = cg.off_diagonal_dominance(x)
    np.testing.assert_allclose(res.covariance, cov, atol=1e-10)
    expected = np.array([2 / 4, 1.5 / 1, 1.6 / 2, 0.1 / 0.5])
    np.testing.assert_allclose(res.per_feature, expected, rtol=1e-9)
    assert res.median == pytest.approx(np.median(expected))
    assert res.fraction_above_1 == 0.25
    assert res.to_dict()["per_feature"] == pytest.approx(expected.tolist())
    assert "covariance" not in res.to_dict()


def test_diagonal_covariance_has_no_dominance():
    x = exact_covariance_sample(100, np.diag([1.0, 2.0, 3.0]))
    res = cg.off_diagonal_dominance(x)
    np.testing.assert_allclose(res.per_feature, 0.0, atol=1e-12)
    assert res.fraction_above_1 == 0.0


# -- ellipsoid offset -------------------------------------------------------------------------------


def test_offset_ratio_matches_numpy_and_planted_value(rng):
    x = rng.normal(size=(60, 9)) * 0.3 + rng.normal(size=9)
    res = cg.ellipsoid_offset(x)
    assert res.ratio == pytest.approx(np.linalg.norm(x.mean(0)) / np.linalg.norm(x.std(0, ddof=1)), rel=1e-12)
    assert res.fraction_mean_above_std == pytest.approx(np.mean(np.abs(x.mean(0)) > x.std(0, ddof=1)))
    img, txt, truth = cg.double_ellipsoid(8000, 32, offset_ratio=2.5, seed=4)
    assert cg.ellipsoid_offset(img).ratio == pytest.approx(2.5, rel=0.02)
    assert cg.ellipsoid_offset(txt).ratio == pytest.approx(truth.offset_ratio_text, rel=0.02)


def test_centred_cloud_has_zero_offset():
    x = exact_covariance_sample(50, np.eye(3))  # sample mean exactly 0
    assert cg.ellipsoid_offset(x).ratio == pytest.approx(0.0, abs=1e-12)


def test_results_convert_to_tables(rng):
    x = rng.normal(size=(25, 4)) + 1
    shell = cg.thin_shell(x).to_frame()
    assert list(shell.columns) == ["index", "norms", "centered_norms"] and len(shell) == 25
    maha = cg.mahalanobis_shell(x).to_frame()
    np.testing.assert_allclose(maha["distances"], cg.mahalanobis_shell(x).distances)
    odd = cg.off_diagonal_dominance(x).to_frame()
    assert list(odd.columns) == ["feature", "odd", "variance"]
    np.testing.assert_allclose(odd["variance"], x.var(axis=0, ddof=1))
    offset = cg.ellipsoid_offset(x).to_frame()
    np.testing.assert_allclose(offset["mean"], x.mean(0))
    summary = cg.alignment_uniformity(x, x[::-1]).to_frame()
    assert len(summary) == 1 and summary["n_pairs"][0] == 25


def test_mahalanobis_keeps_copies_of_a_row_in_one_fold(rng):
    # each row stored 5 times (one image per caption): held out must mean "no copy in the fit", so the
    # copies of a row share one fold and one held-out distance
    x = rng.normal(size=(40, 12)) * np.linspace(0.5, 2, 12)
    stored = np.repeat(x, 5, axis=0)
    res = cg.mahalanobis_shell(stored, seed=1)
    d = res.distances.reshape(40, 5)
    np.testing.assert_allclose(d, d[:, :1].repeat(5, axis=1), rtol=1e-12)
    assert res.folds == 5
    # folds that split the copies leak: the held-out rows sit in the fit and look as close as in-sample ones
    from sklearn.model_selection import KFold

    leaky = np.empty(200)
    for train, test in KFold(5, shuffle=True, random_state=1).split(stored):
        leaky[test] = np.sqrt(LedoitWolf().fit(stored[train]).mahalanobis(stored[test]))
    assert leaky.mean() < 0.95 * res.mean
