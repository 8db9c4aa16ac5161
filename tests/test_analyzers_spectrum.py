"""Spectrum (SPEC §12): planted covariances with known eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg


def _exact_covariance(rng, lam, n=400):
    """Rows whose covariance (ddof = 1) is exactly R diag(lam) Rᵀ for a random rotation R."""
    d = len(lam)
    z = rng.normal(size=(n, d))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)  # (n, d) orthonormal columns, each summing to ~0
    q -= q.mean(axis=0)
    q, _ = np.linalg.qr(q)
    rot, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return np.sqrt(n - 1) * q * np.sqrt(lam) @ rot.T + 5.0


def test_planted_eigenvalues_and_their_summaries(rng):
    lam = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.125])
    res = cg.spectrum(_exact_covariance(rng, lam))
    np.testing.assert_allclose(res.eigenvalues, lam, rtol=1e-9)
    assert res.participation_ratio == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=1e-9)
    p = np.sqrt(lam) / np.sqrt(lam).sum()
    assert res.effective_rank == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-9)
    # cumulative shares: 8/16 = .5, 12/16 = .75, 14/16 = .875, 15/16 = .9375 → 4 dims for 90 %
    assert res.dims_90 == 4
    assert res.dims_99 == 7  # 15.875/16 = 0.9922
    assert res.top_share == pytest.approx(0.5)


def test_isotropic_rows_use_every_dimension(rng):
    res = cg.spectrum(_exact_covariance(rng, np.ones(10)))
    assert res.effective_rank == pytest.approx(10, rel=1e-9) and res.participation_ratio == pytest.approx(10, rel=1e-9)
    assert res.dims_90 == 9 and res.dims_99 == 10


def test_fewer_rows_than_dimensions_have_rank_n_minus_one(rng):
    res = cg.spectrum(rng.normal(size=(5, 20)))
    assert np.sum(res.eigenvalues > 1e-10 * res.eigenvalues[0]) == 4
    assert res.to_dict()["dims_99"] <= 4


def test_a_given_covariance_gives_the_same_spectrum(rng):
    x = rng.normal(size=(50, 6)) @ rng.normal(size=(6, 6))
    a, b = cg.spectrum(x), cg.spectrum(x, covariance=np.cov(x, rowvar=False))
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-10)
