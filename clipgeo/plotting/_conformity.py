"""Conformity figures (SPEC §7): exact vs one-cosine estimate, the distributions, the extreme examples."""

from __future__ import annotations

import textwrap
from pathlib import PurePath
from typing import Any

import numpy as np

from ..report._paper import PAPER
from ._draw import mark_vline, modality_hist, new_figure, per_modality, scatter, shared_edges
from ._registry import FigureInput, FigureSkipped, register
from ._style import MODALITY_COLORS, REFERENCE, SERIES

#: what the two estimates are, for the figures' JSON
ESTIMATOR_NAMES = {"estimate_raw": "cos(x, raw mean)", "estimate_unit": "cos(x, mean of unit rows)"}

#: examples listed at each end of the extreme-conformity figure
N_EXTREMES = 5


def _excess(r: Any) -> float | None:
    """How much higher estimate_unit reads than the exact conformity, on average (0.25 = 25 %)."""
    unit = np.asarray(r.unit_estimate, dtype=np.float64)
    if not len(unit) or not r.mean:
        return None
    return float(unit.mean() / r.mean - 1.0)


@register(
    "conformity_estimate",
    "Exact conformity vs both estimates, cos(x, raw mean) and cos(x, mean of unit rows), with fits and r",
    "§7",
)
def conformity_estimate(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "conformity")
    unit = [m for m in results if inp.unit_norm(m)]
    note = (
        f"{' and '.join(unit)} rows are already unit-norm, so the raw mean is the unit mean and both estimates are "
        f"exactly linear (r = 1); store raw embeddings to test the paper's r = {PAPER['conformity'].paper}"
        if unit
        else ""
    )
    r_text = ", ".join(f"{r.pearson:.5f} ({m})" for m, r in results.items())
    excess = {m: _excess(r) for m, r in results.items()}
    excess_text = ", ".join(f"{100 * v:.2g} % ({m})" for m, v in excess.items() if v is not None)
    fig, axes, data = new_figure(
        inp,
        f"Exact conformity vs cos(x, raw mean): r = {r_text}",
        ncols=len(results),
        width=max(4.4 * len(results), 6.4),
        height=3.8,
        legend_strip=0,
        notes=[
            f"paper: r = {PAPER['conformity'].paper} for estimate_raw; its notebook plots estimate_unit under the name "
            f"'conformity', which reads {excess_text} higher than the exact value here (same ranking)",
            note,
        ],
    )
    seed = int(inp.report.config.get("seed", 0))
    out = {}
    for ax, (m, r) in zip(axes[0], results.items(), strict=False):
        exact = np.asarray(r.values, dtype=np.float64)
        entry: dict[str, Any] = {"method": r.method}
        for name, values, slope, intercept, pearson, color in (
            ("estimate_raw", r.estimate, r.slope, r.intercept, r.pearson, MODALITY_COLORS[m]),
            ("estimate_unit", r.unit_estimate, r.unit_slope, r.unit_intercept, r.unit_pearson, SERIES[0]),
        ):
            est = np.asarray(values, dtype=np.float64)
            if len(est) != len(exact):
                continue
            what = "cos(x, raw mean)" if name == "estimate_raw" else "cos(x, mean of unit rows)"
            rows = scatter(ax, est, exact, color, f"{name} = {what}, r = {pearson:.5f}", seed=seed, size=5)
            xs = np.array([est.min(), est.max()])
            if np.isfinite(slope) and np.isfinite(intercept):
                ax.plot(xs, slope * xs + intercept, color=color, linestyle="--", linewidth=1.0)
            entry[name] = {"rows": rows, "values": est[rows], "pearson": pearson, "slope": slope, "intercept": intercept}
            entry.setdefault("conformity", exact[rows])
        lo = min(float(np.min(r.estimate)), float(np.min(r.unit_estimate)), float(exact.min()))
        hi = max(float(np.max(r.estimate)), float(np.max(r.unit_estimate)), float(exact.max()))
        ax.plot([lo, hi], [lo, hi], color=REFERENCE, linestyle=":", linewidth=1.0, label="y = x")
        ax.set_title(f"{m}: estimate_unit reads {100 * (excess[m] or 0):.2g} % above the exact value")
        ax.set(xlabel="one-cosine estimate (cosine)", ylabel="exact conformity C(x_j) (mean cosine)")
        ax.legend(loc="upper left", markerscale=2, fontsize=6.5)
        entry["estimate_unit_excess"] = excess[m]
        out[m] = entry
    data.update({"modalities": out, "estimators": {"conformity": "exact", **ESTIMATOR_NAMES}})
    return fig, data


