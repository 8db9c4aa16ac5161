"""Centroid shift, Wang–Isola metrics and the cosine gradient (SPEC §8-9) against direct NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.special import logsumexp

import clipgeo as cg
from clipgeo.analyzers import default_alphas
from clipgeo.errors import InputError


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def direct_clip_loss(img, txt, alpha, tau, batch):
    """Symmetric InfoNCE written out: full batches of ``batch`` pairs in order, the rest dropped."""
    m = img.mean(axis=0)
    u, t = unit(img - alpha * m), unit(txt)
    losses, aligns, unifs = [], [], []
    for start in range(0, len(img) - batch + 1, batch):
        s = u[start : start + batch] @ t[start : start + batch].T / tau
        diag = np.diag(s)
        row = -np.mean(diag - logsumexp(s, axis=1))  # image -> text cross-entropy
        col = -np.mean(diag - logsumexp(s, axis=0))  # text -> image
        losses.append(0.5 * (row + col))
        aligns.append(-diag.mean())
        unifs.append(0.5 * (logsumexp(s, axis=1).mean() + logsumexp(s, axis=0).mean()))
    return np.mean(losses), np.mean(aligns), np.mean(unifs)


@pytest.mark.parametrize("tau", [0.01, 0.07, 0.002])  # 0.002 takes the max-shifted logsumexp path
def test_loss_equals_direct_symmetric_infonce(tau):
    img, txt, _ = cg.double_ellipsoid(230, 16, seed=6)
    img, txt = img.astype(np.float64), txt.astype(np.float64)
    alphas = [-1.0, 0.0, 0.3, 1.0]
    res = cg.centroid_shift(img, txt, alphas=alphas, temperature=tau, batch_size=100)
    assert res.batch_size == 100 and res.n_batches == 2 and res.rows_used == 200  # last 30 pairs dropped
    for i, a in enumerate(alphas):
        loss, align, unif = direct_clip_loss(img, txt, a, tau, 100)
        assert res.loss[i] == pytest.approx(loss, rel=1e-9)
        assert res.alignment[i] == pytest.approx(align, rel=1e-9)
        assert res.uniformity[i] == pytest.approx(unif, rel=1e-9)


def test_batch_is_all_rows_when_fewer_than_batch_size(rng):
    img, txt = rng.normal(size=(50, 6)) + 1, rng.normal(size=(50, 6))
    res = cg.centroid_shift(img, txt, alphas=[0.0])
    assert (res.batch_size, res.n_batches, res.rows_used) == (50, 1, 50)
    assert res.loss[0] == pytest.approx(direct_clip_loss(img, txt, 0.0, 0.01, 50)[0], rel=1e-9)


def test_perfectly_aligned_pairs_have_the_analytic_loss():
    # orthonormal pairs identical across modalities: S = I / τ; loss = -1/τ + log(e^{1/τ} + (B-1))
    d, tau = 8, 0.1
    x = np.eye(d) * 3.0 + 0.0
    res = cg.centroid_shift(x, x.copy(), alphas=[0.0], temperature=tau)
    expected = -1 / tau + np.log(np.exp(1 / tau) + (d - 1))
    assert res.loss[0] == pytest.approx(expected, rel=1e-12)


def test_default_grid_and_kl():
    a = default_alphas()
    assert len(a) == 21 and a[0] == -1.0 and a[-1] == 1.0 and a[10] == 0.0
    img, txt, _ = cg.double_ellipsoid(600, 16, seed=7)
    res = cg.centroid_shift(img, img.copy())  # identical modalities: same conformity at α = 0
    assert res.conformity_kl[10] == pytest.approx(0.0, abs=1e-12)
    assert res.kl_argmin == 0.0
    assert (res.conformity_kl >= 0).all()
    frame = res.to_frame()
    assert list(frame.columns[:5]) == ["alpha", "loss", "alignment", "uniformity", "conformity_kl"]
    d = res.to_dict()
    assert len(d["loss"]) == 21 and d["temperature"] == 0.01 and d["loss_argmin_alpha"] == res.loss_argmin


def test_kl_uses_histograms_on_one_shared_grid(rng):
    img, txt = rng.normal(size=(300, 5)) + 2, rng.normal(size=(300, 5)) + 1
    res = cg.centroid_shift(img, txt, alphas=[0.0, 0.5], kl_bins=10, kl_pseudo_count=0.5)

    def conf(x):
        u = unit(x)
        return (u @ u.sum(0) - 1) / (len(u) - 1)

    m = img.mean(0)
    ci = [conf(img - a * m) for a in (0.0, 0.5)]
    ct = conf(txt)
    lo, hi = min(min(c.min() for c in ci), ct.min()), max(max(c.max() for c in ci), ct.max())
    edges = np.linspace(lo, hi, 11)
    for i in range(2):
        p = np.histogram(ci[i], edges)[0] + 0.5
        q = np.histogram(ct, edges)[0] + 0.5
        p, q = p / p.sum(), q / q.sum()
        assert res.conformity_kl[i] == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-10)


def test_bad_parameters(rng):
    x = rng.normal(size=(10, 3))
    with pytest.raises(InputError, match="temperature"):
        cg.centroid_shift(x, x, temperature=0)
    with pytest.raises(InputError, match="alphas"):
        cg.centroid_shift(x, x, alphas=[np.nan])


def test_alignment_uniformity_matches_brute_force(rng):
    img, txt = rng.normal(size=(120, 6)) + 1, rng.normal(size=(120, 6))
    res = cg.alignment_uniformity(img, txt)
    u, v = unit(img), unit(txt)
    assert res.alignment == pytest.approx(np.mean(np.sum((u - v) ** 2, axis=1)), rel=1e-12)
    assert res.uniformity_image == pytest.approx(np.log(np.mean(np.exp(-2 * pdist(u, "sqeuclidean")))), rel=1e-10)
    assert res.uniformity_text == pytest.approx(np.log(np.mean(np.exp(-2 * pdist(v, "sqeuclidean")))), rel=1e-10)
    sub = cg.alignment_uniformity(img, txt, max_rows=50)
    assert sub.rows_image == 50 and sub.alignment == res.alignment
    assert sub.uniformity_image == pytest.approx(res.uniformity_image, abs=0.15)


def test_cosine_gradient_matches_finite_differences_and_formula(rng):
    img, txt = rng.normal(size=(40, 5)) + 2, rng.normal(size=(40, 5))
    res = cg.cosine_gradient(img, txt, alphas=[0.0, 0.5], n_samples=10)
    assert len(res.norm) == 20 and res.max_relative_error < 1e-12
    np.testing.assert_allclose(res.grad_norm, res.formula, rtol=1e-12)

    def cos(u, w):
        return u @ w / (np.linalg.norm(u) * np.linalg.norm(w))

    m = img.mean(0)
    for k in range(3):
        a, row = res.alpha[k], res.row[k]
        u, w = img[row] - a * m, txt[row]
        h = 1e-6
        grad = np.array([(cos(u + h * e, w) - cos(u - h * e, w)) / (2 * h) for e in np.eye(5)])
        assert np.linalg.norm(grad) == pytest.approx(res.grad_norm[k], rel=1e-6)
        assert res.norm[k] == pytest.approx(np.linalg.norm(u))


def test_cosine_gradient_falls_as_one_over_the_norm(rng):
    # rows on one ray, one text direction: the angle is fixed and the shift only scales u, so the
    # gradient is sin(angle) / ||u||: slope exactly -1 on log-log
    direction = rng.normal(size=6)
    img = np.outer(rng.uniform(1, 2, 30), direction)
    txt = np.tile(rng.normal(size=6), (30, 1))
    res = cg.cosine_gradient(img, txt, alphas=[-3.0, -1.0, 0.0, 0.5])
    assert res.loglog_slope == pytest.approx(-1.0, abs=1e-9)
