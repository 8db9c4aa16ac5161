"""The figure of the geometry study (:mod:`clipgeo.train.study`): final geometry per setting.

It plots the study's rows only (one dot per run, a bar per setting's mean) and recomputes
nothing; the plotted numbers go to ``study_figure.json`` beside the image
(:func:`clipgeo.plotting.save_figure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..report._paper import PAPER, PAPER_MODEL
from ._draw import figure_frame
from ._render import save_figure
from ._style import MODALITY_COLORS, REFERENCE, SERIES, style

__all__ = ["STUDY_PANELS", "plot_study", "short_label"]

#: the paper's values the panels draw as reference lines (:data:`clipgeo.report.PAPER`)
_GAP, _FEATURE = PAPER["modality_gap"].value, PAPER["best_feature"].value

#: (title, [(row key, label, colour)], reference line or None, its label)
STUDY_PANELS: tuple[tuple[str, list[tuple[str, str, str]], float | None, str], ...] = (
    ("l2 modality gap (hollow: at step 0)", [("l2_gap", "end", SERIES[0])], _GAP, f"real {PAPER_MODEL} {_GAP:g}"),
    ("offset ratio ‖m‖ / ‖σ‖",
     [("offset_ratio_image", "image", MODALITY_COLORS["image"]), ("offset_ratio_text", "text", MODALITY_COLORS["text"])],
     1.0, "real ≈ 1"),
    ("best single feature (balanced acc.)", [("best_feature_accuracy", "best feature", SERIES[1])], _FEATURE,
     f"real {100 * _FEATURE:g} %"),
    ("thin shell: std / mean centred norm",
     [("relative_thickness_image", "image", MODALITY_COLORS["image"]),
      ("relative_thickness_text", "text", MODALITY_COLORS["text"])], None, ""),
    ("conformity spread (std of exact conformity)",
     [("conformity_spread_image", "image", MODALITY_COLORS["image"]),
      ("conformity_spread_text", "text", MODALITY_COLORS["text"])], None, ""),
    ("held-out R@1 image → text (caption level)", [("r1", "R@1", SERIES[2]), ("chance", "chance", SERIES[3])], None, ""),
)  # fmt: skip


def short_label(setting: str) -> str:
    """``"fixed 0.01 / asymmetric / centred init"`` -> ``"τ=0.01 asym centred"`` (axis labels)."""
    temperature, data, init = (part.strip() for part in setting.split(" / "))
    words = ["learn τ" if temperature == "learnable" else "τ=" + temperature.removeprefix("fixed ")]
    words += [{"asymmetric": "asym", "long-tail": "tail"}.get(d, d) for d in data.split(" + ") if d != "plain"]
    if init != "random init":
        words.append(init.removesuffix(" init"))
    return " ".join(words)


def plot_study(
    rows: Sequence[dict[str, Any]],
    summary: Sequence[dict[str, Any]],
    out_dir: str | Path,
    *,
    reproducing: Sequence[str] = (),
    name: str = "study_figure",
    formats: Sequence[str] = ("png",),
    provenance: dict[str, Any] | None = None,
) -> list[Path]:
    """Six panels of the study's measurements: a bar per setting (mean over seeds), a dot per run.

    Parameters
    ----------
    rows : sequence of dict
        One per run: ``setting`` and the measured keys of :data:`STUDY_PANELS` (and ``l2_gap_start``).
    summary : sequence of dict
        One per setting, in the order of the x axis: ``setting`` and the means.
    out_dir : path
    reproducing : sequence of str
        Settings that meet every criterion (named in the title, starred on the axis).

    Returns
    -------
    list of Path
        The image files, then the JSON.
    """
    settings = [str(s["setting"]) for s in summary]
    x = np.arange(len(settings))
    labels = [("★ " if s in reproducing else "") + short_label(s) for s in settings]
    if reproducing:
        title = f"The double ellipsoid is kept by: {'; '.join(reproducing)}"
    else:
        title = "No setting keeps gap, offset and a separating feature with recall above chance"
    caption = ("tiny CLIP on captioned shapes, measured on fresh shapes  ·  bars: mean over seeds, dots: runs  ·  "
               "learn τ: learnable from 1/0.07; asym: captions name half the attributes, 2 unnamed marks; tail: "
               "long-tailed attributes; centred: centred init  ·  "
               "★: meets every criterion of clipgeo.train.study  ·  real CLIP (Levi & Gilboa 2025): gap "
               f"{_GAP:g}, offset ≈ 1, a feature separating {100 * _FEATURE:g} %")  # fmt: skip
    panels: list[dict[str, Any]] = []
    with style():
        fig, axes, data = figure_frame(caption, title, nrows=2, ncols=3, height=7.2,
                                       width=max(13.0, 0.9 * len(settings) + 4))  # fmt: skip
        for ax, (panel_title, series, reference, ref_label) in zip(axes.flat, STUDY_PANELS, strict=True):
            width = 0.8 / len(series)
            values: dict[str, Any] = {}
            for k, (key, label, color) in enumerate(series):
                offset = (k - (len(series) - 1) / 2) * width
                means = np.array([float(s.get(key, np.nan)) for s in summary])
                ax.bar(x + offset, means, width, color=color, alpha=0.35, label=label)
                per_run = [[float(r[key]) for r in rows if r["setting"] == s] for s in settings]
                for i, vs in enumerate(per_run):
                    ax.plot(np.full(len(vs), x[i] + offset), vs, "o", color=color, markersize=3.5)
                values[key] = {"mean": means, "runs": per_run}
            if series[0][0] == "l2_gap":
                start = [[float(r["l2_gap_start"]) for r in rows if r["setting"] == s] for s in settings]
                for i, vs in enumerate(start):
                    ax.plot(np.full(len(vs), x[i]), vs, "o", mfc="none", color=REFERENCE, markersize=4)
                values["l2_gap_start"] = start
            if reference is not None:
                ax.axhline(reference, color=REFERENCE, linestyle="--", linewidth=1, label=ref_label)
            ax.set_title(panel_title)
            ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
            ax.grid(axis="x", visible=False)
            ax.legend(fontsize=7)
            panels.append({"title": panel_title, "values": values, "reference": reference})
    data.update({"settings": settings, "reproducing": list(reproducing), "panels": panels})
    return save_figure(fig, data, out_dir, name, formats=tuple(formats), provenance=provenance)
