"""Mergeable statistics of clipgeo.stream: known answers, merge == one shot, histogram bounds."""

from __future__ import annotations

import numpy as np
import pytest

from clipgeo import analyzers as az
from clipgeo.stream._histogram import FEATURE_BLOCK, FeatureHistograms, histogram_separability
from clipgeo.stream._moments import CentredMoments, Comoments, ModalityMoments, PairSums, Scratch, tree_merge
from clipgeo.stream._sample import cutoff, row_keys, smallest_keys
from clipgeo.validation import unit_rows


def _planted(rng, n=1500, d=12, offset=3.0):
    """Rows far from the origin with a tilted covariance, a zero row and a few float16-like ties."""
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    x = rng.normal(size=(n, d)) @ a + offset * rng.normal(size=d)
    x[7] = 0.0  # a zero row: its unit row is zero, as in the analyzers
    return x


def _split(x, sizes):
    out, start = [], 0
    for s in sizes:
        out.append(x[start:start + s])
        start += s
    out.append(x[start:])
    return out


def test_modality_moments_merge_equals_one_shot_and_numpy(rng):
    x = _planted(rng)
    shards = _split(x, [1, 0, 333, 17, 600])  # uneven, with an empty and a one-row shard
    merged = tree_merge([ModalityMoments.from_batch(s) for s in shards])
    sequential = ModalityMoments.empty(x.shape[1])
    for s in reversed(shards):
        sequential = sequential.merge(ModalityMoments.from_batch(s))
    one = ModalityMoments.from_batch(x)
    u = unit_rows(x)
    norms = np.linalg.norm(x, axis=1)
    for m in (merged, sequential):
        assert m.n == len(x)
        np.testing.assert_allclose(m.mean, one.mean, rtol=1e-12, atol=1e-12 * np.abs(one.mean).max())
        np.testing.assert_allclose(m.scatter, one.scatter, rtol=1e-12, atol=1e-12 * np.abs(one.scatter).max())
        np.testing.assert_allclose(m.unit_scatter, one.unit_scatter, rtol=1e-12, atol=1e-12 * np.abs(one.unit_scatter).max())
        assert m.norm.mean == pytest.approx(one.norm.mean, rel=1e-12)
        assert m.norm.m2 == pytest.approx(one.norm.m2, rel=1e-12)
    # the NumPy definitions (SPEC: ddof = 1, float64)
    np.testing.assert_allclose(merged.covariance, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.unit_mean, u.mean(axis=0), rtol=1e-12, atol=1e-14)
    assert merged.norm.std == pytest.approx(norms.std(ddof=1), rel=1e-12)
    np.testing.assert_array_equal(merged.minimum, x.min(axis=0))
    np.testing.assert_array_equal(merged.maximum, x.max(axis=0))
    assert merged.cone == pytest.approx(az.mean_pairwise_cosine(u), rel=1e-10)


def test_second_pass_gives_the_analyzers_conformity_and_thin_shell(rng):
    x = _planted(rng, n=800)
    first = tree_merge([ModalityMoments.from_batch(s) for s in _split(x, [100, 250, 3])])
    second = tree_merge([CentredMoments.from_batch(s, first) for s in _split(x, [400, 1, 50])])
    conf = az.conformity(x, "mean")
    r, a, b = second.conformity_raw.fit()
    ur, ua, ub = second.conformity_unit.fit()
    assert second.conformity_raw.mean_y == pytest.approx(conf.mean, rel=1e-10)
    assert (r, a, b) == pytest.approx((conf.pearson, conf.slope, conf.intercept), rel=1e-9)
    assert (ur, ua, ub) == pytest.approx((conf.unit_pearson, conf.unit_slope, conf.unit_intercept), rel=1e-9)
    shell = az.thin_shell(x)
    assert second.centered_norm.mean == pytest.approx(shell.mean_centered_norm, rel=1e-12)
    assert second.centered_norm.std == pytest.approx(shell.std_centered_norm, rel=1e-10)


def test_comoments_known_line():
    x = np.arange(10.0)
    y = 3 * x - 2
    c = Comoments.from_values(x[:4], y[:4]).merge(Comoments.from_values(x[4:], y[4:]))
    assert c.fit() == pytest.approx((1.0, 3.0, -2.0))


def test_pair_sums_known_answer():
    u = np.array([[1.0, 0.0], [0.0, 2.0]])
    v = np.array([[0.0, 5.0], [0.0, 1.0]])  # cos 0 and 1; ||û - v̂|| sqrt(2) and 0
    s = PairSums.from_batch(u[:1], v[:1]).merge(PairSums.from_batch(u[1:], v[1:]))
    assert (s.n, s.cosine) == (2, pytest.approx(1.0))
    assert s.distance == pytest.approx(np.sqrt(2))
    assert s.squared_distance == pytest.approx(2.0)


