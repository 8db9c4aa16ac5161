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


def direct_batch_terms(u, t, tau):
    """Symmetric InfoNCE of one batch of unit rows, written out: (loss, alignment, uniformity)."""
    s = u @ t.T / tau
    diag = np.diag(s)
    row = -np.mean(diag - logsumexp(s, axis=1))  # image -> text cross-entropy
    col = -np.mean(diag - logsumexp(s, axis=0))  # text -> image
    unif = 0.5 * (logsumexp(s, axis=1).mean() + logsumexp(s, axis=0).mean())
    return 0.5 * (row + col), -diag.mean(), unif


def direct_clip_loss(img, txt, alpha, tau, order=None, batch=None):
    """The loss over batches of ``batch`` pairs taken in ``order``, last partial batch kept, means weighted by size."""
    m = img.mean(axis=0)
    u, t = unit(img - alpha * m), unit(txt)
    order = np.arange(len(img)) if order is None else order
    batch = len(img) if batch is None else batch
    total, weights = np.zeros(3), 0
    for start in range(0, len(img), batch):
        rows = order[start : start + batch]
        total += len(rows) * np.array(direct_batch_terms(u[rows], t[rows], tau))
        weights += len(rows)
    return total / weights


@pytest.mark.parametrize("tau", [0.01, 0.07, 0.002])  # 0.002 takes the max-shifted logsumexp path
def test_one_batch_loss_equals_direct_symmetric_infonce(tau):
    img, txt, _ = cg.double_ellipsoid(230, 16, seed=6)
    img, txt = img.astype(np.float64), txt.astype(np.float64)
    alphas = [-1.0, 0.0, 0.3, 1.0]
    res = cg.centroid_shift(img, txt, alphas=alphas, temperature=tau, repetitions=3)
    assert (res.batch_size, res.batches, res.pairs_used, res.repetitions) == (230, 1, 230, 3)
    for i, a in enumerate(alphas):
        loss, align, unif = direct_clip_loss(img, txt, a, tau)
        assert res.loss[i] == pytest.approx(loss, rel=1e-9)
        assert res.alignment[i] == pytest.approx(align, rel=1e-9)
        assert res.uniformity[i] == pytest.approx(unif, rel=1e-9)
    # one caption per image and one batch: every repetition is the same sweep
    np.testing.assert_allclose(res.loss_std, 0.0, atol=1e-9)


def test_partial_batch_is_kept_and_weighted_by_size():
    img, txt, _ = cg.double_ellipsoid(230, 16, seed=6)
    img, txt = img.astype(np.float64), txt.astype(np.float64)
    res = cg.centroid_shift(img, txt, alphas=[-0.5, 0.0, 0.5], batch_size=100, repetitions=1, seed=4)
    assert (res.batch_size, res.batches, res.pairs_used) == (100, 3, 230)  # 100 + 100 + 30, nothing dropped
    rng = np.random.default_rng(4)  # the draw: one caption per image (rng.random), then the shuffle
    rng.random(230)
    order = rng.permutation(230)
    for i, a in enumerate(res.alpha):
        loss, align, unif = direct_clip_loss(img, txt, a, 0.01, order, 100)
        assert res.loss[i] == pytest.approx(loss, rel=1e-9)
        assert res.alignment[i] == pytest.approx(align, rel=1e-9)
    # a single pair left over has no negative: it joins the previous batch
    odd = cg.centroid_shift(img[:201], txt[:201], alphas=[0.0, 1.0], batch_size=100, repetitions=1)
    assert odd.batches == 2 and odd.pairs_used == 201


