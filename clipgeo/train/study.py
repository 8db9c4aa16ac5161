"""The geometry study: which training ingredient makes a small CLIP keep the double ellipsoid?

Real CLIP keeps a modality gap (l2 centroid distance 0.82–0.92), ellipsoids far from the origin
(offset ratio ‖m‖/‖σ‖ near 1 in both modalities) and features that separate image from text
rows on their own (100 %); a tiny CLIP trained naively on the built-in shapes closes the gap
and centres both clouds.  :func:`study` trains a grid of short runs on the same built-in data
(:class:`clipgeo.data.shapes.CaptionedShapes`), one ingredient changed at a time, and measures
each one's final geometry on fresh shapes with the public analyzers:

- temperature: learnable from 1/0.07 (CLIP's start), fixed 0.01 (CLIP's end value), fixed 0.07
  (Liang et al. 2022: a low temperature preserves the gap present at initialisation);
- information asymmetry (the paper's explanation): captions that name a random half of an
  image's attributes, and two marks in every image that no caption mentions;
- frequent content / false negatives: a long-tailed attribute distribution (some captions recur
  often, so a batch holds near-duplicate negatives);
- initialisation: open_clip's random init (each tower's outputs in a narrow cone, Liang et al.'s
  "cone effect") vs a centred init (each tower's raw outputs shifted to mean 0 at step 0).

Each run logs the geometry over training (its ``metrics.csv``); after training, the run embeds
``n_eval`` fresh shapes (seed :data:`clipgeo.train.runs.EVAL_SEED`, the run's generator options),
and the analyzers give, per run: l2 modality gap (:func:`clipgeo.modality_gap`), offset ratio
per modality (:func:`clipgeo.ellipsoid_offset`), the best single feature's balanced accuracy
and the 5-fold linear accuracy (:func:`clipgeo.feature_separability`), thin-shell relative
thickness per modality (:func:`clipgeo.thin_shell`), the spread (std, ddof = 1) of the exact
conformity per modality (:func:`clipgeo.conformity`), and held-out recall@1 image → text with
its chance level.  Recall counts a hit when the retrieved caption's text is the image's own
caption (captions recur, by design, in the asymmetric and long-tailed data); chance is
``Σ_c (n_c / n)²`` over distinct captions ``c``.  Strict recall (the pair itself) is kept too.

A setting **reproduces the double ellipsoid** when, averaged over its seeds: (a) the gap
persists, ``l2 gap ≥`` :data:`GAP_MIN`; (b) the offset ratio is ``≥`` :data:`OFFSET_MIN` in both
modalities; (c) a single feature separates ``≥`` :data:`FEATURE_MIN`; and held-out recall is
well above chance, ``≥`` :data:`RECALL_FACTOR` × chance.

Outputs (``out``): ``runs/<run>/`` (each trainer run plus its ``study_row.json``), ``study.csv``
(one row per run), ``study.md`` (the per-setting table, the per-run table and the finding),
``study.json`` (rows, summary, finding, configuration, provenance) and the figure
``study_figure.png`` with its numbers in ``study_figure.json``.  A setting whose
``study_row.json`` exists is not trained again, so an interrupted study continues.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, write_json, write_text
from ..errors import InputError
from ..validation import check_count, check_positive

__all__ = [
    "FEATURE_MIN",
    "GAP_MIN",
    "INGREDIENTS",
    "OFFSET_MIN",
    "PRESETS",
    "RECALL_FACTOR",
    "Setting",
    "StudyConfig",
    "StudyResult",
    "grid",
    "preset",
    "study",
]

#: (a) a persistent gap: final l2 centroid distance at least this (real CLIP: 0.82–0.92; untrained tiny: ≈ 1.3)
GAP_MIN = 0.4
#: (b) the ellipsoids sit away from the origin: offset ratio ‖m‖/‖σ‖ at least this in both modalities
OFFSET_MIN = 0.5
#: (c) a modality-separating feature: best single-feature balanced accuracy at least this
FEATURE_MIN = 0.95
#: held-out recall@1 (caption level) at least this many times chance
RECALL_FACTOR = 10.0

#: ingredient name -> what it changes in a :class:`Setting`
INGREDIENTS: dict[str, dict[str, Any]] = {
    "asymmetry": {"describe": 0.5, "undescribed_marks": 2},
    "long-tail": {"long_tail": 1.5},
    "centred": {"init": "centred"},
}
#: CLIP's initial temperature (the learnable scale starts at its inverse)
CLIP_INIT_TEMPERATURE = 0.07


@dataclass(frozen=True)
class Setting:
    """One training setting of the study (one run per seed).

    Attributes
    ----------
    temperature : float or None
        Fixed temperature τ (the logit scale 1/τ is not learned); None: learnable logit scale
        from 1/0.07, clamped at 100 after each optimizer step.
    init : {"random", "centred"}
        open_clip's random initialisation, or the same shifted so that each tower's raw outputs
        have mean 0 over the first training samples (:class:`clipgeo.train.config.TrainConfig`).
    describe, undescribed_marks, long_tail
        Options of the captioned shapes (:class:`clipgeo.data.shapes.CaptionedShapes`).
    seed : int
        Seeds the data, the initialisation and the training order.
    """

    temperature: float | None = None
    init: str = "random"
    describe: float = 1.0
    undescribed_marks: int = 0
    long_tail: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.temperature is not None:
            check_positive(self.temperature, "temperature")
        if self.init not in ("random", "centred"):
            raise InputError(f"unknown init {self.init!r}; choose random or centred")

    @property
    def temperature_label(self) -> str:
        return "learnable" if self.temperature is None else f"fixed {self.temperature:g}"

    @property
    def data_label(self) -> str:
        parts = []
        if self.describe != 1.0 or self.undescribed_marks:
            parts.append("asymmetric")
        if self.long_tail:
            parts.append("long-tail")
        return " + ".join(parts) or "plain"

    @property
    def group(self) -> str:
        """The setting without its seed, e.g. ``"fixed 0.01 / asymmetric / random init"``."""
        return f"{self.temperature_label} / {self.data_label} / {self.init} init"

    @property
    def run_name(self) -> str:
        """Folder name of the run, e.g. ``fixed0.01_asymmetric_random_seed0``."""
        t = "learnable" if self.temperature is None else f"fixed{self.temperature:g}"
        return f"{t}_{self.data_label.replace(' + ', '+')}_{self.init}_seed{self.seed}"

    def data_options(self) -> dict[str, Any]:
        return {"describe": self.describe, "undescribed_marks": self.undescribed_marks, "long_tail": self.long_tail}


def grid(
    temperatures: Iterable[float | None] = (None, 0.01, 0.07),
    seeds: Iterable[int] = (0, 1, 2),
    ingredients: Iterable[str] = ("asymmetry", "long-tail", "centred"),
    ingredient_temperatures: Iterable[float | None] = (None, 0.01),
    ingredient_seeds: Iterable[int] = (0,),
) -> tuple[Setting, ...]:
    """The study's grid: every temperature × every seed on the plain data, then each ingredient alone.

    Parameters
    ----------
    temperatures : iterable of float or None
        None: learnable from 1/0.07; a float: that fixed temperature.
    seeds : iterable of int
        Seeds of the temperature runs (the main factor).
    ingredients : iterable of str
        Names in :data:`INGREDIENTS`, each added alone to the plain setting.
    ingredient_temperatures, ingredient_seeds
        The temperatures and seeds each ingredient is tried at.

    Returns
    -------
    tuple of Setting
        Without duplicates, in order.
    """
    settings = [Setting(temperature=t, seed=int(s)) for t in temperatures for s in seeds]
    for name in ingredients:
        if name not in INGREDIENTS:
            raise InputError(f"unknown ingredient {name!r}; choose from {', '.join(INGREDIENTS)}")
        for t in ingredient_temperatures:
            settings += [Setting(temperature=t, seed=int(s), **INGREDIENTS[name]) for s in ingredient_seeds]
    return tuple(dict.fromkeys(settings))


@dataclass(frozen=True)
class StudyConfig:
    """The grid and the size of each run.

    Attributes
    ----------
    settings : tuple of Setting
    n_train : int
        Captioned shapes per run (the trainer holds out ``heldout`` of them for its log).
    n_eval : int
        Fresh shapes (seed ``EVAL_SEED``) each run is measured on at the end.
    epochs, batch_size, lr : int, int, float
        The schedule of every run (AdamW, warm-up + cosine, as :func:`clipgeo.train.train`).
    grad_clip : float or None
        Gradient-norm clip of every run.  1 by default: without it a run at fixed τ = 0.01 from
        the random init often collapses first (every text embedding the same direction, the loss
        on the ``log B`` plateau) and learns late or not at all in a short run.
    heldout : int
        Held-out samples of the trainer's log.
    model : str
        Architecture (``tiny``: CPU-sized).
    jobs : int
        Runs trained at the same time, each in its own process.
    threads : int
        Torch threads per run.
    preset : str or None
        The preset this configuration came from.
    """

    settings: tuple[Setting, ...]
    n_train: int = 2000
    n_eval: int = 500
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    grad_clip: float | None = 1.0
    heldout: int = 200
    model: str = "tiny"
    jobs: int = 2
    threads: int = 1
    preset: str | None = None

    def __post_init__(self) -> None:
        if not self.settings:
            raise InputError("the study grid is empty; give at least one setting (e.g. the preset 'small')")
        for name in ("n_train", "n_eval", "epochs", "batch_size", "heldout", "jobs", "threads"):
            check_count(getattr(self, name), name)
        check_positive(self.lr, "lr")
        if self.grad_clip is not None:
            check_positive(self.grad_clip, "grad_clip")
        if self.n_eval < 10:
            raise InputError(f"n_eval must be at least 10 (recall and separability need rows), got {self.n_eval}")
        if self.n_train - self.heldout < self.batch_size:
            raise InputError(
                f"n_train={self.n_train} minus heldout={self.heldout} leaves less than one batch of {self.batch_size}; "
                "use more shapes or a smaller batch"
            )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["settings"] = [asdict(s) for s in self.settings]
        return out


def _small() -> StudyConfig:
    # 10 runs of 168 steps, 2 at a time: ≤ 20 minutes on 2 loaded cores (docs/train.md, the study).  Two seeds
    # for the learnable scale and for fixed 0.01 (the main factor), one for fixed 0.07; each data
    # ingredient at both the learnable scale and fixed 0.01, the centred init at fixed 0.01 (where a
    # gap present at initialisation would be preserved)
    settings = (
        grid(temperatures=(None, 0.01), seeds=(0, 1), ingredients=())
        + grid(temperatures=(0.07,), seeds=(0,), ingredients=())
        + grid(temperatures=(), ingredients=("asymmetry", "long-tail"), ingredient_temperatures=(None, 0.01))
        + grid(temperatures=(), ingredients=("centred",), ingredient_temperatures=(0.01,))
    )
    return StudyConfig(
        settings=settings, n_train=2000, n_eval=500, epochs=6, batch_size=64, lr=2e-3, heldout=200, preset="small",
    )  # fmt: skip


def _tiny() -> StudyConfig:
    # seconds: for tests and a first look at the outputs (nothing is learnt)
    return StudyConfig(
        settings=(Setting(temperature=None), Setting(temperature=0.01)),
        n_train=72, n_eval=24, epochs=1, batch_size=16, lr=2e-3, heldout=8, jobs=1, preset="tiny",
    )  # fmt: skip


def _full() -> StudyConfig:
    # the demo's size (6000 shapes, 12 epochs, batch 128), three seeds everywhere: about an hour on 2 cores
    return StudyConfig(
        settings=grid(seeds=(0, 1, 2), ingredient_seeds=(0, 1, 2)),
        n_train=6000, n_eval=1000, epochs=12, batch_size=128, lr=2e-3, heldout=256, preset="full",
    )  # fmt: skip


#: preset name -> its configuration
PRESETS: dict[str, Callable[[], StudyConfig]] = {"tiny": _tiny, "small": _small, "full": _full}


def preset(name: str, **overrides: Any) -> StudyConfig:
    """The configuration of a preset (``tiny``, ``small``, ``full``), with fields overridden.

    Raises
    ------
    InputError
        Unknown preset or field, or an override that makes the configuration invalid.
    """
    if name not in PRESETS:
        raise InputError(f"unknown study preset {name!r}; choose one of {', '.join(PRESETS)}")
    base = PRESETS[name]()
    unknown = sorted(set(overrides) - set(StudyConfig.__dataclass_fields__))
    if unknown:
        raise InputError(f"StudyConfig has no field {', '.join(unknown)}; see clipgeo.train.study.StudyConfig")
    return replace(base, **overrides)


# --------------------------------------------------------------------------- one run


def _source(setting: Setting, n: int, seed: int):
    from ..data.shapes import CaptionedShapes

    return CaptionedShapes(n, seed=seed, **setting.data_options())


def caption_recall(a: np.ndarray, b: np.ndarray, captions: Sequence[str]) -> tuple[float, float, float]:
    """Recall@1 of ``a → b`` by cosine, strict and at the caption level, with the caption-level chance.

    Parameters
    ----------
    a, b : ndarray of shape (n, d)
        Row i of ``a`` (images) is paired with row i of ``b`` (its caption).
    captions : sequence of str, length n

    Returns
    -------
    strict : float
        Fraction of rows whose most similar ``b`` row is their pair.
    caption : float
        Fraction whose most similar ``b`` row carries the same caption text.
    chance : float
        Caption-level recall of a random guess, ``Σ_c (n_c / n)²``.
    """
    ua = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    ub = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    top = (ua @ ub.T).argmax(axis=1)  # (n,)
    text = np.asarray(captions, dtype=object)
    _, counts = np.unique(text.astype(str), return_counts=True)
    chance = float(np.sum((counts / len(text)) ** 2))
    return float(np.mean(top == np.arange(len(a)))), float(np.mean(text[top] == text)), chance


def measure(a: np.ndarray, b: np.ndarray, captions: Sequence[str]) -> dict[str, float]:
    """The study's geometry of paired raw embeddings (image ``a``, text ``b``, each (n, d)), from the analyzers."""
    import warnings

    import clipgeo as cg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gap = cg.modality_gap(a, b)
        sep = cg.feature_separability(a, b)
        out: dict[str, float] = {"l2_gap": gap.l2_centroid_distance, "mean_matched_cosine": gap.mean_matched_cosine}
        for name, x in (("image", a), ("text", b)):
            out[f"offset_ratio_{name}"] = cg.ellipsoid_offset(x).ratio
        top = int(sep.ranking[0])
        out["best_feature"] = top
        out["best_feature_accuracy"] = float(sep.threshold_accuracy[top])
        out["linear_cv_accuracy"] = float("nan") if sep.linear_cv_accuracy is None else sep.linear_cv_accuracy
        for name, x in (("image", a), ("text", b)):
            out[f"relative_thickness_{name}"] = cg.thin_shell(x).relative_thickness
            out[f"conformity_spread_{name}"] = float(np.std(cg.conformity(x, method="exact").values, ddof=1))
    strict, by_caption, chance = caption_recall(a, b, captions)
    out.update({"r1_strict": strict, "chance_strict": 1.0 / len(a), "r1": by_caption, "chance": chance})
    return {k: float(v) for k, v in out.items()}


