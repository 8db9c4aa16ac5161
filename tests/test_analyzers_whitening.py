"""Whitening and likelihood (SPEC §12): planted Gaussians, scipy references, one-line errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import clipgeo as cg
from clipgeo.analyzers._whitening import anderson_darling_normal
from clipgeo.errors import InputError


def _planted(rng, n=3000, d=12):
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    m = rng.normal(size=d) * 3
    return rng.normal(size=(n, d)) @ a + m


def test_whitening_a_planted_gaussian_gives_identity_covariance(rng):
    x = _planted(rng)
    w = cg.Whitener().fit(x)
    z = w.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(12), atol=1e-9)
    assert not w.ledoit_wolf_ and w.n_floored_ == 0
    # W = V Λ^{-1/2}: W Wᵀ is the inverse covariance
    np.testing.assert_allclose(
        w.whitening_matrix_ @ w.whitening_matrix_.T, np.linalg.inv(np.cov(x, rowvar=False)), rtol=1e-8
    )


def test_log_likelihood_is_the_gaussian_log_density(rng):
    x = _planted(rng, n=500, d=6)
    w = cg.Whitener().fit(x)
    ref = stats.multivariate_normal(x.mean(axis=0), np.cov(x, rowvar=False)).logpdf(x[:20])
    np.testing.assert_allclose(w.log_likelihood(x[:20]), ref, rtol=1e-10)
    assert w.score(x) == pytest.approx(w.log_likelihood(x).mean())


def test_held_out_outliers_score_lower(rng):
    x = _planted(rng)
    w = cg.Whitener().fit(x[:2000])
    inlier = w.log_likelihood(x[2000:]).mean()
    outlier = w.log_likelihood(x[2000:] + 5.0).mean()
    assert outlier < inlier - 10


def test_few_rows_use_ledoit_wolf_and_a_floor_keeps_it_finite(rng):
    x = rng.normal(size=(10, 30))
    w = cg.Whitener().fit(x)
    assert w.ledoit_wolf_
    assert np.isfinite(w.log_likelihood(x)).all()
    flat = np.c_[rng.normal(size=(100, 3)), np.zeros((100, 2))]  # two directions without variance
    w2 = cg.Whitener(shrinkage="none").fit(flat)
    assert w2.n_floored_ == 2 and w2.eigenvalues_.min() == pytest.approx(1e-6 * w2.eigenvalues_.max())


def test_round_trip_through_arrays(rng):
    x = _planted(rng, n=200, d=5)
    w = cg.Whitener().fit(x)
    w2 = cg.Whitener.from_arrays(w.to_arrays())
    np.testing.assert_allclose(w2.log_likelihood(x), w.log_likelihood(x), rtol=1e-12)


def test_bad_input_gives_one_line_errors(rng):
    w = cg.Whitener().fit(rng.normal(size=(50, 4)))
    with pytest.raises(InputError, match="dimension 6 but the whitener was fitted on 4-dimensional") as err:
        w.transform(rng.normal(size=(3, 6)))
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="not fitted"):
        cg.Whitener().transform(np.zeros((2, 2)))
    with pytest.raises(InputError, match="shrinkage"):
        cg.Whitener(shrinkage="oas")
    with pytest.raises(InputError, match="not a whitener file"):
        cg.Whitener.from_arrays({"mean": np.zeros(3)})


def test_anderson_darling_matches_scipy(rng):
    z = rng.normal(size=(300, 4))
    z[:, 3] = rng.exponential(size=300)
    stat, crit = anderson_darling_normal(z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(4):
            ref = stats.anderson(z[:, k], dist="norm")
            assert stat[k] == pytest.approx(ref.statistic, rel=1e-9)
            assert crit[k] == pytest.approx(ref.critical_values[list(ref.significance_level).index(5.0)], abs=1e-3)
    assert stat[3] > crit[3]  # the exponential column is rejected


def test_gaussian_coordinates_pass_about_95_percent(rng):
    x = _planted(rng, n=2000, d=60)
    res = cg.whitening(x, seed=1)
    assert res.dagostino_pass_rate >= 0.85 and res.anderson_pass_rate >= 0.85
    assert res.heldout_mean_log_likelihood < res.mean_log_likelihood  # fitted rows score higher than new ones
    assert res.qq_sample.shape == (3, res.n_heldout)
    skewed = cg.whitening(np.exp(x[:, :10]), seed=1)
    assert skewed.dagostino_pass_rate < 0.2


def test_a_given_covariance_gives_the_same_whitening(rng):
    x = _planted(rng, n=400, d=8)
    a = cg.whitening(x, seed=2)
    b = cg.whitening(x, seed=2, covariance=np.cov(x, rowvar=False))
    assert a.dagostino_pass_rate == b.dagostino_pass_rate and a.anderson_pass_rate == b.anderson_pass_rate
    np.testing.assert_allclose(a.heldout_log_likelihood, b.heldout_log_likelihood, rtol=1e-12)