@register(
    "conformity_hist",
    "Histograms of the exact conformity per modality, means marked, the notebook's estimate_unit dotted",
    "§7",
)
def conformity_hist(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "conformity")
    values = {m: np.asarray(r.values, dtype=np.float64) for m, r in results.items()}
    means = ", ".join(f"{r.mean:.3f} ({m})" for m, r in results.items())
    fig, axes, data = new_figure(
        inp,
        f"Exact conformity: mean {means}",
        height=3.4,
        width=6.8,
        notes=["solid: exact conformity, each row's mean cosine to the other rows of its modality; dotted: "
               "estimate_unit = cos(x, mean of unit rows), which the paper's notebook plots as 'conformity'"],  # fmt: skip
    )
    ax = axes[0, 0]
    units = {m: np.asarray(r.unit_estimate, dtype=np.float64) for m, r in results.items()}
    edges = shared_edges(list(values.values()) + [u for u in units.values() if len(u)])
    hists = modality_hist(ax, values, edges, label="{m}, exact (n = {n})")
    unit_counts = {}
    for m, u in units.items():
        if len(u):
            counts = np.histogram(u, bins=edges)[0]
            ax.stairs(counts, edges, color=MODALITY_COLORS[m], linestyle=":", linewidth=1.2, label=f"{m}, estimate_unit")
            unit_counts[m] = counts
    for m, r in results.items():
        mark_vline(ax, r.mean, MODALITY_COLORS[m], label=f"mean {m} = {r.mean:.3f}")
    ax.set(xlabel="conformity (mean cosine)", ylabel="rows")
    ax.legend(loc="upper left", fontsize=7)
    data.update({**hists, "counts_estimate_unit": unit_counts, "mean": {m: r.mean for m, r in results.items()},
                 "shows": "exact conformity; estimate_unit dotted"})  # fmt: skip
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


def _dedupe_keys(inp: FigureInput, modality: str, labels: list[str]) -> list[Any] | None:
    """One key per row for dropping exact duplicates: the caption (text), the path or id (image), else the label."""
    info = inp.report.rows.get(modality, {})
    n = len(labels)
    keys: list[Any] = []
    for column in (("captions",) if modality == "text" else ("paths", "ids")):
        values = info.get(column)
        if values is not None and len(values) == n and any(str(v) for v in values):
            return [str(v) if str(v) else f"row {i}" for i, v in enumerate(values)]
    keys = [label if label else f"row {i}" for i, label in enumerate(labels)]
    return keys if any(labels) else None


def _image_dirs(inp: FigureInput) -> list[str]:
    """Folders named in the store's ``source`` (e.g. ``folder:/data/images:/data/captions.csv``): where a
    relative image path may live."""
    import re
    from pathlib import Path

    source = str(inp.meta.get("source") or "")
    dirs = []
    for token in re.split(r"[:,;=\s]+", source):
        if token and token not in dirs and Path(token).is_dir():
            dirs.append(token)
    return dirs


def _thumbnail(path: str, dirs: list[str] = (), size: int = 160):
    """The image at ``path`` (or at ``dir/path`` for a relative path) as an RGB array of at most ``size``
    pixels a side, or None when it cannot be read."""
    from pathlib import Path

    try:
        from PIL import Image

        if not path:
            return None
        found = next((c for c in [Path(path), *(Path(d) / path for d in dirs)] if c.is_file()), None)
        if found is None:
            return None
        with Image.open(found) as img:
            img = img.convert("RGB")
            img.thumbnail((size, size))
            return np.asarray(img)
    except Exception:  # noqa: BLE001 - any unreadable file: fall back to the caption
        return None


