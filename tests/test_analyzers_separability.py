"""Linear separability (SPEC §2): brute-force threshold scans, sklearn AUC, planted features."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import clipgeo as cg
from clipgeo.errors import InputError


def brute_threshold_accuracy(col: np.ndarray, is_image: np.ndarray) -> float:
    """Best balanced accuracy over every threshold, both orientations (slow reference)."""
    best = 0.5
    for t in np.unique(col):
        above = col > t
        bal = 0.5 * (above[is_image].mean() + (~above[~is_image]).mean())
        best = max(best, bal, 1 - bal)
    return best


@pytest.mark.parametrize("rounding", [None, 1])
def test_threshold_accuracy_and_auc_match_references(rng, rounding):
    img = rng.normal(size=(130, 12)) + np.linspace(0, 2, 12)
    txt = rng.normal(size=(90, 12))
    if rounding is not None:  # many ties
        img, txt = np.round(img, rounding), np.round(txt, rounding)
    res = cg.feature_separability(img, txt, linear_cv=False)
    x = np.vstack([img, txt])
    y = np.r_[np.ones(130, bool), np.zeros(90, bool)]
    for k in range(12):
        assert res.threshold_accuracy[k] == pytest.approx(brute_threshold_accuracy(x[:, k], y), abs=1e-12)
        assert res.auc[k] == pytest.approx(roc_auc_score(y, x[:, k]), abs=1e-12)
        pooled = np.sqrt((img[:, k].var(ddof=1) + txt[:, k].var(ddof=1)) / 2)
        assert res.dprime[k] == pytest.approx((img[:, k].mean() - txt[:, k].mean()) / pooled, rel=1e-12)
        # the reported threshold and orientation achieve the reported accuracy
        pred = (x[:, k] > res.threshold[k]) if res.orientation[k] > 0 else (x[:, k] <= res.threshold[k])
        bal = 0.5 * (pred[y].mean() + (~pred[~y]).mean())
        assert bal == pytest.approx(res.threshold_accuracy[k], abs=1e-12)


def test_ranking_breaks_accuracy_ties_by_abs_dprime():
    # features 0, 1, 2 all separate perfectly; |d'| grows 0 < 2 < 1; feature 3 is noise
    rng = np.random.default_rng(1)
    n = 200
    img = rng.normal(size=(n, 4))
    txt = rng.normal(size=(n, 4))
    img[:, 0], txt[:, 0] = rng.uniform(1, 2, n), rng.uniform(-2, -1, n)
    img[:, 1], txt[:, 1] = rng.uniform(10, 11, n), rng.uniform(-11, -10, n)
    img[:, 2], txt[:, 2] = rng.uniform(-5, -4, n), rng.uniform(4, 5, n)  # image below: other orientation
    res = cg.feature_separability(img, txt, linear_cv=False)
    assert list(res.ranking) == [1, 2, 0, 3]
    assert res.orientation[2] == -1 and res.auc[2] == 0.0 and res.threshold_accuracy[2] == 1.0
    assert list(res.separating_features(1.0)) == [1, 2, 0]
    assert list(res.rank) == [2, 0, 1, 3]
    assert [f["feature"] for f in res.to_dict()["features"]] == [1, 2, 0, 3]


def test_best_pair_finds_a_diagonal_separation():
    # neither feature alone separates, x0 + x1 does
    rng = np.random.default_rng(2)
    n = 400
    z = rng.normal(size=(2 * n, 2)) * 3
    s = z.sum(axis=1)
    img, txt = z[s > 0.5][:n], z[s < -0.5][:n]
    noise_i, noise_t = rng.normal(size=(len(img), 3)), rng.normal(size=(len(txt), 3))
    img, txt = np.hstack([noise_i, img]), np.hstack([noise_t, txt])  # the pair is features 3 and 4
    res = cg.feature_separability(img, txt, linear_cv=False)
    assert res.threshold_accuracy[3] < 0.95 and res.threshold_accuracy[4] < 0.95
    assert set(res.best_pair) == {3, 4}
    assert res.best_pair_accuracy == 1.0
    # the stored line really separates
    w, b = res.best_pair_w, res.best_pair_b
    cols = list(res.best_pair)
    assert (img[:, cols] @ w + b > 0).all() and (txt[:, cols] @ w + b <= 0).all()


def test_planted_modality_features_are_recovered():
    img, txt, truth = cg.double_ellipsoid(1500, 48, separating_features=[7, 30], separation=10, seed=3)
    res = cg.feature_separability(img, txt)
    assert set(res.ranking[:2]) == {7, 30}
    assert res.threshold_accuracy[[7, 30]].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(res.dprime[[7, 30]], truth.separation, rtol=0.1)
    assert res.threshold_accuracy[res.ranking[2]] < 0.6
    assert res.best_pair_accuracy == 1.0
    assert res.linear_cv_accuracy == 1.0


def test_linear_cv_is_chance_on_identical_distributions(rng):
    img, txt = rng.normal(size=(300, 5)), rng.normal(size=(300, 5))
    res = cg.feature_separability(img, txt)
    assert 0.4 < res.linear_cv_accuracy < 0.6
    # in-sample single-feature accuracy overstates on pure noise, but not by much
    assert res.threshold_accuracy.max() < 0.6


def test_linear_cv_is_skipped_with_a_reason_when_too_few_rows(rng):
    res = cg.feature_separability(rng.normal(size=(3, 4)), rng.normal(size=(10, 4)))
    assert res.linear_cv_accuracy is None and "at least 5 rows" in res.linear_cv_skipped
    assert res.to_dict()["linear_cv_accuracy"] is None


def test_to_frame_has_one_row_per_feature(rng):
    res = cg.feature_separability(rng.normal(size=(20, 6)) + 1, rng.normal(size=(25, 6)), linear_cv=False)
    frame = res.to_frame()
    assert list(frame["feature"]) == list(range(6))
    assert sorted(frame["rank"]) == list(range(6))
    np.testing.assert_allclose(frame["std_image"], res.std_image)


def test_one_feature_has_no_pair(rng):
    res = cg.feature_separability(rng.normal(size=(20, 1)) + 3, rng.normal(size=(20, 1)), linear_cv=False)
    assert res.best_pair is None and res.to_dict()["best_pair"] is None
    with pytest.raises(InputError):
        cg.feature_separability(rng.normal(size=(20, 2)), rng.normal(size=(20, 3)))


def test_linear_cv_equals_the_sklearn_pipeline(rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    img = rng.normal(size=(150, 8)) + np.r_[0.4, np.zeros(7)]
    txt = rng.normal(size=(110, 8)) * np.r_[np.ones(7), 3.0]
    x = np.vstack([img, txt])
    y = np.r_[np.ones(150), np.zeros(110)]
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    ref = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)), x, y, cv=cv).mean()
    assert cg.feature_separability(img, txt).linear_cv_accuracy == pytest.approx(ref, abs=1e-12)


def test_planted_tie_picks_the_pair_with_the_higher_fisher_ratio():
    # feature 0 separates 100 % on its own, so every pair holding it ties at 100 %.  Feature 1 carries no
    # label but copies feature 0's noise (f0 - f1 is almost noise-free: a huge Fisher ratio); feature 2 is
    # a weak separator and ranks above 1, so the old "first pair in loop order" rule picked (0, 2)
    rng = np.random.default_rng(5)
    n = 400
    label = np.r_[np.ones(n), -np.ones(n)]
    noise = rng.uniform(-1, 1, 2 * n)
    f0 = 3 * label + noise
    f1 = noise + 0.05 * rng.normal(size=2 * n)
    f2 = label + rng.normal(size=2 * n)
    x = np.c_[f0, f1, f2]
    img, txt = x[:n], x[n:]
    res = cg.feature_separability(img, txt, top_k=3, linear_cv=False)
    assert list(res.ranking) == [0, 2, 1]
    assert res.best_pair_accuracy == 1.0 and res.best_pair_ties == 2
    assert set(res.best_pair) == {0, 1}
    ratio = {}
    for cols in ([0, 1], [0, 2]):
        a, b = img[:, cols], txt[:, cols]
        sw = (np.cov(a, rowvar=False) * (n - 1) + np.cov(b, rowvar=False) * (n - 1)) / (2 * n - 2)
        w = np.linalg.solve(sw, a.mean(0) - b.mean(0))
        ratio[tuple(cols)] = float(w @ (a.mean(0) - b.mean(0))) ** 2 / float(w @ sw @ w)
    assert ratio[(0, 1)] > 10 * ratio[(0, 2)]
    assert res.best_pair_fisher == pytest.approx(ratio[(0, 1)], rel=1e-9)
    d = res.to_dict()
    assert d["best_pair_ties"] == 2 and d["best_pair"]["fisher_ratio"] == pytest.approx(ratio[(0, 1)], rel=1e-9)


def test_equal_fisher_ratios_fall_back_to_the_feature_index():
    # columns 0 and 2 are one perfect feature A, 1 and 3 one noise feature B: the pairs (0, 1), (0, 3),
    # (2, 1), (2, 3) are the same data, so they tie on accuracy and on the Fisher ratio; the lowest indices win
    rng = np.random.default_rng(2)
    a = np.r_[rng.uniform(2, 3, 50), rng.uniform(-3, -2, 50)]
    b = rng.normal(size=100)
    x = np.c_[a, b, a, b]
    res = cg.feature_separability(x[:50], x[50:], top_k=4, linear_cv=False)
    assert res.best_pair_accuracy == 1.0 and res.best_pair_ties == 5  # every pair holding column 0 or 2
    assert sorted(res.best_pair) == [0, 1]


def test_modality_label_features_follow_the_stated_criterion():
    img, txt, truth = cg.double_ellipsoid(800, 40, separating_features=[3, 17, 29], separation=10, seed=4)
    res = cg.feature_separability(img, txt, linear_cv=False)
    label = res.modality_label_features
    assert set(truth.separating_features) <= set(label.tolist())
    np.testing.assert_array_equal(label, res.ranking[res.threshold_accuracy[res.ranking] >= 0.95])
    d = res.to_dict()
    assert d["modality_label_features"] == [int(k) for k in label]
    assert d["n_modality_label_features"] == len(label) and "0.95" in d["modality_label_criterion"]
