"""Per-pair conformity (SPEC §12): C_img vs C_txt over the matched pairs."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.errors import InputError


def _conformity(x):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = u @ u.T
    return (g.sum(axis=1) - np.diag(g)) / (len(x) - 1)


def test_identical_modalities_correlate_perfectly(rng):
    x = rng.normal(size=(40, 6)) + 0.5
    res = cg.pair_conformity(x, x)
    assert res.pearson == pytest.approx(1.0, abs=1e-12) and res.spearman == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.disagreement, 0.0, atol=1e-12)


def test_matches_brute_force_conformity_with_several_captions(rng):
    img = rng.normal(size=(15, 4)) + 1
    txt = rng.normal(size=(31, 4))
    link = np.r_[np.repeat(np.arange(15), 2), -1]
    res = cg.pair_conformity(img, txt, image_index=link)
    ci, ct = _conformity(img), _conformity(txt)
    np.testing.assert_allclose(res.image_conformity, ci[link[:30]], rtol=1e-10)
    np.testing.assert_allclose(res.text_conformity, ct[:30], rtol=1e-10)
    np.testing.assert_allclose(res.pearson, np.corrcoef(ci[link[:30]], ct[:30])[0, 1], rtol=1e-10)
    from scipy.stats import spearmanr

    assert res.spearman == pytest.approx(spearmanr(ci[link[:30]], ct[:30]).statistic, abs=1e-12)
    assert res.n_pairs == 30


def test_given_conformity_is_used_and_the_worst_pair_is_found(rng):
    img = rng.normal(size=(10, 3))
    ci = np.arange(10.0)
    ct = np.arange(10.0)
    ct[[0, 9]] = ct[[9, 0]]  # pair 0 and pair 9 disagree completely
    res = cg.pair_conformity(img, img, image_conformity=ci, text_conformity=ct)
    assert set(res.most_disagreeing(2).tolist()) == {0, 9}
    assert res.disagreement[0] == pytest.approx(1.0)
    with pytest.raises(InputError, match="image_conformity has shape"):
        cg.pair_conformity(img, img, image_conformity=np.zeros(3))
