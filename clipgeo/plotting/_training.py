"""Figures of training runs: the curves of one run, and several runs side by side.

They plot logged numbers only — ``metrics.csv`` of a run, the rows of a comparison — and
recompute nothing.  Like every clipgeo figure they are built without pyplot, in the package
style, saved deterministically, with the plotted numbers in a JSON file beside the image
(:func:`clipgeo.plotting.save_figure`):

- :func:`plot_training_curves` -> ``curves.png`` + ``curves.json`` (what ``clipgeo train`` redraws
  after every epoch);
- :func:`plot_comparison` -> ``compare.png`` + ``compare.json`` (``clipgeo compare``; the JSON holds
  the table's rows and provenance).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._draw import figure_frame
from ._render import save_figure
from ._style import MODALITY_COLORS, REFERENCE, SERIES, style

__all__ = ["comparison_panels", "curve_panels", "plot_comparison", "plot_training_curves"]


def _pair_colors(pair_names: Sequence[str]) -> dict[str, str]:
    """The modality colours for image/text, the series colours for other pairs (views, passes)."""
    a, b = pair_names
    if {a, b} <= set(MODALITY_COLORS):
        return {a: MODALITY_COLORS[a], b: MODALITY_COLORS[b]}
    return {a: SERIES[2], b: SERIES[3]}


def curve_panels(pair_names: Sequence[str] = ("image", "text")) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(metrics column, label), ...]) of each panel of the training curves."""
    a, b = pair_names
    return [
        ("training loss", [("loss", "loss")]),
        ("logit scale", [("logit_scale", "logit_scale")]),
        ("held-out recall@1", [(f"r1_{a}_to_{b}", f"{a}→{b}"), (f"r1_{b}_to_{a}", f"{b}→{a}"), ("chance_r1", "chance")]),
        ("alignment / uniformity", [("alignment", "alignment"), (f"uniformity_{a}", f"uniformity {a}"),
                                    (f"uniformity_{b}", f"uniformity {b}")]),
        ("gap: l2 centroid distance", [("l2_centroid_distance", "‖mean(u_a) − mean(u_b)‖")]),
        ("mean conformity", [(f"conformity_{a}", a), (f"conformity_{b}", b)]),
        ("relative thickness (std / mean centred norm)", [(f"relative_thickness_{a}", a), (f"relative_thickness_{b}", b)]),
        ("offset ratio ‖m‖ / ‖σ‖", [(f"offset_ratio_{a}", a), (f"offset_ratio_{b}", b)]),
    ]  # fmt: skip


def _series_color(column: str, label: str, colors: dict[str, str], k: int) -> str:
    if column == "chance_r1":
        return REFERENCE
    for name, color in colors.items():
        if label == name or label.endswith(f" {name}") or label.startswith(f"{name}→"):
            return color
    return SERIES[k % len(SERIES)]