@register(
    "conformity_extremes",
    "Highest and lowest exact-conformity rows: image thumbnails (else captions), exact duplicates dropped",
    "§7",
)
def conformity_extremes(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "conformity")
    labels = {m: _labels(inp, m, len(r.values)) for m, r in results.items()}
    paths = inp.report.rows.get("image", {}).get("paths")
    k = int(inp.report.config.get("n_extremes", N_EXTREMES) or N_EXTREMES)
    picks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    thumbs: dict[int, Any] = {}
    for m, r in results.items():
        picks[m] = r.extremes(k, labels=_dedupe_keys(inp, m, labels[m]))
        if m == "image" and paths is not None and len(paths) == len(r.values):
            dirs = _image_dirs(inp)
            for i in np.concatenate(picks[m]):
                thumb = _thumbnail(str(paths[int(i)]), dirs)
                if thumb is not None:
                    thumbs[int(i)] = thumb
    usable = [m for m in results if any(labels[m]) or (m == "image" and thumbs)]
    if not usable:
        raise FigureSkipped("the store has no captions or image paths, so the extreme examples have nothing to show")
    fig, axes, data = new_figure(
        inp,
        "Extreme exact conformity: the most common (top) and the rarest (bottom) rows",
        ncols=len(usable),
        width=max(5.2 * len(usable), 7.0),
        height=max(0.42 * (2 * k + 3), 3.6),
        notes=["conformity = the exact mean cosine to the other rows of the modality; exact duplicates "
               "(same caption, same image) listed once"],  # fmt: skip
    )
    out = {}
    for ax, m in zip(axes[0], usable, strict=False):
        r = results[m]
        top, bottom = picks[m]
        ax.set_axis_off()
        ax.set(xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"{m} rows", color=MODALITY_COLORS[m], fontweight="bold")
        entries: dict[str, list[dict[str, Any]]] = {}
        sections = (("top", "highest conformity (common)", top), ("bottom", "lowest conformity (rare)", bottom))
        if m == "image" and thumbs:
            # two strips of thumbnails: the value above each, the file name below
            for s_i, (which, title, idx) in enumerate(sections):
                y0 = 0.52 if s_i == 0 else 0.0
                ax.text(0.0, y0 + 0.47, title, fontsize=8.5, fontweight="bold", va="top", transform=ax.transAxes)
                entries[which] = []
                width = 1.0 / max(k, 1)
                for j, i in enumerate(idx):
                    i = int(i)
                    cell = ax.inset_axes((j * width + 0.01, y0 + 0.04, width - 0.02, 0.34))
                    cell.set_axis_off()
                    if i in thumbs:
                        cell.imshow(thumbs[i])
                    else:
                        cell.text(0.5, 0.5, _shorten(labels[m][i] or f"row {i}", 18, 4), ha="center", va="center", fontsize=6)
                    ax.text(j * width + width / 2, y0 + 0.39, f"{r.values[i]:.3f}", fontsize=7.5, ha="center",
                            va="bottom", color=MODALITY_COLORS[m], family="DejaVu Sans Mono", transform=ax.transAxes)  # fmt: skip
                    name = PurePath(str(paths[i])).name if paths is not None else ""
                    ax.text(j * width + width / 2, y0 + 0.03, _shorten(name, 22, 1), fontsize=6, ha="center", va="top",
                            transform=ax.transAxes)  # fmt: skip
                    entries[which].append({"row": i, "conformity": float(r.values[i]), "label": labels[m][i],
                                           "thumbnail": i in thumbs})  # fmt: skip
            out[m] = entries
            continue
        step = 1.0 / (2 * k + 2)
        y = 1.0
        for which, title, idx in sections:
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
    data.update({"modalities": out, "k": k, "without_labels": missing, "shows": "exact conformity",
                 "thumbnails": len(thumbs)})  # fmt: skip
    return fig, data
