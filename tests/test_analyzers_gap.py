"""Modality gap (SPEC §1): analytic cases and NumPy references."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_identical_modalities_have_no_gap(rng):
    x = rng.normal(size=(100, 16)) + 2
    res = cg.modality_gap(x, x.copy())
    assert res.l2_centroid_distance == 0.0 and res.raw_centroid_distance == 0.0
    assert res.mean_matched_cosine == pytest.approx(1.0, abs=1e-12)


def test_orthogonal_rays_are_sqrt2_apart(rng):
    # every image row on the ray e0, every text row on e1: unit centroids e0 and e1
    img = np.zeros((50, 4))
    img[:, 0] = rng.uniform(1, 5, size=50)
    txt = np.zeros((30, 4))
    txt[:, 1] = rng.uniform(1, 5, size=30)
    res = cg.modality_gap(img, txt)
    assert res.l2_centroid_distance == pytest.approx(np.sqrt(2), abs=1e-12)
    assert res.raw_centroid_distance == pytest.approx(np.hypot(img[:, 0].mean(), txt[:, 1].mean()), rel=1e-12)
    assert res.mean_matched_cosine is None  # 50 vs 30 rows: not paired
    assert res.image_cone == pytest.approx(1.0) and res.text_cone == pytest.approx(1.0)


def test_matches_numpy_reference(rng):
    img, txt = rng.normal(size=(80, 10)) + 1, rng.normal(size=(80, 10)) - 1
    res = cg.modality_gap(img, txt)
    ui, ut = unit(img), unit(txt)
    assert res.l2_centroid_distance == pytest.approx(np.linalg.norm(ui.mean(0) - ut.mean(0)), rel=1e-12)
    assert res.raw_centroid_distance == pytest.approx(np.linalg.norm(img.mean(0) - txt.mean(0)), rel=1e-12)
    assert res.mean_matched_cosine == pytest.approx(np.mean(np.sum(ui * ut, axis=1)), rel=1e-12)
    gram = ui @ ui.T
    cone = (gram.sum() - np.trace(gram)) / (80 * 79)
    assert res.image_cone == pytest.approx(cone, rel=1e-10)
    np.testing.assert_allclose(res.unit_centroid_text, ut.mean(0), rtol=1e-12)
    assert cg.modality_gap(img, txt, paired=False).mean_matched_cosine is None


def test_to_dict_is_plain_json(rng):
    import json

    d = cg.modality_gap(rng.normal(size=(5, 3)), rng.normal(size=(5, 3))).to_dict()
    assert set(d) >= {"l2_centroid_distance", "raw_centroid_distance", "mean_matched_cosine"}
    assert "unit_centroid_image" not in d
    json.dumps(d, allow_nan=False)
