"""clipgeo.validation: the one place inputs are checked; messages name the parameter and the fix."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pytest

from clipgeo.errors import ClipgeoError, InputError
from clipgeo.validation import (
    UnitNormWarning,
    check_count,
    check_embeddings,
    check_fraction,
    check_pair,
    check_pair_index,
    check_positive,
    check_scalar,
    rows_are_unit,
    to_numpy,
    unit_rows,
)


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, ClipgeoError) and isinstance(info.value, ValueError)
    text = str(info.value)
    assert "\n" not in text and "--" not in text  # one line, parameter names (never CLI flags)
    return text


def test_check_scalar_types_bounds_and_boundaries():
    assert check_scalar(3, "k", target_type=numbers.Integral, min_val=1) == 3
    assert check_scalar(np.int64(3), "k", target_type=numbers.Integral) == 3
    assert check_scalar(0.5, "p", min_val=0, max_val=1, include_boundaries="neither") == 0.5
    assert check_scalar(1.0, "p", min_val=0, max_val=1) == 1.0
    assert "k must be an integer, got 1.5 (float)" in _message(check_scalar, 1.5, "k", target_type=numbers.Integral)
    assert "bool" in _message(check_scalar, True, "k", target_type=numbers.Integral)
    assert "NaN" in _message(check_scalar, float("nan"), "x")
    assert "p must be > 0 and <= 1, got 0" in _message(check_scalar, 0, "p", min_val=0, max_val=1, include_boundaries="right")
    assert "< 1" in _message(check_scalar, 1.0, "p", min_val=0, max_val=1, include_boundaries="left")
    assert "'a' (str)" in _message(check_scalar, "a", "x")
    with pytest.raises(ValueError, match="include_boundaries"):
        check_scalar(1, "x", include_boundaries="bad")


def test_positive_fraction_count():
    assert check_positive(np.float32(0.5), "temperature") == 0.5
    assert isinstance(check_positive(2, "t"), float)
    assert "temperature must be a finite number > 0, got -1.0; pass a positive value" == _message(
        check_positive, -1, "temperature"
    )
    for bad in (0, float("inf"), float("nan")):
        assert "temperature" in _message(check_positive, bad, "temperature")
    assert "<= 1" in _message(check_positive, 2, "momentum", upper=1)
    assert "real number" in _message(check_positive, "abc", "t")
    assert "real number" in _message(check_positive, True, "t")

    assert check_fraction(0.0, "dropout") == 0.0
    assert check_fraction(1.0, "weight", closed_right=True) == 1.0
    assert "[0, 1)" in _message(check_fraction, 1.0, "momentum")
    assert "[0, 1]" in _message(check_fraction, -0.1, "weight", closed_right=True)

    assert check_count(np.int64(4), "n") == 4 and check_count(3.0, "n") == 3
    assert "n_clusters must be an integer >= 2, got 1" in _message(check_count, 1, "n_clusters", minimum=2)
    for bad in (True, 2.5, "3", None):
        assert "integer" in _message(check_count, bad, "n")


def test_check_embeddings_float64_by_default_or_dtype_kept():
    x16 = np.ones((3, 2), np.float16)
    out = check_embeddings(x16, "x")
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert check_embeddings(x16, "x", dtype=None) is x16  # the store writes float16 as it came
    assert check_embeddings(np.ones((3, 2), np.int32), "x", dtype=None).dtype == np.float32
    assert check_embeddings(np.zeros((0, 4)), "shard", allow_empty=True).shape == (0, 4)


@pytest.mark.parametrize(
    "bad, kwargs, needle",
    [
        (np.zeros((0, 4)), {}, "shard is empty (0 rows)"),
        (np.zeros((1, 4)), {"min_rows": 2}, "needs at least 2 rows"),
        (np.zeros(4), {}, "x.reshape(1, -1)"),
        (np.zeros((2, 3, 4)), {}, "x[0]"),
        (np.zeros((2, 3, 4)), {"slice_hint": "select FILE:0"}, "select FILE:0"),
        (np.zeros((2, 0)), {}, "0 columns"),
        (np.zeros((2, 3), complex), {}, "complex"),
        (np.array([["a"], ["b"]]), {}, "dtype"),
        (np.zeros((2, 3)), {"dim": 4}, "dimension 3 but 4 was expected"),
        (np.zeros((2, 3)), {"dim": 4, "dim_source": "the other modality"}, "but the other modality has 4"),
        (np.array([[0.0, np.nan], [1.0, 1.0], [np.inf, 0]]), {}, "2 row(s) with NaN or inf (rows 0, 2)"),
    ],
)
def test_check_embeddings_messages(bad, kwargs, needle):
    assert needle in _message(check_embeddings, bad, "shard", **kwargs)


def test_unit_helpers_and_warning():
    rng = np.random.default_rng(0)
    u = unit_rows(rng.normal(size=(20, 4)))
    assert rows_are_unit(u) and rows_are_unit(u.astype(np.float16)) and not rows_are_unit(2 * u)
    assert not rows_are_unit(np.zeros((0, 4)))
    np.testing.assert_array_equal(unit_rows(np.zeros((1, 3))), np.zeros((1, 3)))
    with pytest.warns(UnitNormWarning, match="x rows are already unit-norm"):
        check_embeddings(u, "x", warn_unit=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_embeddings(u, "x")


def test_check_pair():
    rng = np.random.default_rng(0)
    a, b = check_pair(rng.normal(size=(3, 2)), rng.normal(size=(4, 2)).astype(np.float32))
    assert a.dtype == b.dtype == np.float64 and (len(a), len(b)) == (3, 4)
    assert "img has 3 rows but txt has 4" in _message(check_pair, a, b, paired=True)
    assert "image has dimension" not in _message(check_pair, a, np.ones((3, 5)))
    assert "text has dimension 5 but the other modality has 2" in _message(
        check_pair, a, np.ones((3, 5)), names=("image", "text")
    )
    assert "at least 2 rows" in _message(check_pair, a[:1], b)
    assert check_pair(a[:1], b[:1], min_rows=1)[0].shape == (1, 2)


def test_to_numpy_duck_types_tensors():
    class Fake:  # what a CPU tensor offers
        def __init__(self, value):
            self.value = value

        def detach(self):
            return self

        def cpu(self):
            return self

        def numpy(self):
            return self.value

    np.testing.assert_array_equal(to_numpy(Fake(np.eye(2))), np.eye(2))
    np.testing.assert_array_equal(to_numpy([[1, 2]]), np.array([[1, 2]]))


def test_check_pair_index():
    np.testing.assert_array_equal(check_pair_index(None, "image_index", n_image=3, n_text=3), [0, 1, 2])
    got = check_pair_index([0, -1, 2.0], "image_index", n_image=3, n_text=3)
    assert got.dtype == np.int64 and list(got) == [0, -1, 2]
    assert "matched pairs" in _message(check_pair_index, None, "image_index", n_image=2, n_text=3)
    assert "image_index has shape (2,)" in _message(check_pair_index, [0, 1], "image_index", n_image=2, n_text=3)
    assert "image_index[2] = 9 is not an image row (0 … 2" in _message(
        check_pair_index, [0, 1, 9], "image_index", n_image=3, n_text=3
    )
    assert "integer image rows" in _message(check_pair_index, [0, 0.5], "image_index", n_image=2, n_text=2)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_finite_checks_on_the_bits_agree_with_isfinite(rng, dtype):
    from clipgeo.validation import all_finite, finite_rows

    info = np.finfo(dtype)
    edge = np.array([0.0, -0.0, info.max, -info.max, info.tiny, -info.tiny, info.smallest_subnormal,
                     -info.smallest_subnormal, 1.0, -1.0], dtype=dtype)
    x = rng.normal(size=(40, 10)).astype(dtype)
    x[0] = edge
    assert all_finite(x) and finite_rows(x).all()
    assert all_finite(x[:0]) and finite_rows(x[:0]).shape == (0,)
    bad = np.array([np.inf, -np.inf, np.nan, -np.nan], dtype=dtype)
    bad = np.r_[bad, np.full(1, -1, dtype=f"i{x.itemsize}").view(dtype)]  # all bits set: a negative NaN
    for value in bad:
        for layout in ("C", "F"):
            y = x.copy(order=layout)
            y[7, 3] = value
            assert not all_finite(y)
            np.testing.assert_array_equal(finite_rows(y), np.isfinite(y).all(axis=1))
            assert not finite_rows(y)[7] and finite_rows(y).sum() == 39
