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

Runs are read by :mod:`clipgeo.train.runs`; the figure is
:func:`clipgeo.plotting._training.plot_comparison`.

``a``/``b`` are the run's pair (``pair`` column: ``image/text``,
``view1/view2``, ``pass1/pass2``).  Baseline rows give the same
measurements for the untrained (random-weights) architecture.  That is the
question the table answers: does the double ellipsoid come from the negatives
(CLIP, SimCLR, MoCo …) or from something every objective shares (BYOL has no
negatives)?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import to_jsonable, write_text
from ..errors import InputError
from .probe import label_names, probe_objective
from .runs import EVAL_SEED, build_objective, load_run, tower_of

__all__ = [
    "EVAL_SEED",
    "GEOMETRY_COLUMNS",
    "Comparison",
    "compare_runs",
    "embed_pairs",
    "geometry",
    "plot_comparison",
    "write_comparison",
]

GEOMETRY_COLUMNS = (
    "l2_centroid_distance", "raw_centroid_distance", "mean_matched_cosine",
    "relative_thickness_a", "relative_thickness_b", "offset_ratio_a", "offset_ratio_b",
    "conformity_a", "conformity_b", "alignment", "uniformity_a", "uniformity_b", "r1_a_to_b", "r1_b_to_a",
)  # fmt: skip


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

    if not run_dirs:
        raise InputError("no run directories given; pass the out folders of one or more clipgeo train runs")
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


def plot_comparison(comparison: Comparison, out_dir: str | Path, *, provenance: dict[str, Any] | None = None) -> list[Path]:
    """``compare.png`` and ``compare.json`` (the rows, the figure's numbers, provenance) in ``out_dir``.

    See :func:`clipgeo.plotting._training.plot_comparison`.
    """
    from ..plotting._training import plot_comparison as draw

    return draw(comparison.rows, out_dir, provenance=to_jsonable(provenance or {}),
                extra={"rows": to_jsonable(comparison.rows), "config": to_jsonable(comparison.config)})  # fmt: skip


def write_comparison(comparison: Comparison, out_dir: str | Path) -> dict[str, Path]:
    """Write ``compare.csv``, ``compare.md``, and ``compare.png`` with ``compare.json`` (rows + provenance) beside it."""
    from ..provenance import provenance

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "compare.csv", "md": out_dir / "compare.md", "json": out_dir / "compare.json",
             "png": out_dir / "compare.png"}  # fmt: skip
    write_text(paths["csv"], comparison.frame().to_csv(index=False))
    write_text(paths["md"], comparison.markdown())
    plot_comparison(comparison, out_dir, provenance=provenance(comparison.config))
    return paths
