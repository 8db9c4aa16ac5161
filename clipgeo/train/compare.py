"""The geometry of several training runs, side by side: one table, one figure.

``compare_runs([RUN_DIR, ...])`` rebuilds each run's objective from its
``config.json`` with its trained weights, embeds the same fresh evaluation data
(captioned shapes drawn with a seed no run trained on) through the objective's
own ``embed_pair`` — image and text for CLIP, two augmented views for the image
objectives (the same random draws for every run), two dropout passes for
SimCSE — and measures, from the clipgeo analyzers:

- the gap between the two embeddings (``l2_centroid_distance`` of the unit
  vectors, ``raw_centroid_distance``, ``mean_matched_cosine``);
- the thin shell of each (``relative_thickness_a/_b`` = std / mean centred norm);
- the offset of each ellipsoid (``offset_ratio_a/_b`` = ‖m‖ / ‖σ‖);
- mean conformity of each (``conformity_a/_b``);
- alignment, uniformity and recall@1 between the two;
- linear-probe accuracy of the run's tower on shape and colour labels
  (:mod:`clipgeo.train.probe`).

``a``/``b`` are the run's pair (``pair`` column: ``image/text``,
``view1/view2``, ``pass1/pass2``).  Baseline rows give the same
measurements for the untrained (random-weights) architecture.  That is the
question the table answers: does the double ellipsoid come from the negatives
(CLIP, SimCLR, MoCo …) or from something every objective shares (BYOL has no
negatives)?
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClipgeoError, InputError

EVAL_SEED = 20_250  # seed of the evaluation shapes: no run trains on it by default
GEOMETRY_COLUMNS = (
    "l2_centroid_distance", "raw_centroid_distance", "mean_matched_cosine",
    "relative_thickness_a", "relative_thickness_b", "offset_ratio_a", "offset_ratio_b",
    "conformity_a", "conformity_b", "alignment", "uniformity_a", "uniformity_b", "r1_a_to_b", "r1_b_to_a",
)  # fmt: skip


@dataclass
class Run:
    """A training run directory written by ``clipgeo train``.

    Attributes
    ----------
    path : Path
    meta : dict
        The contents of ``config.json`` (``config``, ``resolved``, ``provenance`` …).
    weights : Path
        ``model.safetensors`` of a finished run, else ``checkpoint.pt``.
    """

    path: Path
    meta: dict[str, Any]
    weights: Path

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def objective(self) -> str:
        return str(self.config["objective"])

    @property
    def model(self) -> str:
        return str(self.config["model"])

    @property
    def finished(self) -> bool:
        return self.weights.name == "model.safetensors"


def load_run(run_dir: str | Path) -> Run:
    """Read a run directory; :class:`ClipgeoError` if it is not one."""
    path = Path(run_dir)
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ClipgeoError(f"{path} is not a training run (no config.json); pass a --out folder of clipgeo train")
    try:
        meta = json.loads(config_path.read_text())
        meta["config"]["objective"], meta["config"]["model"]
    except (ValueError, KeyError, TypeError):
        raise ClipgeoError(f"{config_path} is not a clipgeo training config; pass a --out folder of clipgeo train") from None
    for name in ("model.safetensors", "checkpoint.pt"):
        if (path / name).is_file():
            return Run(path=path, meta=meta, weights=path / name)
    raise ClipgeoError(f"{path} holds no weights yet (no model.safetensors or checkpoint.pt); let the run finish an epoch")


def _train_source(config: dict[str, Any]):
    data = config.get("data") or {}
    if data.get("source") == "shapes":
        from ..data.shapes import CaptionedShapes

        return CaptionedShapes(int(data["n"]), seed=int(data.get("seed", 0)))
    return None


def build_objective(run: Run | None, *, model: str | None = None, objective: str | None = None, device: str = "cpu"):
    """The objective of a run, with the run's trained weights, in eval mode.

    With ``run=None``: the objective ``objective`` on the architecture ``model``
    with random weights (the untrained baseline; seeded, so reproducible).

    Returns
    -------
    clipgeo.train.trainer.Objective
    """
    import torch

    from ..models import load_model
    from .trainer import ObjectiveContext, TrainConfig, get_objective

    if run is not None:
        fields = TrainConfig.__dataclass_fields__
        config = TrainConfig(**{k: v for k, v in run.config.items() if k in fields})
        config.resume = False
        resolved = run.meta.get("resolved", {})
        num_train = int(resolved.get("num_train", 2))
        num_classes = resolved.get("num_classes")
        if num_classes is None:  # runs written before the trainer recorded it
            labels = getattr(_train_source(run.config), "labels", None)
            num_classes = int(np.max(labels)) + 1 if labels is not None and len(labels) else 0
    else:
        if model is None or objective is None:
            raise InputError("a baseline needs a model and an objective name")
        config = TrainConfig(out="", model=model, objective=objective, device=device)
        num_train, num_classes = 2, 0
    torch.manual_seed(config.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if run is None:
            loaded = load_model(config.model, "none", device=device)
        else:  # model.safetensors, or the "model" entry of checkpoint.pt
            loaded = load_model(config.model, checkpoint=run.weights, device=device)
    cls = get_objective(config.objective)
    if run is None and num_classes < 2 and config.objective == "supervised":
        num_classes = 5
    ctx = ObjectiveContext(
        loaded=loaded, num_train=max(num_train, 4), num_classes=int(num_classes), device=torch.device(device), config=config
    )
    options = dict(config.objective_options) if run is not None else {}
    built = cls(ctx, **options).to(device)
    built.eval()
    return built


def tower_of(objective) -> str:
    """The tower an objective trains: ``"text"`` for text-only objectives, else ``"image"``."""
    return "text" if getattr(objective, "data_kind", "") == "text" else "image"


def embed_pairs(objective, source: Sequence, *, seed: int = EVAL_SEED, batch_size: int = 256):
    """Raw embeddings of ``source`` through ``objective.embed_pair``.

    The dataset is ``objective.make_dataset(source, all, train=False)``; its random
    transforms are drawn after seeding with ``seed``, so two objectives with the
    same augmentation see the same views.

    Returns
    -------
    a, b : ndarray of shape (n, d), float64
    pair_names : tuple of str
    """
    import torch

    from .data import collate

    torch.manual_seed(seed)
    dataset = objective.make_dataset(source, np.arange(len(source)), train=False)
    items = [dataset[i] for i in range(len(dataset))]
    a_parts, b_parts = [], []
    objective.eval()
    with torch.no_grad():
        torch.manual_seed(seed)  # dropout passes (SimCSE) reproducible too
        for start in range(0, len(items), batch_size):
            batch = collate(items[start : start + batch_size])
            batch = {k: v.to(objective.ctx.device) if hasattr(v, "to") else v for k, v in batch.items()}
            a, b = objective.embed_pair(batch)
            a_parts.append(a.float().cpu().double().numpy())
            b_parts.append(b.float().cpu().double().numpy())
    return np.concatenate(a_parts), np.concatenate(b_parts), tuple(objective.pair_names)


def geometry(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The geometry columns of the table (see the module docstring) for paired raw embeddings (n, d)."""
    import torch

    from .metrics import heldout_metrics

    row = heldout_metrics(torch.from_numpy(a), torch.from_numpy(b), ("a", "b"))
    return {k: float(row[k]) for k in GEOMETRY_COLUMNS}