def test_an_image_is_never_its_own_negative():
    # 40 images stored once per caption (3 bitwise copies each), the 3 captions identical: the draw cannot
    # matter, so the curve must equal that of the 40 distinct pairs -- the old in-order batching put each
    # image's copies among its negatives and raised the loss by about log 3
    img, txt, _ = cg.double_ellipsoid(40, 16, seed=8)
    img, txt = img.astype(np.float64), txt.astype(np.float64)
    stored_img, stored_txt = np.repeat(img, 3, axis=0), np.repeat(txt, 3, axis=0)
    alphas = [-0.5, 0.0, 0.5]
    once = cg.centroid_shift(img, txt, alphas=alphas, repetitions=1)
    repeated = cg.centroid_shift(stored_img, stored_txt, alphas=alphas, repetitions=2)
    assert (repeated.n_images, repeated.n_pairs, repeated.duplicate_image_rows) == (40, 120, 80)
    assert repeated.pairs_used == 40 and repeated.batch_size == 40
    for name in ("loss", "alignment", "uniformity", "wang_isola_alignment", "wang_isola_uniformity_image"):
        np.testing.assert_allclose(getattr(repeated, name), getattr(once, name), rtol=1e-10, atol=1e-12, err_msg=name)
    # the same through an explicit index (the store's text_image_index): unique image rows, 3 texts each
    indexed = cg.centroid_shift(img, stored_txt, alphas=alphas, image_index=np.repeat(np.arange(40), 3), repetitions=2)
    np.testing.assert_allclose(indexed.loss, once.loss, rtol=1e-10)
    # the image mean is over the unique images: with copies it would be the same here, so check a skewed store
    skew_img = np.vstack([img, np.repeat(img[:1], 9, axis=0)])
    skew_txt = np.vstack([txt, np.repeat(txt[:1], 9, axis=0)])
    skewed = cg.centroid_shift(skew_img, skew_txt, alphas=alphas, repetitions=1)
    np.testing.assert_allclose(skewed.loss, once.loss, rtol=1e-10)


@pytest.mark.realdata
def test_flickr8k_all_captions_match_one_caption_per_image(realdata):
    import pandas as pd

    folder = realdata / "flickr8k_100x5_clip_vitb32"
    img = np.load(folder / "image_embeddings.npy")  # (500, 512): each image stored once per caption
    txt = np.load(folder / "text_embeddings.npy")
    image_id = pd.read_csv(folder / "metadata.csv")["image_id"].to_numpy()
    first = np.unique(image_id, return_index=True)[1]  # one caption per image
    every = cg.centroid_shift(img, txt)
    one = cg.centroid_shift(img[first], txt[first], repetitions=1)
    assert (every.n_images, every.n_pairs, every.pairs_used, every.repetitions) == (100, 500, 100, 5)
    # within the noise of the caption draw: one draw against the mean of 5 has variance σ² (1 + 1/5)
    noise = 3 * every.loss_std * np.sqrt(1.2)
    assert np.all(np.abs(every.loss - one.loss) <= noise), (every.loss - one.loss, noise)
    # and the shape of the curve: the change from α = 0 and where it is lowest
    assert np.max(np.abs(every.change("loss") - one.change("loss"))) < 0.06
    assert abs(every.loss_argmin - one.loss_argmin) <= 0.1 + 1e-9
    assert not every.at_edge("loss") and -0.2 <= every.loss_argmin <= 0.2
    # what the merge of the copies prevents: rows that differ by 1e-9 are 500 "images" in one batch, each
    # image's other captions its negatives -- the minimum moves far from α = 0 and the loss rises by > 1 nat
    jitter = img.astype(np.float64) + np.random.default_rng(0).normal(scale=1e-9, size=img.shape)
    biased = cg.centroid_shift(jitter, txt, repetitions=1)
    assert biased.n_images == 500 and biased.loss_argmin <= -0.3
    assert biased.loss[10] - every.loss[10] > 1.0


def test_wang_isola_metrics_at_every_alpha_match_the_direct_metric():
    img, txt, _ = cg.double_ellipsoid(150, 16, seed=9)
    img, txt = img.astype(np.float64), txt.astype(np.float64)
    alphas = [-1.0, 0.0, 0.5, 1.0]
    res = cg.centroid_shift(img, txt, alphas=alphas, repetitions=1)
    m = img.mean(axis=0)
    for i, a in enumerate(alphas):
        direct = cg.alignment_uniformity(img - a * m, txt, max_rows=None)
        assert res.wang_isola_alignment[i] == pytest.approx(direct.alignment, rel=1e-9)
        assert res.wang_isola_uniformity_image[i] == pytest.approx(direct.uniformity_image, rel=1e-9)
    assert res.wang_isola_uniformity_text == pytest.approx(direct.uniformity_text, rel=1e-9)


def test_default_grid_and_kl():
    a = default_alphas()
    assert len(a) == 21 and a[0] == -1.0 and a[-1] == 1.0 and a[10] == 0.0
    img, txt, _ = cg.double_ellipsoid(600, 16, seed=7)
    res = cg.centroid_shift(img, img.copy(), repetitions=1)  # identical modalities: same conformity at α = 0
    assert res.conformity_kl[10] == pytest.approx(0.0, abs=1e-12)
    assert res.conformity_kl_estimate[10] == pytest.approx(0.0, abs=1e-12)
    assert res.kl_argmin == 0.0
    assert (res.conformity_kl >= 0).all() and (res.conformity_kl <= res.kl_bound).all()
    frame = res.to_frame()
    assert list(frame.columns[:3]) == ["alpha", "loss", "loss_std"]
    assert {"wang_isola_alignment", "wang_isola_uniformity_image", "conformity_kl_estimate"} <= set(frame.columns)
    d = res.to_dict()
    keys = {"alpha", "loss", "alignment", "uniformity", "wang_isola_alignment", "wang_isola_uniformity_image",
            "conformity_kl", "conformity_kl_estimate", "argmin_loss", "argmin_at_edge", "pairs_used", "repetitions"}
    assert keys <= set(d)
    assert len(d["loss"]) == 21 and d["temperature"] == 0.01 and d["argmin_loss"] == res.loss_argmin


