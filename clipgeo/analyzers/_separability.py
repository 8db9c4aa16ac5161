"""Linear separability of image and text rows (SPEC §2): single features, feature pairs, all features."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._blocks import column_mean, column_var, float_pair
from ._result import Result
from ._threads import single_blas_thread

#: features sorted per block of columns (bounds the memory of the vectorised scan: about 80 bytes per
#: pooled row and column, 260 MB for 2 × 100,000 rows)
_BLOCK_COLUMNS = 16
#: a "modality label" feature separates image from text on its own at least this well (SPEC §2)
MODALITY_LABEL_ACCURACY = 0.95
#: how ``modality_label_features`` is chosen, stated beside the count
MODALITY_LABEL_CRITERION = f"single-threshold balanced accuracy >= {MODALITY_LABEL_ACCURACY} (in-sample)"
#: pair accuracies closer than this are a tie
_TIE = 1e-12


def _scan_block(values: np.ndarray, is_image: np.ndarray) -> tuple[np.ndarray, ...]:
    """Best balanced threshold accuracy, its threshold and orientation, and the ROC AUC, per column.

    Parameters
    ----------
    values : ndarray of shape (n, b)
        Pooled rows (image and text) of b features.
    is_image : ndarray of bool, shape (n,)

    Returns
    -------
    accuracy, threshold, orientation, auc : ndarrays of shape (b,)
        ``orientation`` is +1 when "image" is predicted above the threshold, -1 below.
    """
    n, b = values.shape
    n_img = int(is_image.sum())
    n_txt = n - n_img
    order = np.argsort(values, axis=0)  # (n, b)
    v = np.take_along_axis(values, order, axis=0)  # sorted values, (n, b)
    lab = is_image[order]  # (n, b) bool
    cum_img = np.cumsum(lab, axis=0, dtype=np.int64)  # image rows among the first k+1
    cum_txt = np.arange(1, n + 1, dtype=np.int64)[:, None] - cum_img
    # a cut after sorted position k is possible only between distinct values
    ends = np.ones((n, b), dtype=bool)
    ends[:-1] = v[1:] != v[:-1]
    # "text at or below the cut, image above": balanced accuracy
    bal = 0.5 * (cum_txt / n_txt + (n_img - cum_img) / n_img)
    gain = np.where(ends, np.abs(bal - 0.5), -1.0)
    k = gain.argmax(axis=0)  # (b,)
    cols = np.arange(b)
    best = bal[k, cols]
    accuracy = np.maximum(0.5 + gain[k, cols], 0.5)  # the empty cut (everything one class) scores 0.5
    upper = np.where(k + 1 < n, v[np.minimum(k + 1, n - 1), cols], np.inf)
    threshold = np.where(k + 1 < n, 0.5 * (v[k, cols] + upper), v[k, cols])
    orientation = np.where(best >= 0.5, 1, -1)

    # ROC AUC with ties counted one half: sum over image rows of (#text below + #text tied / 2)
    if ends.all():  # no ties: the text rows below an image row are those sorted before it
        auc = (cum_txt * lab).sum(axis=0) / (n_img * n_txt)
        return accuracy, threshold, orientation, auc
    txt_before = np.zeros((n + 1, b), dtype=np.int64)
    txt_before[1:] = cum_txt  # txt_before[i] = text rows among sorted positions < i
    idx = np.arange(n)[:, None]
    starts = np.ones((n, b), dtype=bool)
    starts[1:] = ends[:-1]
    group_start = np.maximum.accumulate(np.where(starts, idx, 0), axis=0)
    group_end = np.minimum.accumulate(np.where(ends, idx, n - 1)[::-1], axis=0)[::-1]
    below = np.take_along_axis(txt_before, group_start, axis=0)
    through = np.take_along_axis(txt_before, group_end + 1, axis=0)
    auc = (0.5 * (below + through) * lab).sum(axis=0) / (n_img * n_txt)
    return accuracy, threshold, orientation, auc


def _lda_line(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """Fisher LDA direction with equal priors: ``w = S_w^+ (m_a - m_b)``, ``b0 = -w · (m_a + m_b) / 2``.

    ``a`` (n_a, k) is the class predicted where ``w · x + b0 > 0``.
    """
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    sw = (np.cov(a, rowvar=False) * (len(a) - 1) + np.cov(b, rowvar=False) * (len(b) - 1)) / (len(a) + len(b) - 2)
    w = np.linalg.pinv(np.atleast_2d(sw)) @ (ma - mb)
    return w, float(-w @ (ma + mb) / 2)


def _fisher_ratio(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Fisher ratio of the projection on ``w``: ``(wᵀ(m_a - m_b))² / (wᵀ S_w w)``, S_w the pooled within-class covariance.

    inf when the classes do not spread along ``w`` but their means differ; 0 when neither.
    """
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    sw = (np.cov(a, rowvar=False) * (len(a) - 1) + np.cov(b, rowvar=False) * (len(b) - 1)) / (len(a) + len(b) - 2)
    between = float(w @ (ma - mb)) ** 2
    within = float(w @ np.atleast_2d(sw) @ w)
    if within > 0:
        return between / within
    return float("inf") if between > 0 else 0.0