@dataclass
class Comparison:
    """The comparison table and what produced it.

    Attributes
    ----------
    rows : list of dict
        One per run (and baseline), the columns of :attr:`columns`.
    config : dict
        n, seed, labels, runs — for provenance.
    """

    rows: list[dict[str, Any]]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        seen: list[str] = []
        for row in self.rows:
            seen += [k for k in row if k not in seen]
        return seen

    def frame(self):
        """The table as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=self.columns)

    def markdown(self, digits: int = 3) -> str:
        """The table in Markdown (numbers rounded to ``digits`` decimals)."""
        cols = self.columns
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for row in self.rows:
            cells = []
            for c in cols:
                v = row.get(c, "")
                cells.append(f"{v:.{digits}f}" if isinstance(v, float) else str(v))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _row(label: str, objective_name: str, objective, source, probe_source, labels, seed, extra=None) -> dict[str, Any]:
    from .probe import probe_objective

    a, b, names = embed_pairs(objective, source, seed=seed)
    row: dict[str, Any] = {"run": label, "objective": objective_name, "pair": "/".join(names), **(extra or {})}
    for name, result in probe_objective(objective, probe_source, labels).items():
        row[f"probe_{name}"] = result.accuracy
    row.update(geometry(a, b))
    return row


def compare_runs(
    run_dirs: Sequence[str | Path],
    *,
    n: int = 500,
    n_probe: int = 1000,
    seed: int = EVAL_SEED,
    labels: Sequence[str] = ("shape", "color"),
    baseline: bool = True,
    device: str = "cpu",
) -> Comparison:
    """Measure the geometry and probe accuracy of every run on the same evaluation data.

    Parameters
    ----------
    run_dirs : sequence of paths
        RUN_DIRs of ``clipgeo train`` (finished, or with a checkpoint).
    n : int
        Evaluation shapes embedded as pairs for the geometry.
    n_probe : int
        Shapes for the linear probe (75 % fit, 25 % held out).
    seed : int
        Seed of the evaluation shapes, their random views and the probe split.
    labels : sequence of str
        Probe labels (``shape``, ``color``, ``size``, ``position``).
    baseline : bool
        Add one random-weights row per distinct (model, kind of objective).
    device : str

    Returns
    -------
    Comparison
    """
    from ..data.shapes import CaptionedShapes
    from .probe import label_names

    if not run_dirs:
        raise InputError("no run directories given; pass the --out folders of one or more clipgeo train runs")
    if n < 4 or n_probe < 20:
        raise InputError(f"use at least 4 evaluation samples and 20 probe samples, got n={n}, n_probe={n_probe}")
    for name in labels:
        label_names(name)  # validates
    runs = [load_run(d) for d in run_dirs]
    source = CaptionedShapes(n, seed=seed)
    probe_source = CaptionedShapes(n_probe, seed=seed + 1)
    rows = []
    kinds: dict[tuple[str, str], str] = {}  # (model, data kind) -> objective name of a run of that kind
    for run in runs:
        objective = build_objective(run, device=device)
        kinds.setdefault((run.model, objective.data_kind), run.objective)
        label = run.path.name
        extra = {"model": run.model, "finished": run.finished, "tower": tower_of(objective)}
        rows.append(_row(label, run.objective, objective, source, probe_source, labels, seed, extra))
    if baseline:
        for (model, kind), objective_name in kinds.items():
            objective = build_objective(None, model=model, objective=objective_name, device=device)
            extra = {"model": model, "finished": False, "tower": tower_of(objective)}
            label = f"random init ({kind})"
            rows.append(_row(label, "none", objective, source, probe_source, labels, seed, extra))
    config = {"runs": [str(r.path) for r in runs], "n": n, "n_probe": n_probe, "seed": seed, "labels": list(labels),
              "baseline": baseline}  # fmt: skip
    return Comparison(rows=rows, config=config)


def plot_comparison(comparison: Comparison, out_png: str | Path) -> Path:
    """Bar charts of the table, one panel per quantity, one bar group per run; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = comparison.rows
    names = [r["run"] for r in rows]
    probes = [c for c in comparison.columns if c.startswith("probe_")]
    panels = [
        ("linear-probe accuracy", [(c, c.removeprefix("probe_")) for c in probes]),
        ("gap: l2 centroid distance", [("l2_centroid_distance", "‖mean(u_a) − mean(u_b)‖")]),
        ("mean matched cosine", [("mean_matched_cosine", "cos(a_i, b_i)")]),
        ("thin shell: std / mean centred norm", [("relative_thickness_a", "a"), ("relative_thickness_b", "b")]),
        ("offset ‖m‖ / ‖σ‖", [("offset_ratio_a", "a"), ("offset_ratio_b", "b")]),
        ("mean conformity", [("conformity_a", "a"), ("conformity_b", "b")]),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    x = np.arange(len(rows))
    for ax, (title, series) in zip(axes.flat, panels, strict=True):
        width = 0.8 / max(1, len(series))
        for k, (column, label) in enumerate(series):
            values = [float(r.get(column, np.nan)) for r in rows]
            ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    fig.suptitle("geometry across objectives (a/b: the two embeddings of each run; see the pair column)")
    out_png = Path(out_png)
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png


def write_comparison(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``compare.csv``, ``compare.md``, ``compare.json`` (rows + provenance) and ``compare.png``."""
    from ..provenance import provenance

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "compare.csv", "md": out_dir / "compare.md", "json": out_dir / "compare.json",
             "png": out_dir / "compare.png"}  # fmt: skip
    comparison.frame().to_csv(paths["csv"], index=False)
    paths["md"].write_text(comparison.markdown())
    record = {"rows": comparison.rows, "provenance": provenance(comparison.config)}
    paths["json"].write_text(json.dumps(record, indent=2, default=str) + "\n")
    plot_comparison(comparison, paths["png"])
    return paths
