"""Memory of the analyzers on float32 rows: no full-size float64 copies, and the same numbers as float64 input.

numpy reports its array allocations to :mod:`tracemalloc`.  Each analyzer runs on n = 1,500 and on
n = 4,500 float32 pairs (d = 64, blocks of 256 rows), and the growth of its traced peak per added row
is compared with the size of one row: a float64 copy of one modality costs 8 d = 512 bytes per row,
so a bound of 256 bytes per row fails as soon as one full-size float64 copy comes back.  The
fixed costs (d × d matrices, batches of a fixed size) cancel in the difference.
"""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import clipgeo.analyzers as az
from clipgeo import validation
from clipgeo.analyzers import _blocks
from clipgeo.analyzers._conformity import row_conformity
from clipgeo.report import analyze
from clipgeo.store import EmbeddingSet, StoreMeta
from clipgeo.synthetic import double_ellipsoid
from clipgeo.validation import unit_rows

D = 64
SMALL, LARGE = 1500, 4500
#: one float64 copy of one modality, per row
COPY = 8 * D

ALPHAS = [-0.5, 0.0, 0.5]

#: analyzer -> (call, the most bytes per added row its peak may grow by, and why)
CASES = {
    "thin_shell": (lambda i, t, link: az.thin_shell(i), COPY // 2),  # two (n,) results
    "ellipsoid_offset": (lambda i, t, link: az.ellipsoid_offset(i), COPY // 2),
    "conformity": (lambda i, t, link: az.conformity(i, "mean"), COPY // 2),  # three (n,) results
    "modality_gap": (lambda i, t, link: az.modality_gap(i, t, pairs=(link, link)), COPY // 2),
    "gap_metrics": (lambda i, t, link: az.gap_metrics(i, t, link), COPY // 2),
    "pair_conformity": (lambda i, t, link: az.pair_conformity(i, t, link), COPY // 2),
    "alignment_uniformity": (lambda i, t, link: az.alignment_uniformity(i, t, max_rows=128), COPY // 2),
    "cosine_gradient": (
        lambda i, t, link: az.cosine_gradient(i, t, ALPHAS, image_index=link, n_samples=32, max_negatives=64),
        COPY // 2,
    ),
    # one float64 copy of the rows, centred in place, for the d × d product
    "off_diagonal_dominance": (lambda i, t, link: az.off_diagonal_dominance(i), COPY + COPY // 2),
    "pca": (lambda i, t, link: az.pca_projection(i, t), COPY + COPY // 2),
    # the unique image rows in float64 (the sweep's products) and the per-α conformity curves
    "centroid_shift": (
        lambda i, t, link: az.centroid_shift(
            i, t, ALPHAS, image_index=link, batch_size=64, repetitions=1, uniformity_rows=128
        ),
        COPY + COPY // 2,
    ),
    # the Ledoit-Wolf fits sum blocks of centred rows: only the folds' row indices and the per-row distances
    "mahalanobis_shell": (lambda i, t, link: az.mahalanobis_shell(i), COPY // 2),
    # the whitened rows (n, d) and the Gaussianity tests' temporaries for 32 columns at a time
    "whitening": (lambda i, t, link: az.whitening(i), 4 * COPY),
    # the pooled image+text rows of 16 columns at a time, sorted, with their counts (~14 such arrays)
    "separability": (lambda i, t, link: az.feature_separability(i, t, linear_cv=False), 8 * COPY),
}


def _pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img, txt, _ = double_ellipsoid(n, D, seed=seed)
    return img.astype(np.float32), txt.astype(np.float32), np.arange(n)


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def data():
    return _pairs(SMALL), _pairs(LARGE)


@pytest.mark.parametrize("name", list(CASES))
def test_peak_grows_less_than_a_float64_copy_per_row(name, data, monkeypatch):
    monkeypatch.setattr(_blocks, "BLOCK_ROWS", 256)
    monkeypatch.setattr(validation, "BLOCK_ROWS", 256)  # the unit-norm check's blocks
    call, bound = CASES[name]
    small, large = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(*small)  # imports and caches outside the measurement
        growth = (_peak(lambda: call(*large)) - _peak(lambda: call(*small))) / (LARGE - SMALL)
    assert growth < bound, f"{name}: peak grows by {growth:.0f} bytes per row (bound {bound}, float64 copy {COPY})"


def _set(img: np.ndarray, txt: np.ndarray, link: np.ndarray) -> EmbeddingSet:
    n_i, n_t = len(img), len(txt)
    return EmbeddingSet(
        image=img,
        text=txt,
        image_ids=np.arange(n_i).astype(str),
        text_ids=np.arange(n_t).astype(str),
        image_paths=np.array([f"{i}.jpg" for i in range(n_i)], dtype=object),
        captions=np.array([f"caption {j % 13} of {j % 5}" for j in range(n_t)], dtype=object),
        text_image_index=link,
        meta=StoreMeta(model="m", dim=img.shape[1]),
    )


def _numbers(report) -> dict:
    out = report.to_dict()
    out.pop("timings", None)
    return out


@pytest.mark.parametrize("layout", ["identity", "duplicates"])
def test_float32_rows_give_the_numbers_of_their_float64_copy(layout, monkeypatch):
    # blocks of 64 rows: several blocks even on a small set, so the block boundaries are exercised
    monkeypatch.setattr(_blocks, "BLOCK_ROWS", 64)
    img, txt, link = _pairs(300, seed=3)
    if layout == "duplicates":  # 100 images stored 3 times (once per caption), some captions without an image
        img = np.repeat(img[:100], 3, axis=0)
        link = link.copy()
        link[::7] = -1
    options = dict(conformity="mean", linear_cv=False, bootstrap=0, alphas=ALPHAS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r32 = analyze(_set(img, txt, link), **options)
        r64 = analyze(_set(img.astype(np.float64), txt.astype(np.float64), link), **options)
    assert _numbers(r32) == _numbers(r64)
    for m, values in r32.top_feature_values.items():
        for k, v in values.items():
            assert v.dtype == np.float64
            np.testing.assert_array_equal(v, r64.top_feature_values[m][k])


def test_blocked_statistics_are_bitwise_those_of_one_float64_copy(monkeypatch):
    monkeypatch.setattr(_blocks, "BLOCK_ROWS", 100)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1234, 7)) * 3 + 1).astype(np.float32)
    x64 = x.astype(np.float64)
    rows = rng.permutation(1234)[:777]
    assert np.array_equal(_blocks.column_sums(x), x64.sum(axis=0))
    assert np.array_equal(_blocks.column_mean(x, rows=rows), x64[rows].mean(axis=0))
    assert np.array_equal(_blocks.column_var(x, ddof=1), x64.var(axis=0, ddof=1))
    assert np.array_equal(_blocks.row_norms(x, x64.mean(axis=0)), np.linalg.norm(x64 - x64.mean(axis=0), axis=1))
    values, _ = row_conformity(x)
    assert np.array_equal(values, az.mean_conformity(unit_rows(x64)))


def test_row_groups_match_numpy_unique():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((50, 5)).astype(np.float32)
    x = base[rng.integers(0, 50, size=400)]  # many repeated rows
    x[10] = 0.0
    x[11] = -0.0  # np.unique calls -0.0 and 0.0 equal
    _, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group, firsts = _blocks.row_groups(x)
    np.testing.assert_array_equal(group, rank[inverse.reshape(-1)])
    np.testing.assert_array_equal(firsts, first[order])
