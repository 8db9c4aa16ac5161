"""2-D PCA projection of both modalities (SPEC §10) against scikit-learn's PCA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

import clipgeo as cg
from clipgeo.errors import InputError


def test_matches_sklearn_pca_on_the_pooled_rows(rng):
    img = rng.normal(size=(120, 6)) * np.array([3, 1, 1, 0.5, 0.2, 0.1]) + 4
    txt = rng.normal(size=(80, 6)) - 4
    res = cg.pca_projection(img, txt)
    ref = PCA(n_components=2).fit(np.vstack([img, txt]))
    np.testing.assert_allclose(res.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-9)
    coords = ref.transform(np.vstack([img, txt]))
    signs = np.sign(np.sum(coords * np.vstack([res.image, res.text]), axis=0))
    np.testing.assert_allclose(np.vstack([res.image, res.text]), coords * signs, atol=1e-9)
    assert res.image.shape == (120, 2) and res.text.shape == (80, 2)
    # the first axis separates the modalities (their means differ by 8 along the diagonal)
    assert np.sign(res.image[:, 0].mean()) != np.sign(res.text[:, 0].mean())


def test_one_modality_and_errors(rng):
    res = cg.pca_projection(None, rng.normal(size=(10, 3)))
    assert res.image.shape == (0, 2) and res.text.shape == (10, 2)
    with pytest.raises(InputError):
        cg.pca_projection(None, None)
