"""Input checking of the analyzers: shapes, dtypes, torch tensors, warnings, no torch import."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.analyzers import UnitNormWarning, check_embeddings
from clipgeo.errors import ClipgeoError, InputError


def test_analyzers_do_not_import_torch():
    code = (
        "import sys, clipgeo.analyzers, clipgeo.report, clipgeo.synthetic; import clipgeo as cg; "
        "cg.modality_gap; cg.analyze; "
        "print('torch' in sys.modules, 'clipgeo.store' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.parametrize(
    "bad, needle",
    [
        (np.zeros(5), "reshape"),
        (np.zeros((2, 3, 4)), "3-D"),
        (np.zeros((1, 4)), "at least 2 rows"),
        (np.zeros((3, 0)), "0 columns"),
        (np.array([["a", "b"], ["c", "d"]]), "dtype"),
        (np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]]), "NaN or inf (rows 0)"),
        (np.array([[1.0, 0.0], [np.inf, 1.0], [1.0, 1.0]]), "rows 1"),
    ],
)
def test_bad_arrays_raise_one_line_input_errors(bad, needle):
    with pytest.raises(InputError) as info:
        cg.thin_shell(bad)
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert isinstance(info.value, ClipgeoError)


def test_dimension_mismatch_and_unpaired_rows(rng):
    with pytest.raises(InputError, match="dimension 3 but the other modality has 4"):
        cg.modality_gap(rng.normal(size=(5, 4)), rng.normal(size=(5, 3)))
    with pytest.raises(InputError, match="matched pairs"):
        cg.centroid_shift(rng.normal(size=(5, 4)), rng.normal(size=(6, 4)))


def test_float16_and_int_inputs_are_accumulated_in_float64(rng):
    x16 = (rng.normal(size=(200, 8)) * 3 + 5).astype(np.float16)
    ref = x16.astype(np.float64)
    res = cg.thin_shell(x16)
    np.testing.assert_allclose(res.mean_norm, np.linalg.norm(ref, axis=1).mean(), rtol=1e-12)
    assert res.norms.dtype == np.float64
    xi = rng.integers(-5, 5, size=(50, 4))
    assert cg.ellipsoid_offset(xi).ratio == pytest.approx(
        np.linalg.norm(xi.mean(0)) / np.linalg.norm(xi.std(0, ddof=1)), rel=1e-12
    )


def test_torch_tensors_are_accepted_by_duck_typing(rng):
    torch = pytest.importorskip("torch")
    a, b = rng.normal(size=(40, 6)) + 1, rng.normal(size=(40, 6))
    ref = cg.modality_gap(a, b)
    got = cg.modality_gap(torch.tensor(a, dtype=torch.float64, requires_grad=True), torch.tensor(b))
    assert got.l2_centroid_distance == pytest.approx(ref.l2_centroid_distance, rel=1e-12)
    assert got.raw_centroid_distance == pytest.approx(ref.raw_centroid_distance, rel=1e-12)
    bf = cg.thin_shell(torch.tensor(a, dtype=torch.bfloat16))
    assert bf.mean_norm == pytest.approx(np.linalg.norm(a, axis=1).mean(), rel=1e-2)


def test_unit_norm_rows_warn_for_raw_space_measurements(rng):
    u = rng.normal(size=(30, 5))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    for fn in (cg.thin_shell, cg.mahalanobis_shell, cg.ellipsoid_offset):
        with pytest.warns(UnitNormWarning, match="already unit-norm"):
            fn(u)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cg.modality_gap(u, u[::-1])  # the gap is defined on unit rows: no warning
        cg.thin_shell(u * 3)  # raw rows: no warning


def test_checked_arrays_are_contiguous_float64(rng):
    x = np.asfortranarray(rng.normal(size=(10, 3)).astype(np.float32))
    out = check_embeddings(x)
    assert out.dtype == np.float64 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, x.astype(np.float64))
