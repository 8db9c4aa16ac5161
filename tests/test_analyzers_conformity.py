"""Conformity (SPEC §7): brute force, chunking, the exact unit-mean identity, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.analyzers import mean_conformity, pairwise_conformity
from clipgeo.errors import InputError


def brute_conformity(x: np.ndarray) -> np.ndarray:
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    gram = u @ u.T
    return (gram.sum(axis=1) - np.diag(gram)) / (len(x) - 1)


def test_exact_matches_brute_force(rng):
    x = rng.normal(size=(300, 24)) + 0.7
    res = cg.conformity(x)
    assert res.method == "exact"
    np.testing.assert_allclose(res.values, brute_conformity(x), atol=1e-6)
    assert res.mean == pytest.approx(brute_conformity(x).mean(), abs=1e-6)


def test_chunked_equals_unchunked(rng):
    u = rng.normal(size=(257, 16)) + 1
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    one_block = pairwise_conformity(u, chunk_bytes=1 << 30)
    tiny_blocks = pairwise_conformity(u, chunk_bytes=4 * 257 * 7)  # 7 rows per block, last block shorter
    row_by_row = pairwise_conformity(u, chunk_bytes=1)
    np.testing.assert_allclose(tiny_blocks, one_block, atol=1e-6)
    np.testing.assert_allclose(row_by_row, one_block, atol=1e-6)


def test_mean_method_gives_the_same_numbers(rng):
    x = rng.normal(size=(400, 12)) * 2 + 1
    exact, fast = cg.conformity(x, "exact"), cg.conformity(x, "mean")
    assert fast.method == "mean"
    np.testing.assert_allclose(fast.values, brute_conformity(x), atol=1e-12)
    np.testing.assert_allclose(exact.values, fast.values, atol=1e-6)
    assert exact.pearson == pytest.approx(fast.pearson, abs=1e-6)


def test_unit_mean_estimate_is_exactly_linear(rng):
    x = rng.normal(size=(500, 10)) + 0.5
    n = len(x)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    ubar = np.linalg.norm(u.mean(0))
    res = cg.conformity(x, "mean")
    assert res.unit_pearson == pytest.approx(1.0, abs=1e-12)
    assert res.unit_slope == pytest.approx(n * ubar / (n - 1), rel=1e-10)
    assert res.unit_intercept == pytest.approx(-1 / (n - 1), rel=1e-8)
    np.testing.assert_allclose(res.values, res.unit_slope * res.unit_estimate + res.unit_intercept, atol=1e-12)


def test_raw_mean_estimate_fit_matches_least_squares(rng):
    x = rng.normal(size=(200, 8)) * np.linspace(0.2, 3, 8) + 1
    res = cg.conformity(x)
    m = x.mean(0)
    est = x @ m / (np.linalg.norm(x, axis=1) * np.linalg.norm(m))
    np.testing.assert_allclose(res.estimate, est, rtol=1e-12)
    slope, intercept = np.polyfit(est, res.values, 1)
    assert res.slope == pytest.approx(slope, rel=1e-8)
    assert res.intercept == pytest.approx(intercept, rel=1e-6, abs=1e-10)
    assert res.pearson == pytest.approx(np.corrcoef(est, res.values)[0, 1], rel=1e-10)


def test_double_ellipsoid_conformity_is_predicted_by_the_raw_mean():
    img, _, _ = cg.double_ellipsoid(4000, 64, seed=5)
    res = cg.conformity(img)
    assert res.pearson > 0.999  # the paper's r = 0.9998 holds for off-centre ellipsoids


def test_chunked_sum_never_holds_an_n_by_n_matrix(rng):
    n, d = 3000, 8
    u = rng.normal(size=(n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    tracemalloc.start()
    pairwise_conformity(u, chunk_bytes=1 << 20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.1 * n * n * 4  # a float32 N x N matrix would be 36 MB; blocks are 1 MB


def test_max_rows_switches_to_the_identity(rng):
    x = rng.normal(size=(50, 4)) + 1
    res = cg.conformity(x, "exact", max_rows=20)
    assert res.method == "mean"
    np.testing.assert_allclose(res.values, brute_conformity(x), atol=1e-12)
    assert cg.conformity(x, "exact", max_rows=None).method == "exact"


def test_extremes_and_frame(rng):
    x = rng.normal(size=(30, 5)) + 1
    res = cg.conformity(x, "mean")
    top, bottom = res.extremes(3)
    order = np.argsort(res.values)
    assert list(top) == list(order[::-1][:3]) and list(bottom) == list(order[:3])
    assert list(res.to_frame().columns) == ["row", "conformity", "estimate_raw", "estimate_unit"]
    with pytest.raises(InputError, match="unknown conformity method"):
        cg.conformity(x, "median")


def test_identity_helper_matches_brute_force(rng):
    x = rng.normal(size=(20, 3))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(mean_conformity(u), brute_conformity(x), atol=1e-12)


def test_names_and_the_notebook_estimate(rng):
    x = rng.normal(size=(200, 8)) + 1.5  # a narrow cone: positive conformity
    res = cg.conformity(x)
    np.testing.assert_array_equal(res.exact, res.values)
    np.testing.assert_array_equal(res.estimate_raw, res.estimate)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    c = u.mean(0)
    np.testing.assert_allclose(res.estimate_unit, u @ c / np.linalg.norm(c), rtol=1e-12)
    # the notebook's "conformity" reads higher than the exact value and ranks the rows identically
    d = res.to_dict()
    assert d["estimate_unit_excess"] == pytest.approx(res.estimate_unit.mean() / res.values.mean() - 1, rel=1e-12)
    assert d["estimate_unit_excess"] > 0
    np.testing.assert_array_equal(np.argsort(res.estimate_unit), np.argsort(res.values))
    assert set(d["estimators"]) == {"conformity", "estimate_raw", "estimate_unit"}


def test_extremes_drop_exact_duplicates(rng):
    x = rng.normal(size=(10, 4)) + 1
    stored = np.repeat(x, 3, axis=0)  # each row stored three times (one image per caption)
    res = cg.conformity(stored)
    labels = np.repeat([f"img{i}" for i in range(10)], 3)
    top, bottom = res.extremes(4, labels=labels)
    assert len(set(labels[top])) == 4 and len(set(labels[bottom])) == 4
    plain_top, _ = res.extremes(4)
    assert len(set(labels[plain_top])) < 4  # without labels the copies fill the list
