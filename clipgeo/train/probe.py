"""Linear probes of trained runs: frozen features of a tower, labels of the captioned shapes.

The probe itself (:func:`linear_probe`, :func:`linear_probe_split`, :class:`ProbeResult`) is
numpy / scikit-learn only and lives in :mod:`clipgeo.analyzers._probe`; it is re-exported here.
:func:`shape_labels` turns the built-in captioned shapes into label vectors,
:func:`frozen_features` runs an encoder over inputs without gradient, and :func:`probe_runs`
probes run folders (read by :mod:`clipgeo.train.runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .runs import EVAL_SEED, build_objective, load_run, tower_of

if TYPE_CHECKING:
    from ..analyzers._probe import ProbeResult

_FROM_ANALYZERS = ("ProbeResult", "linear_probe", "linear_probe_split")

__all__ = [
    "LABELS",
    "frozen_features",
    "label_names",
    "probe_objective",
    "probe_runs",
    "shape_labels",
    "tower_features",
]

LABELS = ("shape", "color", "size", "position")
_ALIASES = {"colour": "color"}


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
        raise InputError(f"{type(data).__name__} carries no shape attributes; use the captioned shapes (shapes=N)")
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
    objective : clipgeo.train.objective.Objective
        Built with the weights to evaluate (see :func:`clipgeo.train.runs.build_objective`).
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
    from ..analyzers._probe import linear_probe

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
        Default: :data:`clipgeo.train.runs.EVAL_SEED` + 1 (no run trains on it by default).
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

    for name in labels:
        label_names(name)
    if not run_dirs and not baseline_model:
        raise InputError("nothing to probe; pass RUN_DIRs of clipgeo train, or baseline_model=NAME")
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


def __getattr__(name: str) -> Any:
    # the probe itself is the analyzers' (scikit-learn); imported when first asked for
    if name in _FROM_ANALYZERS:
        from ..analyzers import _probe

        return getattr(_probe, name)
    raise AttributeError(f"module 'clipgeo.train.probe' has no attribute {name!r}")
