"""Linear probe on frozen features: the standard evaluation of self-supervised objectives.

A multinomial logistic regression (scikit-learn ``LogisticRegression``, L2, lbfgs) is fitted
on standardised frozen features of a training split and scored on a held-out split.  Its
accuracy says how linearly decodable a label (a shape's class, its colour …) is from the
embedding.  numpy and scikit-learn only: features from any encoder, as arrays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import check_positive

__all__ = ["ProbeResult", "linear_probe", "linear_probe_split"]


@dataclass(frozen=True)
class ProbeResult:
    """Held-out accuracy of a linear probe.

    Attributes
    ----------
    accuracy : float
        Accuracy on the held-out split.
    train_accuracy : float
        Accuracy on the split it was fitted on.
    chance : float
        Accuracy of always predicting the most frequent training class, on the held-out split.
    n_train, n_test, n_classes, dim : int
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    """

    accuracy: float
    train_accuracy: float
    chance: float
    n_train: int
    n_test: int
    n_classes: int
    dim: int
    C: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_xy(features: Any, labels: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features)
    y = np.asarray(labels)
    if x.ndim != 2:
        raise InputError(f"{what} features must be a 2-D array (n_samples, dim), got shape {x.shape}; reshape them")
    if y.shape != (len(x),):
        raise InputError(f"{what} labels must be a 1-D array with one label per feature row ({len(x)}), got shape {y.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise InputError(f"{what} features contain NaN or infinite values; check the encoder output")
    return x, y


def linear_probe_split(
    train_features: Any,
    train_labels: Any,
    test_features: Any,
    test_labels: Any,
    *,
    C: float = 1.0,
    max_iter: int = 2000,
) -> ProbeResult:
    """Fit a logistic-regression probe on one split and score it on another.

    Parameters
    ----------
    train_features : array of shape (n_train, d)
    train_labels : array of shape (n_train,)
    test_features : array of shape (n_test, d)
    test_labels : array of shape (n_test,)
    C : float
        Inverse regularisation strength.
    max_iter : int
        lbfgs iterations.

    Returns
    -------
    ProbeResult
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = _check_xy(train_features, train_labels, "training")
    x_test, y_test = _check_xy(test_features, test_labels, "test")
    if x_train.shape[1] != x_test.shape[1]:
        raise InputError(f"training features have {x_train.shape[1]} columns, test features {x_test.shape[1]}; use one encoder")
    classes, counts = np.unique(y_train, return_counts=True)
    if len(classes) < 2:
        raise InputError("the probe's training split holds a single class; give labels with at least two classes")
    check_positive(C, "C")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    probe.fit(x_train, y_train)
    majority = classes[np.argmax(counts)]
    return ProbeResult(
        accuracy=float(np.mean(probe.predict(x_test) == y_test)),
        train_accuracy=float(np.mean(probe.predict(x_train) == y_train)),
        chance=float(np.mean(y_test == majority)),
        n_train=len(y_train),
        n_test=len(y_test),
        n_classes=len(classes),
        dim=x_train.shape[1],
        C=float(C),
    )


def linear_probe(
    features: Any, labels: Any, *, test_fraction: float = 0.25, seed: int = 0, C: float = 1.0, max_iter: int = 2000
) -> ProbeResult:
    """Held-out accuracy of a logistic-regression probe on a stratified random split.

    Parameters
    ----------
    features : array of shape (n_samples, d)
        Frozen (raw) features.
    labels : array of shape (n_samples,)
        Class of each row; every class needs at least 2 rows.
    test_fraction : float in (0, 1)
        Share of the rows held out.
    seed : int
        Seed of the split.
    C, max_iter
        See :func:`linear_probe_split`.

    Returns
    -------
    ProbeResult
    """
    from sklearn.model_selection import train_test_split

    x, y = _check_xy(features, labels, "probe")
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise InputError("the labels hold a single class; a probe needs at least two")
    if counts.min() < 2:
        rare = classes[np.argmin(counts)]
        raise InputError(f"class {rare!r} has a single sample; a stratified split needs >= 2 per class (use more samples)")
    n_test = max(int(round(test_fraction * len(y))), len(classes))
    if len(y) - n_test < len(classes):
        raise InputError(f"{len(y)} samples are too few for a held-out split over {len(classes)} classes; use more samples")
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=n_test, stratify=y, random_state=seed)
    return linear_probe_split(x_train, y_train, x_test, y_test, C=C, max_iter=max_iter)
