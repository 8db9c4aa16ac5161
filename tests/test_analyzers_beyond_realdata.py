"""SPEC §12 analyses on real CLIP embeddings (../shared/realdata): unit-norm dumps and raw ViT-L/14 moments."""

from __future__ import annotations

import functools
import json
import warnings

import numpy as np
import pytest

import clipgeo as cg

pytestmark = pytest.mark.realdata

PAIRED = {
    # folder: (image file, text file, published l2 centroid distance)
    "hm_products1126_clip512": ("image_embeddings.npy", "text_embeddings.npy", 0.8768),
    "flickr8k_100x5_clip_vitb32": ("image_embeddings.npy", "text_embeddings.npy", 0.8430),
    "unsplash290_clip_vitb32": ("image_embeddings.npy", "caption_embeddings.npy", 0.9235),
}


def _load(realdata, folder):
    image_file, text_file, _ = PAIRED[folder]
    return np.load(realdata / folder / image_file), np.load(realdata / folder / text_file)


@pytest.mark.parametrize("folder", sorted(PAIRED))
def test_gap_metrics_pair_conformity_retrieval_and_spectrum_on_real_dumps(realdata, folder):
    img, txt = _load(realdata, folder)
    gm = cg.gap_metrics(img, txt)
    assert gm.l2m == pytest.approx(PAIRED[folder][2], abs=5e-5)  # L2M is §1's published value
    assert 0.5 < gm.rmg < 0.7 and 1.1 < gm.l2i < 1.25  # measured: 0.54-0.63 and 1.13-1.19
    pc = cg.pair_conformity(img, txt)
    assert 0.0 < pc.pearson < 0.3  # a caption's conformity barely predicts its image's
    rt = cg.retrieval_by_conformity(img, txt)
    assert rt.r1_i2t > 20 / len(np.unique(img, axis=0))  # far above chance
    assert rt.spearman_i2t > 0.05  # common images face more unpaired captions above their own
    for x in (img, txt):
        sp = cg.spectrum(x)
        assert 50 < sp.effective_rank < 300 and sp.dims_90 < sp.dims_99 < 320
        assert sp.participation_ratio < sp.effective_rank


def test_flickr_repeated_image_rows_rank_like_unique_images(realdata):
    import pandas as pd

    folder = realdata / "flickr8k_100x5_clip_vitb32"
    img, txt = _load(realdata, "flickr8k_100x5_clip_vitb32")
    ids = pd.read_csv(folder / "metadata.csv")["image_id"].to_numpy()
    _, first, link = np.unique(ids, return_index=True, return_inverse=True)
    raw = cg.retrieval_by_conformity(img, txt)
    dedup = cg.retrieval_by_conformity(img[first], txt, image_index=link)
    np.testing.assert_array_equal(raw.rank_t2i, dedup.rank_t2i)
    np.testing.assert_array_equal(raw.rank_i2t, dedup.rank_i2t)
    assert dedup.r5_t2i > dedup.r1_t2i


def test_commonness_on_real_captions(realdata):
    folder = realdata / "unsplash290_clip_vitb32"
    captions = [c["caption"] for c in json.loads((folder / "captions.json").read_text())]
    txt = np.load(folder / "caption_embeddings.npy")
    res = cg.commonness(cg.conformity(txt).values, captions)
    assert res.n_captions == 290 and res.n_duplicated > 10  # BLIP repeats itself
    assert res.spearman_word_frequency > 0.2  # captions of common words are the conforming ones (measured 0.40)


def test_bootstrap_on_a_real_dump_brackets_the_estimates(realdata):
    img, txt = _load(realdata, "hm_products1126_clip512")
    res = cg.bootstrap(img, txt, n_boot=50, seed=0)
    gap = res.interval("modality_gap.l2_centroid_distance")
    assert gap.low < 0.8768 < gap.high and gap.high - gap.low < 0.02
    rmg = res.interval("gap_metrics.rmg")
    assert rmg.low < cg.gap_metrics(img, txt).rmg < rmg.high


@functools.lru_cache(maxsize=1)
def _raw_sample(folder):
    m = np.load(folder / "image_mean.npy").astype(np.float64)
    c = np.load(folder / "image_cov.npy").astype(np.float64)
    lam, vec = np.linalg.eigh(0.5 * (c + c.T))
    z = np.random.default_rng(0).normal(size=(3000, len(m)))
    return m + (z * np.sqrt(np.clip(lam, 0, None))) @ vec.T, m, c


@pytest.fixture
def raw_vitl14(realdata):
    """3000 rows drawn from N(m, C) of the real raw ViT-L/14 COCO image moments (drawn once per session)."""
    return _raw_sample(realdata / "raw_moments_vitl14_coco")


def test_raw_vitl14_sample_offset_and_whitened_gaussianity(raw_vitl14):
    x, m, c = raw_vitl14
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cg.ellipsoid_offset(x).ratio == pytest.approx(0.996, abs=0.01)
    res = cg.whitening(x)
    # each test rejects 5 % of truly Gaussian coordinates, so ~95 % pass
    assert res.dagostino_pass_rate > 0.9 and res.anderson_pass_rate > 0.9
    z = cg.Whitener().fit_moments(m, c).transform(x)  # the true moments whiten the sample to ~identity
    np.testing.assert_allclose(np.cov(z, rowvar=False).diagonal().mean(), 1.0, atol=0.02)


def test_vslerp_stays_on_the_real_shell_and_slerp_leaves_it(raw_vitl14):
    x, m, _ = raw_vitl14
    a, b = x[0], x[1]
    t = np.linspace(0, 1, 11)
    shifted = cg.vslerp(a, b, t, mean=m)
    plain = cg.vslerp(a, b, t, mean=m, scale=0.0)
    r_ends = np.linalg.norm(np.stack([a, b]) - m, axis=1)
    r_shift = np.linalg.norm(shifted - m, axis=1)
    r_plain = np.linalg.norm(plain - m, axis=1)
    assert r_shift.min() >= 0.99 * r_ends.min() and r_shift.max() <= 1.01 * r_ends.max()
    assert r_plain[5] < 0.9 * r_ends.min()  # plain slerp cuts through the inside of the shell