def plot_training_curves(
    metrics_csv: str | Path,
    out_dir: str | Path | None = None,
    *,
    pair_names: Sequence[str] = ("image", "text"),
    name: str = "curves",
    formats: Sequence[str] = ("png",),
    provenance: dict[str, Any] | None = None,
) -> list[Path]:
    """Draw a run's ``metrics.csv`` into ``<out_dir>/<name>.png`` with ``<name>.json`` beside it.

    Panels: loss; logit scale (when logged); held-out recall@1 both ways with chance; alignment
    and uniformity; l2 centroid distance (the gap); mean conformity, relative thickness of the
    centred-norm shell and offset ratio ``‖m‖ / ‖σ‖`` of each of the pair.

    Parameters
    ----------
    metrics_csv : path
        Written by the trainer (:class:`clipgeo.train.metrics.MetricsLog`).
    out_dir : path, optional
        Default: the folder of ``metrics_csv`` (RUN_DIR).
    pair_names : (str, str)
        Names of the two embeddings in the metric columns (``image``/``text``, ``view1``/``view2``).

    Returns
    -------
    list of Path
        The image files, then the JSON.
    """
    import pandas as pd

    metrics_csv = Path(metrics_csv)
    out_dir = metrics_csv.parent if out_dir is None else Path(out_dir)
    frame = pd.read_csv(metrics_csv)
    steps = frame["step"].to_numpy(dtype=np.int64)
    colors = _pair_colors(pair_names)
    panels_data: list[dict[str, Any]] = []
    with style():
        fig, axes, data = figure_frame(f"run {metrics_csv.parent.name}  ·  {len(frame)} log rows  ·  x: optimizer step",
                                       "Training curves: retrieval and the geometry as they form",
                                       nrows=2, ncols=4, height=5.2, width=14.0)  # fmt: skip
        for ax, (title, series) in zip(axes.flat, curve_panels(pair_names), strict=True):
            drawn: dict[str, list[float | None]] = {}
            for k, (column, label) in enumerate(series):
                if column not in frame or frame[column].isna().all():
                    continue
                y = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
                style_kw = {"linestyle": "--"} if column == "chance_r1" else {"marker": "." if len(steps) < 40 else None}
                ax.plot(steps, y, label=label, color=_series_color(column, label, colors, k), **style_kw)
                drawn[column] = y
            ax.set_title(title)
            ax.set_xlabel("step")
            if len(drawn) > 1:
                ax.legend()
            if not drawn:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color=REFERENCE)
            panels_data.append({"title": title, "series": drawn})
    data.update({"step": steps, "pair_names": list(pair_names), "panels": panels_data})
    return save_figure(fig, data, out_dir, name, formats=tuple(formats), provenance=provenance)


def comparison_panels(columns: Sequence[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(title, [(table column, label), ...]) of each panel of the comparison figure."""
    probes = [c for c in columns if c.startswith("probe_")]
    return [
        ("linear-probe accuracy", [(c, c.removeprefix("probe_")) for c in probes]),
        ("gap: l2 centroid distance", [("l2_centroid_distance", "‖mean(u_a) − mean(u_b)‖")]),
        ("mean matched cosine", [("mean_matched_cosine", "cos(a_i, b_i)")]),
        ("thin shell: std / mean centred norm", [("relative_thickness_a", "a"), ("relative_thickness_b", "b")]),
        ("offset ‖m‖ / ‖σ‖", [("offset_ratio_a", "a"), ("offset_ratio_b", "b")]),
        ("mean conformity", [("conformity_a", "a"), ("conformity_b", "b")]),
    ]


def plot_comparison(
    rows: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    name: str = "compare",
    formats: Sequence[str] = ("png",),
    provenance: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """Bar charts of a comparison table (one panel per quantity, one bar group per run) and its JSON.

    Parameters
    ----------
    rows : sequence of dict
        :attr:`clipgeo.train.compare.Comparison.rows`: ``run`` and the measured columns.
    out_dir : path
    extra : dict, optional
        More entries for the JSON (e.g. the table's ``rows`` and ``config``).

    Returns
    -------
    list of Path
        The image files, then the JSON.
    """
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    names = [str(r["run"]) for r in rows]
    x = np.arange(len(rows))
    panels_data: list[dict[str, Any]] = []
    with style():
        fig, axes, data = figure_frame(
            "a / b: the two embeddings of each run (see the pair column: image/text, view1/view2, pass1/pass2)",
            "Geometry across objectives", nrows=2, ncols=3, height=6.4, width=13.0,
        )  # fmt: skip
        for ax, (title, series) in zip(axes.flat, comparison_panels(columns), strict=True):
            width = 0.8 / max(1, len(series))
            values: dict[str, list[float]] = {}
            for k, (column, label) in enumerate(series):
                v = np.array([float(r.get(column, np.nan)) for r in rows], dtype=np.float64)
                ax.bar(x + (k - (len(series) - 1) / 2) * width, v, width, label=label, color=SERIES[(k + 1) % len(SERIES)])
                values[column] = v
            ax.set_title(title)
            ax.set_xticks(x, names, rotation=35, ha="right")
            ax.grid(axis="x", visible=False)
            if len(series) > 1:
                ax.legend()
            panels_data.append({"title": title, "values": values})
    data.update({"runs": names, "panels": panels_data, **(extra or {})})
    return save_figure(fig, data, out_dir, name, formats=tuple(formats), provenance=provenance)