def run_setting(config: StudyConfig, setting: Setting, run_dir: str | Path) -> dict[str, Any]:
    """Train one setting, measure it on fresh shapes, write ``study_row.json``; returns the row."""
    import torch

    from .compare import embed_pairs
    from .config import TrainConfig
    from .runs import EVAL_SEED, build_objective, load_run
    from .trainer import train

    run_dir = Path(run_dir)
    row_path = run_dir / "study_row.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        started = time.perf_counter()
        source = _source(setting, config.n_train, setting.seed)
        resume = (run_dir / "checkpoint.pt").is_file() and not (run_dir / "model.safetensors").is_file()
        if not (run_dir / "model.safetensors").is_file():
            tc = TrainConfig(
                out=str(run_dir), model=config.model, pretrained="none", objective="clip", epochs=config.epochs,
                batch_size=config.batch_size, lr=config.lr, seed=setting.seed, device="cpu", precision="fp32",
                heldout=config.heldout, log_every=10**9, resume=resume, grad_clip=config.grad_clip,
                temperature=setting.temperature, init_temperature=None if setting.temperature is not None else
                CLIP_INIT_TEMPERATURE,
                init=setting.init,
                data={"source": "shapes", "n": config.n_train, "seed": setting.seed, **source.options()},
            )  # fmt: skip
            train(tc, source)
        train_seconds = time.perf_counter() - started
        objective = build_objective(load_run(run_dir))
        fresh = _source(setting, config.n_eval, EVAL_SEED)
        a, b, _ = embed_pairs(objective, fresh, seed=EVAL_SEED)
        logit_scale = float(objective.model.logit_scale.detach().exp())
    finally:
        torch.set_num_threads(threads)
    log = _read_metrics(run_dir / "metrics.csv")
    row: dict[str, Any] = {
        "run": setting.run_name, "setting": setting.group, "temperature": setting.temperature_label,
        "data": setting.data_label, "init": setting.init, "seed": setting.seed,
        "l2_gap_start": log[0].get("l2_centroid_distance", float("nan")) if log else float("nan"),
        **measure(a, b, fresh.captions),
        "logit_scale": logit_scale, "steps": int(log[-1]["step"]) if log else 0, "train_seconds": train_seconds,
    }  # fmt: skip
    write_json(row_path, row)
    return row


