"""Bootstrap intervals (SPEC §12): each draw equals the analyzers run on the resampled rows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.analyzers import _bootstrap as bs
from clipgeo.errors import InputError
from clipgeo.synthetic import double_ellipsoid


@pytest.fixture
def pairs():
    img, txt, _ = double_ellipsoid(120, 16, seed=3, dtype=np.float64)
    return img, txt


def _resampled(x, counts):
    return np.repeat(x, counts.astype(int), axis=0)


def test_a_draw_equals_the_analyzers_on_the_resampled_rows(pairs, rng):
    img, txt = pairs
    w = rng.multinomial(len(img), np.full(len(img), 1 / len(img)), size=2).astype(float)
    for x in (img, txt):
        draw = bs._modality_draws(x, w)
        for b in range(2):
            xr = _resampled(x, w[b])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert draw.offset_ratio[b] == pytest.approx(cg.ellipsoid_offset(xr).ratio, rel=1e-9)
                assert draw.relative_thickness[b] == pytest.approx(cg.thin_shell(xr).relative_thickness, rel=1e-9)
                conf = cg.conformity(xr, "mean")
            assert draw.conformity_mean[b] == pytest.approx(conf.mean, rel=1e-9)
            assert draw.conformity_pearson[b] == pytest.approx(conf.pearson, rel=1e-9)


def test_gap_metrics_and_pair_conformity_draws_equal_the_analyzers(pairs):
    img, txt = pairs
    res = bs.bootstrap(img, txt, n_boot=3, seed=5)
    w_img, _ = bs.resample_weights(len(img), np.arange(len(txt)), 3, np.random.default_rng(5))
    for b in range(3):
        ir, tr = _resampled(img, w_img[b]), _resampled(txt, w_img[b])
        gm = cg.gap_metrics(ir, tr)
        assert res.draws["modality_gap.l2_centroid_distance"][b] == pytest.approx(gm.l2m, rel=1e-9)
        assert res.draws["gap_metrics.l2i"][b] == pytest.approx(gm.l2i, rel=1e-9)
        assert res.draws["gap_metrics.rmg"][b] == pytest.approx(gm.rmg, rel=1e-9)
        assert res.draws["pair_conformity.pearson"][b] == pytest.approx(cg.pair_conformity(ir, tr).pearson, rel=1e-9)


def test_weighted_threshold_accuracy_equals_the_separability_analyzer(pairs, rng):
    img, txt = pairs
    w = rng.multinomial(len(img), np.full(len(img), 1 / len(img)), size=1).astype(float)
    pooled = np.vstack([img, txt])
    is_image = np.r_[np.ones(len(img), bool), np.zeros(len(txt), bool)]
    wp = np.hstack([w, w])
    ref = cg.feature_separability(_resampled(img, w[0]), _resampled(txt, w[0]), linear_cv=False)
    for f in (0, 1, 5):
        got = bs.weighted_best_accuracy(pooled[:, f], is_image, wp)[0]
        assert got == pytest.approx(ref.threshold_accuracy[f], abs=1e-12)


def test_pair_shift_terms_average_to_the_centroid_shift_loss(pairs):
    img, txt = pairs
    alphas = np.array([-0.5, 0.0, 0.5])
    terms = bs.pair_shift_terms(img, txt, alphas, 0.05, batch_size=1024, seed=0)  # one batch of all pairs
    ref = cg.centroid_shift(img, txt, alphas, 0.05, batch_size=1024)
    np.testing.assert_allclose(terms.mean(axis=0), ref.loss, rtol=1e-9)


def test_intervals_are_seeded_and_bracket_the_estimate(pairs):
    img, txt = pairs
    sep = cg.feature_separability(img, txt, linear_cv=False)
    a = bs.bootstrap(img, txt, n_boot=100, seed=1, separability_features=sep.ranking[:5])
    b = bs.bootstrap(img, txt, n_boot=100, seed=1, separability_features=sep.ranking[:5])
    for name, iv in a.intervals.items():
        assert (iv.low, iv.high) == (b.intervals[name].low, b.intervals[name].high)
        assert iv.low <= iv.high and iv.n == 100
    gap = cg.modality_gap(img, txt).l2_centroid_distance
    iv = a.interval("modality_gap.l2_centroid_distance")
    assert iv.low < gap < iv.high
    assert "centroid_shift.loss_argmin" in a.intervals and "separability.best_threshold_accuracy" in a.notes
    assert a.to_dict()["intervals"]["ellipsoid_offset.image.ratio"]["n_boot"] == 100


def test_intervals_shrink_with_more_rows():
    def width(n):
        img, txt, _ = double_ellipsoid(n, 16, seed=0, dtype=np.float64)
        iv = bs.bootstrap(img, txt, n_boot=60, seed=0).interval("ellipsoid_offset.image.ratio")
        return iv.high - iv.low

    assert width(1600) < 0.7 * width(200)  # ~ 1/sqrt(n): a factor 2.8 expected


def test_captions_follow_their_image():
    link = np.array([0, 0, 1, -1, -1])
    w_img, w_txt = bs.resample_weights(2, link, 50, np.random.default_rng(0))
    np.testing.assert_array_equal(w_txt[:, 0], w_img[:, 0])
    np.testing.assert_array_equal(w_txt[:, 1], w_img[:, 0])
    np.testing.assert_array_equal(w_txt[:, 2], w_img[:, 1])
    np.testing.assert_array_equal(w_txt[:, 3:].sum(axis=1), 2)  # unpaired captions resampled among themselves


def test_bad_n_boot():
    with pytest.raises(InputError, match="n_boot must be at least 2"):
        bs.bootstrap(np.ones((3, 2)), n_boot=1)


def test_chunked_draws_equal_one_chunk(pairs, monkeypatch):
    img, txt = pairs
    whole = bs.bootstrap(img, txt, n_boot=7, seed=4)
    monkeypatch.setattr(bs, "_CHUNK_ELEMENTS", 2 * len(img))  # two draws per chunk
    chunked = bs.bootstrap(img, txt, n_boot=7, seed=4)
    assert set(whole.draws) == set(chunked.draws)
    for key, values in whole.draws.items():
        np.testing.assert_allclose(chunked.draws[key], values, rtol=1e-12, err_msg=key)
