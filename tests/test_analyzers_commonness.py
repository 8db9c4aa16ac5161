"""Commonness (SPEC §12): conformity against caption length, duplicates and word frequency."""

from __future__ import annotations

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.errors import InputError


def test_planted_relations_give_known_spearman():
    captions = ["a dog", "a dog.", "A  dog", "a cat on a mat", "the quick brown fox jumps", ""]
    conformity = np.array([0.9, 0.8, 0.85, 0.3, 0.1, 0.5])
    res = cg.commonness(conformity, captions)
    assert res.n_captions == 5  # the empty caption is left out
    np.testing.assert_array_equal(res.duplicates, [3, 3, 3, 1, 1])  # case, spaces and the final '.' do not count
    np.testing.assert_array_equal(res.length, [2, 2, 2, 5, 5])
    assert res.n_duplicated == 3
    assert res.spearman_length < -0.8 and res.spearman_duplicates > 0.8
    # word frequency: "a" and "dog" are the corpus' most common words
    assert res.word_frequency[0] > res.word_frequency[4]
    # frequencies by hand: 16 words; "a" ×5, "dog" ×3, "cat", "on", "mat", "the", "quick", … ×1
    np.testing.assert_allclose(res.word_frequency[:2], [(5 / 16 + 3 / 16) / 2] * 2, rtol=1e-12)
    np.testing.assert_allclose(res.word_frequency[3], (5 + 1 + 1 + 5 + 1) / 16 / 5, rtol=1e-12)
    from scipy.stats import spearmanr

    assert res.spearman_word_frequency == pytest.approx(
        spearmanr(conformity[:5], res.word_frequency).statistic, abs=1e-12
    )


def test_monotone_length_is_spearman_one():
    captions = [" ".join(["w"] * k) + f" x{k}" for k in range(1, 9)]
    res = cg.commonness(np.arange(8.0), captions)
    assert res.spearman_length == pytest.approx(1.0)
    assert res.spearman_duplicates is None or np.isnan(res.spearman_duplicates)  # no caption repeats


def test_no_captions_is_a_one_line_error():
    with pytest.raises(InputError, match="commonness needs captions"):
        cg.commonness(np.zeros(3), ["", "", ""])
    with pytest.raises(InputError, match="give one caption per text row"):
        cg.commonness(np.zeros(3), ["a", "b"])
