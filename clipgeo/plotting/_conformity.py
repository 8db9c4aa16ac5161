"""Conformity figures (SPEC §7): exact vs one-cosine estimate, the distributions, the extreme examples."""

from __future__ import annotations

import textwrap
from pathlib import PurePath
from typing import Any

import numpy as np

from ._draw import mark_vline, modality_hist, new_figure, per_modality, scatter, shared_edges
from ._registry import FigureInput, FigureSkipped, register
from ._style import MODALITY_COLORS, REFERENCE

#: examples listed at each end of the extreme-conformity figure
N_EXTREMES = 5


@register(
    "conformity_estimate",
    "Exact conformity vs its estimate cos(x, m) (raw mean) per modality, with the least-squares line and r",
    "§7",
)
def conformity_estimate(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "conformity")
    unit = [m for m in results if inp.unit_norm(m)]
    note = (
        f"{' and '.join(unit)} rows are already unit-norm, so the raw mean is the unit mean and the relation is "
        "exactly linear (r = 1); store raw embeddings to test the paper's r = 0.9998"
        if unit
        else ""
    )
    fig, axes, data = new_figure(
        inp,
        "Conformity is predicted by one cosine to the mean (paper: r = 0.9998)",
        ncols=len(results),
        width=max(4.2 * len(results), 6.4),
        height=3.6,
        notes=[note],
    )
    seed = int(inp.report.config.get("seed", 0))
    out = {}
    for ax, (m, r) in zip(axes[0], results.items(), strict=False):
        est = np.asarray(r.estimate, dtype=np.float64)
        exact = np.asarray(r.values, dtype=np.float64)
        rows = scatter(ax, est, exact, MODALITY_COLORS[m], f"{m} rows (n = {len(exact)})", seed=seed)
        xs = np.array([est.min(), est.max()])
        if np.isfinite(r.slope) and np.isfinite(r.intercept):
            sign = "−" if r.intercept < 0 else "+"
            ax.plot(xs, r.slope * xs + r.intercept, color=REFERENCE, linestyle="--", linewidth=1.1,
                    label=f"least squares: {r.slope:.4g} · ĉ {sign} {abs(r.intercept):.3g}")  # fmt: skip
        ax.set_title(f"{m}: Pearson r = {r.pearson:.5f}")
        ax.set(xlabel="estimate ĉ_j = cos(x_j, m) (cosine)", ylabel="exact conformity C(x_j) (mean cosine)")
        ax.legend(loc="upper left", markerscale=2)
        out[m] = {
            "rows": rows,
            "estimate": est[rows],
            "conformity": exact[rows],
            "pearson": r.pearson,
            "slope": r.slope,
            "intercept": r.intercept,
            "unit_pearson": r.unit_pearson,
            "unit_slope": r.unit_slope,
            "unit_intercept": r.unit_intercept,
            "method": r.method,
        }
    data.update({"modalities": out})
    return fig, data


@register(
    "conformity_hist",
    "Histograms of the exact conformity of image and text rows, means marked",
    "§7",
)
def conformity_hist(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "conformity")
    values = {m: np.asarray(r.values, dtype=np.float64) for m, r in results.items()}
    fig, axes, data = new_figure(inp, "Conformity: each row's mean cosine to the rest of its modality", height=3.4, width=6.6)
    ax = axes[0, 0]
    hists = modality_hist(ax, values, shared_edges(list(values.values())))
    for m, r in results.items():
        mark_vline(ax, r.mean, MODALITY_COLORS[m], label=f"mean {m} = {r.mean:.3f}")
    ax.set(xlabel="exact conformity C(x_j) (mean cosine)", ylabel="rows")
    ax.legend(loc="upper left")
    data.update({**hists, "mean": {m: r.mean for m, r in results.items()}})
    return fig, data


def _labels(inp: FigureInput, modality: str, n: int) -> list[str]:
    """A human label per row: the caption (text), or the file name plus one caption of the image (image)."""
    rows = inp.report.rows
    info = rows.get(modality, {})
    if modality == "text":
        captions = info.get("captions")
        return [str(c) if c is not None else "" for c in captions] if captions is not None and len(captions) == n else [""] * n
    paths = info.get("paths")
    names = [PurePath(str(p)).name if p else "" for p in paths] if paths is not None and len(paths) == n else [""] * n
    text = rows.get("text", {})
    link, captions = text.get("image_row"), text.get("captions")
    first: dict[int, str] = {}
    if link is not None and captions is not None:
        for j, i in enumerate(np.asarray(link)):
            if int(i) >= 0 and int(i) not in first and captions[j]:
                first[int(i)] = str(captions[j])
    out = []
    for i in range(n):
        parts = [p for p in (names[i], f"“{first[i]}”" if i in first else "") if p]
        out.append(" — ".join(parts))
    return out


def _shorten(text: str, width: int, lines: int = 2) -> str:
    text = " ".join(str(text).split())
    return "\n".join(textwrap.wrap(text, width, max_lines=lines, placeholder=" …"))


@register(
    "conformity_extremes",
    "The rows of highest and lowest conformity (common vs rare content) with their captions",
    "§7",
)
def conformity_extremes(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "conformity")
    labels = {m: _labels(inp, m, len(r.values)) for m, r in results.items()}
    usable = [m for m in results if any(labels[m])]
    if not usable:
        raise FigureSkipped("the store has no captions or image paths, so the extreme examples have nothing to show")
    k = int(inp.report.config.get("n_extremes", N_EXTREMES) or N_EXTREMES)
    fig, axes, data = new_figure(
        inp,
        "Extreme conformity: common content (top) vs rare content (bottom)",
        ncols=len(usable),
        width=max(5.2 * len(usable), 7.0),
        height=0.42 * (2 * k + 3),
    )
    out = {}
    for ax, m in zip(axes[0], usable, strict=False):
        r = results[m]
        top, bottom = r.extremes(k)
        ax.set_axis_off()
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"{m} rows", color=MODALITY_COLORS[m], fontweight="bold")
        step = 1.0 / (2 * k + 2)
        y = 1.0
        entries: dict[str, list[dict[str, Any]]] = {}
        for which, title, idx in (("top", "highest conformity (common)", top), ("bottom", "lowest conformity (rare)", bottom)):
            ax.text(0.0, y, title, fontsize=8.5, fontweight="bold", va="top", transform=ax.transAxes)
            y -= step * 0.9
            entries[which] = []
            for i in idx:
                label = labels[m][int(i)] or f"row {int(i)}"
                ax.text(0.0, y, f"{r.values[i]:.3f}", fontsize=7.5, va="top", family="DejaVu Sans Mono",
                        color=MODALITY_COLORS[m], transform=ax.transAxes)  # fmt: skip
                ax.annotate(_shorten(label, 70), (0.0, y), xycoords="axes fraction", xytext=(34, 0),
                            textcoords="offset points", fontsize=7.2, va="top")  # fmt: skip
                y -= step
                entries[which].append({"row": int(i), "conformity": float(r.values[i]), "label": label})
            y -= step * 0.3
        out[m] = entries
    missing = [m for m in results if m not in usable]
    data.update({"modalities": out, "k": k, "without_labels": missing})
    return fig, data
