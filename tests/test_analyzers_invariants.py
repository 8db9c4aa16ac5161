"""Invariants of the analyzers (hypothesis): rotation, row permutation, scaling."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clipgeo as cg
from clipgeo.synthetic import random_rotation

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def clouds(seed: int, n: int, d: int, offset: float):
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n, d)) + offset * rng.normal(size=d)
    txt = rng.normal(size=(n, d)) * 0.5 + offset * rng.normal(size=d)
    return img, txt


@SETTINGS
@given(seed=st.integers(0, 2**31), n=st.integers(5, 60), d=st.integers(2, 12), offset=st.floats(0.0, 4.0))
def test_rotation_invariance(seed, n, d, offset):
    img, txt = clouds(seed, n, d, offset)
    q = random_rotation(d, seed=seed + 1)
    gap, gap_r = cg.modality_gap(img, txt), cg.modality_gap(img @ q, txt @ q)
    np.testing.assert_allclose(gap_r.l2_centroid_distance, gap.l2_centroid_distance, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gap_r.raw_centroid_distance, gap.raw_centroid_distance, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gap_r.mean_matched_cosine, gap.mean_matched_cosine, rtol=1e-9, atol=1e-12)
    conf, conf_r = cg.conformity(img), cg.conformity(img @ q)
    np.testing.assert_allclose(conf_r.values, conf.values, atol=2e-6)  # float32 GEMM in the exact sum
    np.testing.assert_allclose(conf_r.estimate, conf.estimate, atol=1e-9)
    shell, shell_r = cg.thin_shell(img), cg.thin_shell(img @ q)
    np.testing.assert_allclose(shell_r.mean_centered_norm, shell.mean_centered_norm, rtol=1e-9)
    np.testing.assert_allclose(shell_r.sqrt_trace_cov, shell.sqrt_trace_cov, rtol=1e-9)
    maha, maha_r = cg.mahalanobis_shell(img), cg.mahalanobis_shell(img @ q)
    np.testing.assert_allclose(maha_r.distances, maha.distances, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(cg.ellipsoid_offset(img @ q).mean_norm, cg.ellipsoid_offset(img).mean_norm, rtol=1e-9)


@SETTINGS
@given(seed=st.integers(0, 2**31), n=st.integers(6, 60), d=st.integers(2, 10))
def test_row_permutation(seed, n, d):
    img, txt = clouds(seed, n, d, 2.0)
    perm = np.random.default_rng(seed).permutation(n)
    gap, gap_p = cg.modality_gap(img, txt), cg.modality_gap(img[perm], txt[perm])
    np.testing.assert_allclose(gap_p.l2_centroid_distance, gap.l2_centroid_distance, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gap_p.mean_matched_cosine, gap.mean_matched_cosine, rtol=1e-9, atol=1e-12)
    conf, conf_p = cg.conformity(img, "mean"), cg.conformity(img[perm], "mean")
    np.testing.assert_allclose(conf_p.values, conf.values[perm], atol=1e-12)
    sep, sep_p = (cg.feature_separability(a, b, linear_cv=False) for a, b in ((img, txt), (img[perm], txt[perm])))
    np.testing.assert_array_equal(sep_p.threshold_accuracy, sep.threshold_accuracy)
    np.testing.assert_allclose(sep_p.auc, sep.auc, atol=1e-12)
    shell, shell_p = cg.thin_shell(img), cg.thin_shell(img[perm])
    np.testing.assert_allclose(shell_p.centered_norms, shell.centered_norms[perm], rtol=1e-9)
    # the centroid-shift loss uses one batch here (n < 1024): it is a symmetric function of the pairs
    cs, cs_p = cg.centroid_shift(img, txt, alphas=[0.0, 0.5]), cg.centroid_shift(img[perm], txt[perm], alphas=[0.0, 0.5])
    np.testing.assert_allclose(cs_p.loss, cs.loss, rtol=1e-9)


@SETTINGS
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(6, 50),
    d=st.integers(2, 10),
    scale=st.floats(1e-3, 1e3),
)
def test_scaling(seed, n, d, scale):
    img, txt = clouds(seed, n, d, 1.5)
    # a common scale changes nothing that is defined on directions or relative spreads
    gap, gap_s = cg.modality_gap(img, txt), cg.modality_gap(img * scale, txt * scale)
    np.testing.assert_allclose(gap_s.l2_centroid_distance, gap.l2_centroid_distance, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gap_s.raw_centroid_distance, gap.raw_centroid_distance * scale, rtol=1e-9)
    sep, sep_s = cg.feature_separability(img, txt, linear_cv=False), cg.feature_separability(img * scale, txt * scale, linear_cv=False)
    np.testing.assert_array_equal(sep_s.threshold_accuracy, sep.threshold_accuracy)
    np.testing.assert_allclose(sep_s.dprime, sep.dprime, rtol=1e-9)
    np.testing.assert_allclose(cg.ellipsoid_offset(img * scale).ratio, cg.ellipsoid_offset(img).ratio, rtol=1e-9)
    np.testing.assert_allclose(cg.mahalanobis_shell(img * scale).distances, cg.mahalanobis_shell(img).distances, rtol=1e-6)
    np.testing.assert_allclose(cg.off_diagonal_dominance(img * scale).per_feature, cg.off_diagonal_dominance(img).per_feature, rtol=1e-9)
    # per-row positive scales: everything computed on unit rows is unchanged
    row_scale = np.random.default_rng(seed + 7).uniform(0.1, 10, size=(n, 1))
    np.testing.assert_allclose(cg.conformity(img * row_scale, "mean").values, cg.conformity(img, "mean").values, atol=1e-12)
    np.testing.assert_allclose(
        cg.modality_gap(img * row_scale, txt).l2_centroid_distance, gap.l2_centroid_distance, rtol=1e-9, atol=1e-12
    )
    au, au_s = cg.alignment_uniformity(img, txt), cg.alignment_uniformity(img * row_scale, txt)
    np.testing.assert_allclose([au_s.alignment, au_s.uniformity], [au.alignment, au.uniformity], rtol=1e-9, atol=1e-12)