def _balanced_accuracy(score_a: np.ndarray, score_b: np.ndarray) -> float:
    """Balanced accuracy of "class a where score > 0"."""
    return 0.5 * (float((score_a > 0).mean()) + float((score_b <= 0).mean()))


def linear_cv_accuracy(img: np.ndarray, txt: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Stratified k-fold accuracy of a logistic regression on all standardised features.

    Each training fold is standardised with its own mean and std (ddof = 0, a
    constant feature is left unscaled), the held-out fold with the same
    numbers, and scikit-learn ``LogisticRegression(C=1.0, max_iter=1000)`` is
    fitted; folds come from ``StratifiedKFold(folds, shuffle=True,
    random_state=seed)``.  The score is the plain held-out accuracy averaged
    over folds (what ``cross_val_score`` of a ``StandardScaler`` +
    ``LogisticRegression`` pipeline gives, without its copies).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = np.vstack([img, txt], dtype=np.float64)  # (n, d), float64 whatever the rows' dtype
    y = np.r_[np.ones(len(img), dtype=np.int64), np.zeros(len(txt), dtype=np.int64)]
    scores = []
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        x_train, x_test = x[train], x[test]
        mean, std = x_train.mean(axis=0), x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train -= mean
        x_train /= std
        x_test -= mean
        x_test /= std
        with single_blas_thread():  # L-BFGS: many matrix-vector products
            model = LogisticRegression(C=1.0, max_iter=1000).fit(x_train, y[train])
        scores.append(float((model.predict(x_test) == y[test]).mean()))
    return float(np.mean(scores))


@dataclass(frozen=True, repr=False)
class SeparabilityResult(Result):
    """How well single features, the best feature pair and all features separate image from text.

    Attributes
    ----------
    threshold_accuracy : ndarray of shape (d,)
        Best in-sample balanced accuracy of one threshold on feature k (either orientation).
    threshold, orientation : ndarrays of shape (d,)
        That threshold, and +1 when "image" lies above it (-1 below).
    auc : ndarray of shape (d,)
        ROC AUC of feature k as a score for "image" (ties count one half).
    dprime : ndarray of shape (d,)
        ``(mean_img - mean_txt) / sqrt((var_img + var_txt) / 2)``, ddof = 1.
    ranking : ndarray of int, shape (d,)
        Feature indices (0-based), best first: threshold accuracy descending,
        ties by ``|dprime|`` descending, then by index.
    mean_image, mean_text, std_image, std_text : ndarrays of shape (d,)
        Per-feature means and standard deviations (ddof = 1).
    best_pair : tuple of int or None
        The two features (among the top 10 of ``ranking``) whose 2-feature LDA
        line has the highest in-sample balanced accuracy; ties broken by the
        larger Fisher ratio of the pair's projection, then by feature index.
    best_pair_accuracy : float or None
    best_pair_fisher : float or None
        Fisher ratio ``(wᵀ(μ_img - μ_txt))² / (wᵀ S_w w)`` of that pair's LDA projection.
    best_pair_ties : int
        How many pairs reached ``best_pair_accuracy`` (1: no tie).
    best_pair_w : ndarray of shape (2,) or None
    best_pair_b : float or None
        The line: "image" where ``w[0] x[f0] + w[1] x[f1] + b > 0``.
    linear_cv_accuracy : float or None
        5-fold stratified cross-validated accuracy on all features (None when skipped).
    """

    threshold_accuracy: np.ndarray
    threshold: np.ndarray
    orientation: np.ndarray
    auc: np.ndarray
    dprime: np.ndarray
    ranking: np.ndarray
    mean_image: np.ndarray
    mean_text: np.ndarray
    std_image: np.ndarray
    std_text: np.ndarray
    best_pair: tuple[int, int] | None
    best_pair_accuracy: float | None
    best_pair_w: np.ndarray | None
    best_pair_b: float | None
    linear_cv_accuracy: float | None
    linear_cv_skipped: str | None = None
    best_pair_fisher: float | None = None
    best_pair_ties: int = 0

    _arrays = (
        "threshold_accuracy", "threshold", "orientation", "auc", "dprime", "ranking",
        "mean_image", "mean_text", "std_image", "std_text", "best_pair_w",
    )  # fmt: skip

    @property
    def rank(self) -> np.ndarray:
        """0-based rank of every feature (0 = most separating), shape (d,)."""
        rank = np.empty_like(self.ranking)
        rank[self.ranking] = np.arange(len(self.ranking))
        return rank

    def separating_features(self, accuracy: float = 1.0) -> np.ndarray:
        """Features whose single-threshold accuracy is at least ``accuracy``, best first."""
        return self.ranking[self.threshold_accuracy[self.ranking] >= accuracy - 1e-12]

    @property
    def modality_label_features(self) -> np.ndarray:
        """The "modality label" features: single-threshold accuracy >= 0.95, best first (SPEC §2)."""
        return self.separating_features(MODALITY_LABEL_ACCURACY)

    def _summary(self) -> dict[str, Any]:
        features = [
            {
                "feature": int(k),
                "threshold_accuracy": self.threshold_accuracy[k],
                "auc": self.auc[k],
                "dprime": self.dprime[k],
            }
            for k in self.ranking
        ]
        best = None
        if self.best_pair is not None:
            best = {
                "features": list(self.best_pair),
                "accuracy": self.best_pair_accuracy,
                "fisher_ratio": self.best_pair_fisher,
                "w": self.best_pair_w,
                "b": self.best_pair_b,
                "classifier": "LDA, equal priors; accuracy is balanced, in-sample",
                "tie_break": "larger Fisher ratio of the pair's LDA projection, then lower feature index",
            }
        label = self.modality_label_features
        return {
            "features": features,
            "best_pair": best,
            "best_pair_ties": int(self.best_pair_ties),
            "modality_label_features": [int(k) for k in label],
            "n_modality_label_features": int(len(label)),
            "modality_label_criterion": MODALITY_LABEL_CRITERION,
            "linear_cv_accuracy": self.linear_cv_accuracy,
            "linear_cv_skipped": self.linear_cv_skipped,
            "n_perfect": int((self.threshold_accuracy >= 1.0).sum()),
        }

    def to_frame(self):
        """One row per feature (0-based ``feature``), in feature order, with its ``rank``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "feature": np.arange(len(self.ranking)),
                "rank": self.rank,
                "threshold_accuracy": self.threshold_accuracy,
                "threshold": self.threshold,
                "orientation": self.orientation,
                "auc": self.auc,
                "dprime": self.dprime,
                "mean_image": self.mean_image,
                "mean_text": self.mean_text,
                "std_image": self.std_image,
                "std_text": self.std_text,
            }
        )


def feature_separability(
    img: object,
    txt: object,
    *,
    top_k: int = 10,
    cv_folds: int = 5,
    linear_cv: bool = True,
    seed: int = 0,
) -> SeparabilityResult:
    """Separate image rows from text rows with one feature, two features, and all features.

    Parameters
    ----------
    img : array-like of shape (n_image, d)
    txt : array-like of shape (n_text, d)
        Raw embeddings of the two modalities (need not be paired).
    top_k : int
        ``best_pair`` is searched among the ``top_k`` best single features.
    cv_folds : int
        Folds of the stratified cross-validation of ``linear_cv_accuracy``.
    linear_cv : bool
        Set False to skip the cross-validated classifier (the slowest part).
    seed : int
        Shuffling seed of the folds.

    Returns
    -------
    SeparabilityResult

    Notes
    -----
    Choices made here (SPEC §2 leaves them open):

    - ``threshold_accuracy`` scans every cut between distinct sorted values of
      the pooled column (vectorised: one sort per column, cumulative counts),
      so it is exact, in-sample and balanced: ``(recall_img + recall_txt) / 2``.
    - ``best_pair`` uses Fisher's linear discriminant with equal priors
      (``w = S_w^+ (m_img - m_txt)``, threshold at the midpoint of the class
      means) and scores it by in-sample balanced accuracy.  Ties are common
      (once one feature separates 100 %, every pair holding it does) and are
      broken by the larger Fisher ratio of the pair's projection, then by
      the lower (sorted) feature indices; ``best_pair_ties`` counts them.
    - ``modality_label_features``: single-threshold accuracy >= 0.95.
    - ``linear_cv_accuracy`` is a logistic regression (C = 1) on standardised
      features, see :func:`linear_cv_accuracy`; it is skipped (None, with the
      reason in ``linear_cv_skipped``) when a class has fewer rows than folds.
    """
    a, b = float_pair(img, txt)  # float32 rows stay float32: columns widened block by block
    n_img, n_txt, d = len(a), len(b), a.shape[1]
    is_image = np.r_[np.ones(n_img, dtype=bool), np.zeros(n_txt, dtype=bool)]
    accuracy = np.empty(d)
    threshold = np.empty(d)
    orientation = np.empty(d, dtype=np.int64)
    auc = np.empty(d)
    for start in range(0, d, _BLOCK_COLUMNS):
        cols = slice(start, min(start + _BLOCK_COLUMNS, d))
        block = np.vstack([a[:, cols], b[:, cols]], dtype=np.float64)
        accuracy[cols], threshold[cols], orientation[cols], auc[cols] = _scan_block(block, is_image)

    mean_i, mean_t = column_mean(a), column_mean(b)
    var_i, var_t = column_var(a, ddof=1, mean=mean_i), column_var(b, ddof=1, mean=mean_t)
    pooled = np.sqrt((var_i + var_t) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        dprime = (mean_i - mean_t) / pooled
    abs_d = np.nan_to_num(np.abs(dprime), nan=-1.0, posinf=np.inf)
    ranking = np.lexsort((np.arange(d), -abs_d, -accuracy))

    best_pair = best_acc = best_w = best_b = best_fisher = None
    ties = 0
    top = ranking[: max(2, min(top_k, d))]
    scored = []
    for i, j in itertools.combinations(top, 2):
        cols = [int(i), int(j)]
        pa, pb = a[:, cols].astype(np.float64), b[:, cols].astype(np.float64)  # (n, 2) each
        w, b0 = _lda_line(pa, pb)
        acc = _balanced_accuracy(pa @ w + b0, pb @ w + b0)
        scored.append((acc, _fisher_ratio(pa, pb, w), (cols[0], cols[1]), w, b0))
    if scored:
        best_acc = max(item[0] for item in scored)
        tied = [item for item in scored if item[0] >= best_acc - _TIE]
        ties = len(tied)
        # the larger Fisher ratio wins, then the lower sorted feature indices
        _, best_fisher, best_pair, best_w, best_b = min(tied, key=lambda item: (-item[1], sorted(item[2])))

    cv, cv_skipped = None, None
    if not linear_cv:
        cv_skipped = "not requested"
    elif min(n_img, n_txt) < cv_folds:
        cv_skipped = f"needs at least {cv_folds} rows per modality for {cv_folds}-fold cross-validation"
    else:
        cv = linear_cv_accuracy(a, b, folds=cv_folds, seed=seed)
    return SeparabilityResult(
        threshold_accuracy=accuracy,
        threshold=threshold,
        orientation=orientation,
        auc=auc,
        dprime=dprime,
        ranking=ranking,
        mean_image=mean_i,
        mean_text=mean_t,
        std_image=np.sqrt(var_i),
        std_text=np.sqrt(var_t),
        best_pair=best_pair,
        best_pair_accuracy=best_acc,
        best_pair_w=best_w,
        best_pair_b=best_b,
        linear_cv_accuracy=cv,
        linear_cv_skipped=cv_skipped,
        best_pair_fisher=best_fisher,
        best_pair_ties=ties,
    )