def test_kl_uses_histograms_on_one_shared_grid(rng):
    img, txt = rng.normal(size=(300, 5)) + 2, rng.normal(size=(300, 5)) + 1
    res = cg.centroid_shift(img, txt, alphas=[0.0, 0.5], kl_bins=10, kl_pseudo_count=0.5, repetitions=1)

    def conf(x):
        u = unit(x)
        return (u @ u.sum(0) - 1) / (len(u) - 1)

    def estimate_unit(x):
        u = unit(x)
        c = u.mean(0)
        return u @ c / np.linalg.norm(c)

    def kl(image_values, text_values):
        lo = min(min(c.min() for c in image_values), text_values.min())
        hi = max(max(c.max() for c in image_values), text_values.max())
        edges = np.linspace(lo, hi, 11)
        out = []
        for values in image_values:
            p = np.histogram(values, edges)[0] + 0.5
            q = np.histogram(text_values, edges)[0] + 0.5
            p, q = p / p.sum(), q / q.sum()
            out.append(np.sum(p * np.log(p / q)))
        return np.array(out)

    m = img.mean(0)
    shifted = [img - a * m for a in (0.0, 0.5)]
    np.testing.assert_allclose(res.conformity_kl, kl([conf(x) for x in shifted], conf(txt)), rtol=1e-10)
    np.testing.assert_allclose(
        res.conformity_kl_estimate, kl([estimate_unit(x) for x in shifted], estimate_unit(txt)), rtol=1e-10
    )


def test_kl_bound_is_log_2n_plus_1_and_reached_by_disjoint_samples():
    from clipgeo.analyzers._centroid_shift import _kl_curve, kl_bound

    assert kl_bound(500, 500, 64, 0.5) == pytest.approx(np.log(1001), rel=1e-12)
    p, q = np.zeros(500), np.ones(500)  # all of P in the first bin, all of Q in the last
    value = _kl_curve(p[None, :], q, 64, 0.5)[0]
    assert value <= kl_bound(500, 500, 64, 0.5)
    assert value > 0.9 * kl_bound(500, 500, 64, 0.5)  # the smoothing keeps 6 % of P elsewhere


def test_minimum_at_the_edge_of_the_grid_is_flagged():
    img, txt, _ = cg.double_ellipsoid(200, 16, seed=5)
    inside = cg.centroid_shift(img, txt, repetitions=1)
    edge = cg.centroid_shift(img, txt, alphas=[0.6, 0.8, 1.0], repetitions=1)
    i = int(np.argmin(edge.loss))
    assert edge.to_dict()["argmin_at_edge"] == (i in (0, 2))
    assert inside.to_dict()["argmin_at_edge"] == (int(np.argmin(inside.loss)) in (0, 20))
    np.testing.assert_allclose(inside.change("loss")[10], 0.0)


def test_bad_parameters(rng):
    x = rng.normal(size=(10, 3))
    with pytest.raises(InputError, match="temperature"):
        cg.centroid_shift(x, x, temperature=0)
    with pytest.raises(InputError, match="alphas"):
        cg.centroid_shift(x, x, alphas=[np.nan])
    with pytest.raises(InputError, match="one point"):
        cg.centroid_shift(x, x, alphas=[0.5])
    with pytest.raises(InputError, match="one point"):
        cg.centroid_shift(x, x, alphas=[0.5, 0.5])
    with pytest.raises(InputError, match="image_index"):
        cg.centroid_shift(x, x[:7])
    with pytest.raises(InputError, match="image_index"):
        cg.centroid_shift(x, x, image_index=np.full(10, 10))
    with pytest.raises(InputError, match="at least 2 images"):
        cg.centroid_shift(x, x, image_index=np.r_[np.zeros(5, int), -np.ones(5, int)])
    with pytest.raises(InputError, match="repetitions"):
        cg.centroid_shift(x, x, repetitions=0)


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
