"""Schrodi et al.'s gap metrics (SPEC §12): L2M, L2I, RMG -- known answers and a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.errors import InputError


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_identical_modalities_have_no_gap_and_the_floored_rmg(rng):
    x = rng.normal(size=(50, 8))
    res = cg.gap_metrics(x, x)
    u = _unit(x)
    cone = (np.sum(u @ u.T) - 50) / (50 * 49)
    d_i = (1 - cone) / 2
    assert res.l2m == pytest.approx(0.0, abs=1e-12)
    assert res.l2i == pytest.approx(0.0, abs=1e-12)
    assert res.d_m_floored and res.d_m == 1e-3
    assert res.rmg == pytest.approx(1e-3 / (1e-3 + d_i), rel=1e-12)


def test_orthogonal_point_modalities_have_rmg_one():
    img = np.tile([1.0, 0.0, 0.0], (10, 1))
    txt = np.tile([0.0, 2.0, 0.0], (10, 1))
    res = cg.gap_metrics(img, txt)
    # every matched cosine is 0 (d_m = 1/2) and each modality is one point (d_i = d_t = 0)
    assert res.rmg == pytest.approx(1.0)
    assert res.l2m == pytest.approx(np.sqrt(2)) and res.l2i == pytest.approx(np.sqrt(2))


def test_matches_a_numpy_reference_with_several_captions_per_image(rng):
    img = rng.normal(size=(20, 6)) + 1.0
    txt = rng.normal(size=(45, 6)) - 0.5
    link = np.r_[np.repeat(np.arange(20), 2), [-1, -1, 3, 7, 19]]
    res = cg.gap_metrics(img, txt, image_index=link)
    ui, ut = _unit(img), _unit(txt)
    rows = np.flatnonzero(link >= 0)
    pairs_i, pairs_t = ui[link[rows]], ut[rows]
    cos = np.sum(pairs_i * pairs_t, axis=1)
    gi = ui @ ui.T
    gt = ut @ ut.T
    d_m = max((1 - cos.mean()) / 2, 1e-3)
    d_i = (1 - (gi.sum() - np.trace(gi)) / (20 * 19)) / 2
    d_t = (1 - (gt.sum() - np.trace(gt)) / (45 * 44)) / 2
    np.testing.assert_allclose(res.l2m, np.linalg.norm(ui.mean(0) - ut.mean(0)), rtol=1e-12)
    np.testing.assert_allclose(res.l2i, np.linalg.norm(pairs_i - pairs_t, axis=1).mean(), rtol=1e-12)
    np.testing.assert_allclose([res.d_m, res.d_i, res.d_t], [d_m, d_i, d_t], rtol=1e-10)
    np.testing.assert_allclose(res.rmg, d_m / (d_m + (d_i + d_t) / 2), rtol=1e-10)
    assert res.n_pairs == 43 and res.to_dict()["rmg"] == pytest.approx(res.rmg)


def test_l2m_equals_the_section_1_centroid_distance(rng):
    img, txt = rng.normal(size=(30, 5)) + 2, rng.normal(size=(30, 5))
    assert cg.gap_metrics(img, txt).l2m == pytest.approx(cg.modality_gap(img, txt).l2_centroid_distance, rel=1e-12)


def test_bad_pair_index_is_a_one_line_error(rng):
    img, txt = rng.normal(size=(5, 3)), rng.normal(size=(6, 3))
    with pytest.raises(InputError, match="image_index"):
        cg.gap_metrics(img, txt)
    with pytest.raises(InputError, match=r"image_index\[2\] = 9"):
        cg.gap_metrics(img, txt, image_index=[0, 1, 9, 2, 3, 4])
    with pytest.raises(InputError, match="no matched"):
        cg.gap_metrics(img, txt, image_index=[-1] * 6)
