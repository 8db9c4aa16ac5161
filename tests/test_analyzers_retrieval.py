"""Retrieval difficulty vs conformity (SPEC §12): ranks against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.analyzers._pairs import image_groups


def _reference(img, txt, link):
    ui = (img / np.linalg.norm(img, axis=1, keepdims=True)).astype(np.float32)
    ut = (txt / np.linalg.norm(txt, axis=1, keepdims=True)).astype(np.float32)
    s = ui.astype(np.float64) @ ut.astype(np.float64).T
    groups = image_groups(img)
    r_i2t, r_t2i = [], []
    for j in np.flatnonzero(link >= 0):
        i = link[j]
        own = s[i, j]
        same_img_caps = (link >= 0) & (groups[np.maximum(link, 0)] == groups[i])
        r_i2t.append(1 + int(np.sum((s[i] > own) & ~same_img_caps)))
        first = np.unique(groups, return_index=True)[1]  # copies of one image count once
        r_t2i.append(1 + int(np.sum((s[first, j] > own) & (groups[first] != groups[i]))))
    return np.array(r_i2t), np.array(r_t2i)


def test_ranks_match_brute_force_over_several_chunks(rng):
    img = rng.normal(size=(60, 8))
    img[7] = img[3]  # one image stored twice: the same image, its captions do not compete
    img[20] = img[11]
    txt = rng.normal(size=(130, 8))
    link = np.r_[np.repeat(np.arange(60), 2), np.full(10, -1)]
    txt[:120] += 1.5 * img[link[:120]]  # captions resemble their image
    res = cg.retrieval_by_conformity(img, txt, image_index=link, chunk_bytes=4 * 130 * 7)
    r_i2t, r_t2i = _reference(img, txt, link)
    np.testing.assert_array_equal(res.rank_i2t, r_i2t)
    np.testing.assert_array_equal(res.rank_t2i, r_t2i)
    assert res.r1_i2t == pytest.approx(np.mean(r_i2t == 1))
    assert res.median_rank_t2i == pytest.approx(np.median(r_t2i))
    table = res.by_decile("i2t")
    assert sum(row["n"] for row in table) == 120 and len(table) == 10


def test_identical_rows_are_retrieved_perfectly(rng):
    x = rng.normal(size=(50, 6))
    res = cg.retrieval_by_conformity(x, x)
    assert res.r1_i2t == 1.0 and res.r1_t2i == 1.0 and res.median_rank_i2t == 1.0


def test_planted_hub_captions_make_common_images_hard(rng):
    """Images near the common centre have near-duplicate captions from other images (false negatives)."""
    d, n = 16, 200
    centre = np.zeros(d)
    centre[0] = 1.0
    spread = np.linspace(0.05, 2.0, n)  # small spread: common (high conformity); large: rare
    img = centre + spread[:, None] * rng.normal(size=(n, d))
    txt = img + 0.3 * rng.normal(size=(n, d))  # the same caption noise for every image
    res = cg.retrieval_by_conformity(img, txt)
    assert res.spearman_i2t > 0.3 and res.spearman_t2i > 0.2  # high conformity → more unpaired captions above
    first, last = res.by_decile("i2t")[0], res.by_decile("i2t")[-1]
    assert first["r1"] > last["r1"]
    assert res.to_dict()["by_decile"]["t2i"][0]["decile"] == 0


def test_one_image_row_per_caption_ranks_like_the_deduplicated_set(rng):
    img = rng.normal(size=(20, 6))
    link = np.repeat(np.arange(20), 3)
    txt = img[link] + 0.8 * rng.normal(size=(60, 6))
    dedup = cg.retrieval_by_conformity(
        img, txt, image_index=link, image_conformity=np.zeros(20), text_conformity=np.zeros(60)
    )
    raw = cg.retrieval_by_conformity(img[link], txt, image_conformity=np.zeros(60), text_conformity=np.zeros(60))
    np.testing.assert_array_equal(raw.rank_i2t, dedup.rank_i2t)
    np.testing.assert_array_equal(raw.rank_t2i, dedup.rank_t2i)