def _read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(handle)]


def _worker(config_dict: dict[str, Any], setting_dict: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Process-pool entry: rebuild the dataclasses (plain dicts cross the process boundary)."""
    import warnings

    warnings.simplefilter("ignore")
    settings = tuple(Setting(**s) for s in config_dict.pop("settings"))
    config = StudyConfig(settings=settings, **config_dict)
    return run_setting(config, Setting(**setting_dict), run_dir)


# --------------------------------------------------------------------------- the study


#: columns of the per-setting summary: (row key, header)
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("l2_gap_start", "gap at step 0"),
    ("l2_gap", "l2 gap"),
    ("offset_ratio_image", "offset image"),
    ("offset_ratio_text", "offset text"),
    ("best_feature_accuracy", "best feature"),
    ("linear_cv_accuracy", "linear 5-fold"),
    ("relative_thickness_image", "thickness image"),
    ("relative_thickness_text", "thickness text"),
    ("conformity_spread_image", "conf. spread image"),
    ("conformity_spread_text", "conf. spread text"),
    ("r1", "R@1 i→t"),
    ("chance", "chance"),
    ("logit_scale", "final logit scale"),
)


def criteria(row: dict[str, float]) -> dict[str, bool]:
    """Which of the study's criteria (module docstring) the numbers of ``row`` meet."""
    return {
        "gap": row["l2_gap"] >= GAP_MIN,
        "offset": min(row["offset_ratio_image"], row["offset_ratio_text"]) >= OFFSET_MIN,
        "feature": row["best_feature_accuracy"] >= FEATURE_MIN,
        "recall": row["r1"] >= RECALL_FACTOR * row["chance"],
    }


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per setting: mean and std (ddof = 1, 0 for one seed) over its seeds, and the criteria met."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["setting"], []).append(row)
    summary = []
    for members in groups.values():
        entry: dict[str, Any] = {k: members[0][k] for k in ("setting", "temperature", "data", "init")}
        entry["seeds"] = len(members)
        for key, _ in SUMMARY_COLUMNS:
            values = np.array([float(m[key]) for m in members], dtype=np.float64)
            entry[key] = float(np.mean(values))
            entry[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        met = criteria(entry)
        entry.update({f"meets_{k}": v for k, v in met.items()})
        entry["seeds_meeting_all"] = int(sum(all(criteria(m).values()) for m in members))
        entry["reproduces"] = all(met.values())
        summary.append(entry)
    return summary


@dataclass
class StudyResult:
    """What :func:`study` measured.

    Attributes
    ----------
    rows : list of dict
        One per run (see :data:`SUMMARY_COLUMNS` for the measured keys, plus ``run``, ``seed`` …).
    summary : list of dict
        One per setting (:func:`summarise`).
    finding : str
        The result in words (also in ``study.md``).
    paths : dict of str to Path
        ``csv``, ``markdown``, ``json``, ``figure`` and ``figure_json``.
    config : StudyConfig
    seconds : float
        Wall time of this invocation.
    """

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    finding: str
    paths: dict[str, Path] = field(default_factory=dict)
    config: StudyConfig | None = None
    seconds: float = 0.0

    @property
    def reproducing(self) -> list[str]:
        """The settings that reproduce the double ellipsoid (all criteria, mean over seeds)."""
        return [s["setting"] for s in self.summary if s["reproduces"]]


def study(
    config: StudyConfig | str = "small",
    out: str | Path = "study",
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> StudyResult:
    """Train every setting of ``config`` and write the study's table, figure and finding into ``out``.

    Parameters
    ----------
    config : StudyConfig or str
        A configuration, or the name of a preset (:data:`PRESETS`).
    out : path
        Output folder (created); runs already measured there are not trained again.
    progress : bool
        Print a line per finished run.
    log : callable, optional
        Where progress lines go (default: stderr).

    Returns
    -------
    StudyResult

    Raises
    ------
    InputError
        Unknown preset, empty grid, bad sizes.
    """
    import sys

    if isinstance(config, str):
        config = preset(config)
    if not isinstance(config, StudyConfig):
        raise InputError(f"config must be a StudyConfig or a preset name, got {type(config).__name__}")
    if not config.settings:
        raise InputError("the study grid is empty; give at least one setting (e.g. the preset 'small')")
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    todo: list[Setting] = []
    for setting in config.settings:
        row_path = out / "runs" / setting.run_name / "study_row.json"
        if row_path.is_file():
            import json

            rows[setting.run_name] = json.loads(row_path.read_text())
        else:
            todo.append(setting)
    if progress:
        say(f"study: {len(config.settings)} runs ({len(config.settings) - len(todo)} already done), "
            f"{config.jobs} at a time -> {out}")  # fmt: skip

    def done(setting: Setting, row: dict[str, Any]) -> None:
        rows[setting.run_name] = row
        if progress:
            say(f"  [{len(rows)}/{len(config.settings)}] {setting.run_name}: gap {row['l2_gap']:.3f}, offset "
                f"{row['offset_ratio_image']:.2f}/{row['offset_ratio_text']:.2f}, best feature "
                f"{100 * row['best_feature_accuracy']:.1f} %, R@1 {row['r1']:.3f} (chance {row['chance']:.3f}) "
                f"[{row['train_seconds']:.0f} s]")  # fmt: skip

    if todo and config.jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        plain = config.to_dict()
        context = multiprocessing.get_context("spawn")  # no forked torch threads
        with ProcessPoolExecutor(max_workers=min(config.jobs, len(todo)), mp_context=context) as pool:
            futures = {
                pool.submit(_worker, dict(plain), asdict(s), str(out / "runs" / s.run_name)): s for s in todo
            }
            for future in as_completed(futures):
                done(futures[future], future.result())
    else:
        for setting in todo:
            done(setting, run_setting(config, setting, out / "runs" / setting.run_name))

    ordered = [rows[s.run_name] for s in config.settings]
    summary = summarise(ordered)
    finding = describe_finding(summary)
    result = StudyResult(rows=ordered, summary=summary, finding=finding, config=config,
                         seconds=time.perf_counter() - started)  # fmt: skip
    result.paths = write_study(result, out)
    return result


# --------------------------------------------------------------------------- the finding and the outputs


def describe_finding(summary: Sequence[dict[str, Any]]) -> str:
    """The study's result in a few sentences, from the per-setting summary."""
    def names(entries):
        return "; ".join(f"{e['setting']} ({e['seeds_meeting_all']}/{e['seeds']} seeds)" for e in entries) or "none"

    good = [e for e in summary if e["reproduces"]]
    lines = [
        f"Criteria (mean over seeds): (a) l2 gap >= {GAP_MIN}, (b) offset ratio >= {OFFSET_MIN} in both modalities, "
        f"(c) best single feature >= {FEATURE_MIN:.0%}, with held-out R@1 >= {RECALL_FACTOR:g} x chance.",
        f"Reproduce all of them: {names(good)}.",
    ]
    for key, what in (("gap", "(a) persistent gap"), ("offset", "(b) offset ratio"), ("feature", "(c) separating feature"),
                      ("recall", "R@1 well above chance")):  # fmt: skip
        missing = [e["setting"] for e in summary if not e[f"meets_{key}"]]
        lines.append(f"Miss {what}: {'; '.join(missing) if missing else 'none'}.")
    return "\n".join(lines)


def _fmt(value: Any, std: float | None = None) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return f"{text} ± {std:.2g}" if std else text
    return str(value)


def markdown(result: StudyResult) -> str:
    """``study.md``: the per-setting table, the finding, and the per-run table."""
    config = result.config
    head = ["setting", "seeds", *(h for _, h in SUMMARY_COLUMNS), "(a) gap", "(b) offset", "(c) feature", "R@1 ≫ chance"]
    lines = [
        "# Geometry study: which ingredient keeps the double ellipsoid?",
        "",
        f"Preset `{config.preset}`: tiny CLIP, {config.n_train} captioned shapes, {config.epochs} epochs, batch "
        f"{config.batch_size}, lr {config.lr:g}, CPU; measured on {config.n_eval} fresh shapes (seed "
        f"{_eval_seed()}).  Mean ± std over seeds.  Definitions: `clipgeo.train.study`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for e in result.summary:
        cells = [e["setting"], str(e["seeds"])]
        cells += [_fmt(e[k], e.get(f"{k}_std")) for k, _ in SUMMARY_COLUMNS]
        cells += [_fmt(e[f"meets_{k}"]) for k in ("gap", "offset", "feature", "recall")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Finding", "", *(f"- {line}" for line in result.finding.splitlines()), "", "## Runs", ""]
    keys = ["run", "seed", "l2_gap_start", "l2_gap", "offset_ratio_image", "offset_ratio_text", "best_feature",
            "best_feature_accuracy", "r1", "r1_strict", "chance", "logit_scale", "train_seconds"]  # fmt: skip
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in result.rows:
        lines.append("| " + " | ".join(_fmt(row[k]) for k in keys) + " |")
    return "\n".join(lines) + "\n"


def _eval_seed() -> int:
    from .runs import EVAL_SEED

    return EVAL_SEED


def write_study(result: StudyResult, out: str | Path) -> dict[str, Path]:
    """Write ``study.csv``, ``study.md``, ``study.json`` and the figure into ``out``; returns their paths."""
    from ..provenance import provenance

    out = Path(out)
    columns: list[str] = []
    for row in result.rows:
        columns += [k for k in row if k not in columns]
    csv_path = out / "study.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in result.rows)
    md_path = out / "study.md"
    write_text(md_path, markdown(result))
    prov = provenance(result.config.to_dict() if result.config else {})
    json_path = out / "study.json"
    write_json(json_path, {
        "config": result.config.to_dict() if result.config else None, "rows": result.rows, "summary": result.summary,
        "finding": result.finding, "reproducing": result.reproducing, "seconds": result.seconds,
        "criteria": {"gap_min": GAP_MIN, "offset_min": OFFSET_MIN, "feature_min": FEATURE_MIN,
                     "recall_factor": RECALL_FACTOR},
        "provenance": prov,
    })  # fmt: skip
    from ..plotting._study import plot_study

    written = plot_study(result.rows, result.summary, out, reproducing=result.reproducing, provenance=prov)
    return {"csv": csv_path, "markdown": md_path, "json": json_path, "figure": written[0], "figure_json": written[-1]}