def test_histogram_accuracy_and_auc_within_the_stated_bound(rng):
    n, d = 3000, 6
    img = rng.normal(size=(n, d))
    txt = rng.normal(size=(n + 321, d))
    img[:, 0] += 1.5  # a partly separating feature
    img[:, 1] += 40.0  # a perfectly separating one, far out: its bins are wide
    txt[:, 2] = np.round(txt[:, 2], 1)  # ties
    exact = az.feature_separability(img, txt, linear_cv=False)
    lo = np.minimum(img.min(0), txt.min(0))
    hi = np.maximum(img.max(0), txt.max(0))
    for bins in (16, 256, 2048):
        hi_parts = [FeatureHistograms.from_batch(p, lo, hi, bins) for p in np.array_split(img, 5)]
        ht_parts = [FeatureHistograms.from_batch(p, lo, hi, bins) for p in np.array_split(txt, 3)]
        hi_, ht = tree_merge(hi_parts), tree_merge(ht_parts)
        np.testing.assert_array_equal(hi_.counts, FeatureHistograms.from_batch(img, lo, hi, bins).counts)
        h = histogram_separability(hi_, ht)
        gap = exact.threshold_accuracy - h.threshold_accuracy
        assert (gap >= -1e-12).all(), "a cut at a bin edge is a real threshold: never above the exact optimum"
        assert (gap <= h.accuracy_bound + 1e-12).all()
        assert (np.abs(exact.auc - h.auc) <= h.auc_bound + 1e-12).all()
    assert h.accuracy_bound[0] < 0.01 and h.auc_bound[0] < 0.01  # the bound is useful at the default grid size


def test_histogram_value_at_the_top_edge_falls_in_the_last_bin():
    h = FeatureHistograms.from_batch(np.array([[0.0], [1.0], [0.5]]), np.array([0.0]), np.array([1.0]), 4)
    np.testing.assert_array_equal(h.counts, [[1, 0, 1, 1]])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_histogram_counts_are_the_bin_index_of_every_value(rng, dtype):
    """``add`` (blocks of features, per-feature counts) puts every value in :meth:`bin_index`'s bin, float64
    input too; 150 features span three blocks, the last one partial."""
    assert 150 > 2 * FEATURE_BLOCK
    x = (rng.normal(size=(3000, 150)) * np.resize([1, 5, 0.01, 100, 1, 1, 1], 150)).astype(dtype)
    x[:, 4] = x[0, 4]  # a constant feature: zero width, every value in bin 0
    lo, hi = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
    bins = 64
    h = FeatureHistograms.empty(lo, hi, bins)
    idx = h.bin_index(x)
    expected = np.stack([np.bincount(idx[:, k], minlength=bins) for k in range(x.shape[1])])
    np.testing.assert_array_equal(FeatureHistograms.from_batch(x, lo, hi, bins).counts, expected)
    np.testing.assert_array_equal(FeatureHistograms.from_batch(x.astype(np.float64), lo, hi, bins).counts, expected)
    assert expected[4, 0] == len(x)


def test_reused_work_arrays_give_the_same_statistics(rng):
    """Batches of changing size through one Scratch: bitwise the statistics of fresh arrays, inputs untouched."""
    x = _planted(rng, n=700).astype(np.float16)
    before = x.copy()
    scratch = Scratch()
    first = ModalityMoments.from_batch(x)
    for rows in (slice(0, 300), slice(300, 310), slice(310, 700), slice(0, 700)):
        a = ModalityMoments.from_batch(x[rows], unit_covariance=False)
        b = ModalityMoments.from_batch(x[rows], unit_covariance=False, scratch=scratch)
        for name in ("mean", "scatter", "unit_mean", "minimum", "maximum"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        pa_, pb = PairSums.from_batch(x[rows], x[rows][::-1]), PairSums.from_batch(x[rows], x[rows][::-1], scratch=scratch)
        assert pa_ == pb
        x64 = x[rows].astype(np.float64)
        c, values = CentredMoments.from_batch_with_values(x64, first)
        d, values_d = CentredMoments.from_batch_with_values(x64.copy(), first, overwrite=True)
        assert c == d
        np.testing.assert_array_equal(values, values_d)
    np.testing.assert_array_equal(x, before)
    assert scratch.take("x", (5, x.shape[1])).shape == (5, x.shape[1])


def test_batch_statistics_leave_their_input_unchanged(rng):
    x = _planted(rng, n=300)
    before = x.copy()
    first = ModalityMoments.from_batch(x)
    ModalityMoments.from_batch(x, unit_covariance=False)
    CentredMoments.from_batch_with_values(x, first)
    PairSums.from_batch(x, x[::-1].copy())
    FeatureHistograms.from_batch(x, first.minimum, first.maximum, 16)
    np.testing.assert_array_equal(x, before)


def test_unit_mean_without_the_unit_covariance_is_the_same(rng):
    x = _planted(rng, n=500)
    a, b = ModalityMoments.from_batch(x), ModalityMoments.from_batch(x, unit_covariance=False)
    np.testing.assert_allclose(b.unit_mean, a.unit_mean, rtol=1e-13, atol=1e-15)
    assert b.unit_sq == pytest.approx(a.unit_sq, rel=1e-13) and b.unit_scatter is None
    np.testing.assert_array_equal(b.scatter, a.scatter)


def test_sample_keys_are_split_invariant_and_exact_in_size():
    n, size = 10_000, 700
    keys = row_keys(np.arange(n), seed=3, stream="pair")
    whole = cutoff([keys], size)
    parts = np.array_split(np.arange(n), 7)
    split = cutoff([smallest_keys(row_keys(p, 3, "pair"), size) for p in parts], size, total=n)
    assert whole == split
    assert int((keys <= whole).sum()) == size
    assert cutoff([keys[:10]], size) is None  # fewer candidates than asked: keep all
    other = row_keys(np.arange(n), seed=4, stream="pair")
    assert not np.array_equal(keys, other)
    # uniform: the chosen rows are spread over the whole range
    chosen = np.flatnonzero(keys <= whole)
    assert 0.4 * n < chosen.mean() < 0.6 * n
