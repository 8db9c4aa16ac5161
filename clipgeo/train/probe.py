"""Linear probe on frozen features: the standard evaluation of self-supervised objectives.

A multinomial logistic regression (scikit-learn ``LogisticRegression``, L2,
lbfgs) is fitted on standardised frozen features of a training split and
scored on a held-out split.  Its accuracy says how linearly decodable a label
(a shape's class, its colour …) is from the embedding.

:func:`linear_probe` works on any arrays; :func:`shape_labels` turns the
built-in captioned shapes into label vectors, and :func:`frozen_features`
runs an encoder over inputs without gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError

LABELS = ("shape", "color", "size", "position")
_ALIASES = {"colour": "color"}


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
    if not (C > 0 and np.isfinite(C)):
        raise InputError(f"C must be a positive number, got {C}")
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


def label_names(name: str) -> list[str]:
    """The class names of a label of the captioned shapes, in label order.

    Parameters
    ----------
    name : {"shape", "color" (or "colour"), "size", "position"}
    """
    from ..data import shapes

    key = _ALIASES.get(name, name)
    if key not in LABELS:
        raise InputError(f"unknown shapes label {name!r}; use one of {', '.join(LABELS)}")
    return {"shape": list(shapes.SHAPES), "color": list(shapes.COLORS), "size": list(shapes.SIZES),
            "position": list(shapes.POSITIONS)}[key]  # fmt: skip


def shape_labels(data: Any, name: str) -> np.ndarray:
    """Integer labels of a :class:`clipgeo.data.shapes.CaptionedShapes` dataset.

    Parameters
    ----------
    data : CaptionedShapes
    name : {"shape", "color" (or "colour"), "size", "position"}

    Returns
    -------
    ndarray of shape (len(data),), int64: index of the attribute in :func:`label_names`.
    """
    vocab = label_names(name)
    key = _ALIASES.get(name, name)
    specs = getattr(data, "specs", None)
    if specs is None:
        raise InputError(f"{type(data).__name__} carries no shape attributes; use the captioned shapes (--shapes N)")
    return np.array([vocab.index(getattr(spec, key)) for spec in specs], dtype=np.int64)


def frozen_features(
    encoder: Callable, inputs: Sequence[Any], *, batch_size: int = 256, collate: Callable | None = None, device: str = "cpu"
) -> np.ndarray:
    """Run ``encoder`` over ``inputs`` in eval mode without gradient; raw (un-normalised) features.

    Parameters
    ----------
    encoder : torch module or callable, batch -> Tensor (B, d)
    inputs : sequence
        Items a batch is built from (tensors, or anything ``collate`` turns into a batch).
    batch_size : int
    collate : callable, optional
        list of items -> batch tensor; default ``torch.stack``.
    device : str

    Returns
    -------
    ndarray of shape (len(inputs), d), float64.
    """
    import torch

    was_training = getattr(encoder, "training", None)
    if was_training is not None:
        encoder.eval()
    collate = collate or torch.stack
    out = []
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                batch = collate(list(inputs[start : start + batch_size]))
                batch = batch.to(device) if hasattr(batch, "to") else batch
                out.append(encoder(batch).float().cpu().double().numpy())
    finally:
        if was_training:
            encoder.train()
    if not out:
        raise InputError("no inputs to encode; give at least one sample")
    return np.concatenate(out)


def tower_features(model: Any, source: Any, tower: str, *, preprocess: Callable, tokenizer: Callable,
                   batch_size: int = 256, device: str = "cpu") -> np.ndarray:  # fmt: skip
    """Raw features of a sample source from one tower of an open_clip model.

    Parameters
    ----------
    model : open_clip CLIP
    source : sequence of (image, caption)
    tower : {"image", "text"}
        Images through ``preprocess`` and ``encode_image``, or captions through
        ``tokenizer`` and ``encode_text`` (both un-normalised).
    preprocess, tokenizer : the model's evaluation transform and tokenizer

    Returns
    -------
    ndarray of shape (len(source), d), float64.
    """
    from .data import load_rgb

    if tower == "image":
        inputs = [preprocess(load_rgb(source[i][0])) for i in range(len(source))]
        return frozen_features(lambda x: model.encode_image(x, normalize=False), inputs, batch_size=batch_size, device=device)
    if tower == "text":
        captions = getattr(source, "captions", None) or [source[i][1] for i in range(len(source))]
        tokens = tokenizer([str(c) for c in captions])  # (n, L)
        return frozen_features(lambda t: model.encode_text(t, normalize=False), list(tokens), batch_size=batch_size,
                               device=device)  # fmt: skip
    raise InputError(f"unknown tower {tower!r}; use image or text")


def probe_objective(objective: Any, source: Any, labels: Sequence[str] = ("shape", "color"), *, seed: int = 0,
                    tower: str | None = None) -> dict[str, ProbeResult]:  # fmt: skip
    """Linear-probe accuracy of the tower an objective trains, on labels of captioned shapes.

    Parameters
    ----------
    objective : clipgeo.train.trainer.Objective
        Built with the weights to evaluate (see :func:`clipgeo.train.compare.build_objective`).
    source : CaptionedShapes
        Evaluation shapes (not trained on).
    labels : sequence of str
    seed : int
        Seed of the train/test split of the probe.
    tower : {"image", "text"}, optional
        Default: the objective's own tower (text for SimCSE, else image).

    Returns
    -------
    dict label -> ProbeResult
    """
    from .compare import tower_of

    loaded = objective.ctx.loaded
    tower = tower or tower_of(objective)
    features = tower_features(objective.model, source, tower, preprocess=loaded.preprocess_val,
                              tokenizer=loaded.tokenizer, device=str(objective.ctx.device))  # fmt: skip
    return {name: linear_probe(features, shape_labels(source, name), seed=seed) for name in labels}


def probe_runs(
    run_dirs: Sequence[Any],
    *,
    labels: Sequence[str] = ("shape", "color"),
    n: int = 1000,
    seed: int | None = None,
    baseline: bool = True,
    baseline_model: str | None = None,
    tower: str | None = None,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """Linear-probe accuracy of trained runs (and a random-weights baseline) on fresh captioned shapes.

    Parameters
    ----------
    run_dirs : sequence of paths
        RUN_DIRs of ``clipgeo train``; may be empty when ``baseline_model`` is given.
    labels : sequence of str
        ``shape``, ``color``, ``size``, ``position``.
    n : int
        Shapes drawn for the probe (seed ``seed``; 75 % fit, 25 % held out).
    seed : int, optional
        Default: :data:`clipgeo.train.compare.EVAL_SEED` + 1 (no run trains on it by default).
    baseline : bool
        Add a row for each distinct architecture with random weights.
    baseline_model : str, optional
        Architecture of a baseline row even without runs.
    tower : {"image", "text"}, optional
        Default: the tower each objective trains.

    Returns
    -------
    list of dict: ``run``, ``objective``, ``model``, ``tower`` and per label
    ``<label>`` (held-out accuracy), ``<label>_chance``, ``<label>_train``.
    """
    from ..data.shapes import CaptionedShapes
    from .compare import EVAL_SEED, build_objective, load_run, tower_of

    for name in labels:
        label_names(name)
    if not run_dirs and not baseline_model:
        raise InputError("nothing to probe; pass RUN_DIRs of clipgeo train, or --baseline-model NAME")
    if n < 20:
        raise InputError(f"the probe needs at least 20 samples, got {n}")
    seed = EVAL_SEED + 1 if seed is None else int(seed)
    source = CaptionedShapes(n, seed=seed)
    rows: list[dict[str, Any]] = []
    towers: list[tuple[str, str]] = []  # (model, tower) of the baseline rows

    def row(label: str, objective_name: str, model: str, objective: Any, chosen: str) -> dict[str, Any]:
        out: dict[str, Any] = {"run": label, "objective": objective_name, "model": model, "tower": chosen}
        for name, result in probe_objective(objective, source, labels, seed=seed, tower=chosen).items():
            out[name] = result.accuracy
            out[f"{name}_chance"] = result.chance
            out[f"{name}_train"] = result.train_accuracy
        return out

    for run_dir in run_dirs:
        run = load_run(run_dir)
        objective = build_objective(run, device=device)
        chosen = tower or tower_of(objective)
        if (run.model, chosen) not in towers:
            towers.append((run.model, chosen))
        rows.append(row(run.path.name, run.objective, run.model, objective, chosen))
    if baseline_model and (baseline_model, tower or "image") not in towers:
        towers.append((baseline_model, tower or "image"))
    if baseline or baseline_model:
        for model, chosen in towers:
            # the CLIP objective only wraps the randomly initialised model here
            objective = build_objective(None, model=model, objective="clip", device=device)
            rows.append(row("random init", "none", model, objective, chosen))
    return rows
