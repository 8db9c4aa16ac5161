"""Small drawing helpers shared by the figure functions: the figure frame, histograms, subsampling."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ._registry import FigureInput, FigureSkipped
from ._style import CAPTION_HEIGHT, LEGEND_HEIGHT, MODALITY_COLORS, WIDTH

MODALITIES = ("image", "text")
#: most points a scatter plot draws per series (a seeded random subset beyond)
MAX_POINTS = 4000
#: bins of every histogram
BINS = 40


def new_figure(
    inp: FigureInput,
    title: str,
    *,
    nrows: int = 1,
    ncols: int = 1,
    height: float = 3.2,
    width: float = WIDTH,
    notes: Iterable[str] = (),
    legend_strip: int = 0,
    **subplot_kw: Any,
):
    """A styled figure with a bold title and a caption naming the model and the data.

    Parameters
    ----------
    inp : FigureInput
    title : str
        The claim the figure shows.
    nrows, ncols : int
        Grid of axes (``squeeze=False``: ``axes`` is always 2-D).
    height, width : float
        Size of the plotting area in inches (the caption strip is added below).
    notes : iterable of str
        Extra caption lines (e.g. "rows are unit-norm: raw norms are degenerate").
    legend_strip : int
        Rows of a legend shared by all panels (:func:`figure_legend`), in a strip above the caption.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of Axes, shape (nrows, ncols)
    data : dict
        Pre-filled with ``title``, ``caption`` and ``notes``; the figure function adds its numbers.
    """
    return figure_frame(
        inp.caption(), title, nrows=nrows, ncols=ncols, height=height, width=width, notes=notes,
        legend_strip=legend_strip, **subplot_kw,
    )  # fmt: skip


def figure_frame(
    caption: str,
    title: str,
    *,
    nrows: int = 1,
    ncols: int = 1,
    height: float = 3.2,
    width: float = WIDTH,
    notes: Iterable[str] = (),
    legend_strip: int = 0,
    **subplot_kw: Any,
):
    """:func:`new_figure` with the caption given as text: for figures not drawn from a store (simulations).

    Returns ``(fig, axes, data)`` as :func:`new_figure` does.
    """
    from matplotlib.figure import Figure

    notes = [n for n in notes if n]
    chars = int(width * 17)  # characters of 7.5-pt text per line
    lines = [_wrap_parts(caption, chars), *(textwrap.fill(f"Note: {n}", chars) for n in notes)]
    n_lines = sum(line.count("\n") + 1 for line in lines)
    strip = CAPTION_HEIGHT + 0.15 * (n_lines - 1)
    legend = LEGEND_HEIGHT * (1 + 0.6 * (int(legend_strip) - 1)) if legend_strip else 0.0
    total = height + strip + legend
    fig = Figure(figsize=(width, total), layout="constrained")
    bottom = (strip + legend) / total
    fig.get_layout_engine().set(rect=(0.0, bottom, 1.0, 1.0 - bottom))
    fig.clipgeo_legend_y = (strip + 0.05) / total  # where figure_legend puts a shared legend
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    fig.suptitle(title)
    fig.text(0.5, 0.3 * CAPTION_HEIGHT / total, "\n".join(lines), ha="center", va="bottom", fontsize=7.5, color="#444444")
    data: dict[str, Any] = {"title": title, "caption": caption, "notes": notes}
    return fig, axes, data


def _wrap_parts(text: str, chars: int, sep: str = "  ·  ") -> str:
    """Break a ``sep``-joined caption into lines of at most ``chars`` characters, at the separators."""
    lines: list[str] = []
    for part in text.split(sep):
        if lines and len(lines[-1]) + len(sep) + len(part) <= chars:
            lines[-1] += sep + part
        else:
            lines.append(part)
    return "\n".join(textwrap.fill(line, chars) for line in lines)


def shared_edges(arrays: Sequence[np.ndarray], bins: int | None = None, *, log: bool = False) -> np.ndarray:
    """Bin edges spanning every value of every array (log-spaced when ``log`` and all values are positive).

    ``bins`` defaults to ``1.5 sqrt(n)`` for the largest array, between 10 and :data:`BINS`.
    """
    if bins is None:
        largest = max((np.size(a) for a in arrays), default=0)
        bins = int(np.clip(round(1.5 * np.sqrt(largest)), 10, BINS))
    values = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    if log and values.min() > 0 and values.max() > values.min():
        return np.geomspace(values.min(), values.max(), bins + 1)
    return np.histogram_bin_edges(values, bins=bins)


def hist(ax, values: np.ndarray, edges: np.ndarray, color: str, label: str, *, fill: bool = True) -> np.ndarray:
    """Draw a histogram as a filled step outline; returns the counts per bin, shape (len(edges) - 1,)."""
    values = np.asarray(values, dtype=np.float64)
    counts = np.histogram(values[np.isfinite(values)], bins=edges)[0]
    if fill:
        ax.stairs(counts, edges, fill=True, color=color, alpha=0.25, linewidth=0)
    ax.stairs(counts, edges, color=color, linewidth=1.3, label=label)
    return counts


def modality_hist(ax, values: dict[str, np.ndarray], edges: np.ndarray, label: str = "{m} (n = {n})") -> dict[str, Any]:
    """Histograms of the image and text values on shared ``edges``; returns ``{"edges", "counts": {m: ...}}``."""
    counts = {}
    for m, v in values.items():
        counts[m] = hist(ax, v, edges, MODALITY_COLORS[m], label.format(m=m, n=len(v)))
    return {"edges": edges, "counts": counts}


def subsample(n: int, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted row indices: all ``n`` rows, or a seeded random subset of ``limit`` of them."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def scatter(ax, x: np.ndarray, y: np.ndarray, color: str, label: str, *, seed: int = 0, size: float = 6.0) -> np.ndarray:
    """Scatter at most :data:`MAX_POINTS` points (seeded subset); returns the indices drawn."""
    rows = subsample(len(x), seed=seed)
    ax.scatter(x[rows], y[rows], s=size, color=color, alpha=0.45, linewidths=0, label=label, rasterized=False)
    return rows


def per_modality(inp: FigureInput, attribute: str) -> dict[str, Any]:
    """``{modality: result}`` of one per-modality analyzer, or FigureSkipped with the report's reason."""
    results = getattr(inp.report, attribute)
    out = {m: results[m] for m in MODALITIES if m in results}
    if not out:
        raise FigureSkipped(skip_reason(inp, attribute))
    return out


def skip_reason(inp: FigureInput, name: str) -> str:
    """Why the analysis ``name`` is absent, from the report's ``skipped`` record."""
    skipped = inp.report.skipped
    reasons = [v for k, v in skipped.items() if k == name or k.startswith(name + ".")]
    if reasons:
        return f"{name} was not computed: {'; '.join(dict.fromkeys(reasons))}"
    return f"{name} is not in the results"


def need_both(inp: FigureInput) -> None:
    """FigureSkipped unless the results cover at least 2 image rows and 2 text rows."""
    r = inp.report
    if r.n_image < 2 or r.n_text < 2:
        raise FigureSkipped(
            f"needs image and text rows (at least 2 each); the store has {r.n_image} image and {r.n_text} text rows"
        )


def unit_norm_note(inp: FigureInput, modalities: Iterable[str], what: str) -> str:
    """A caption note when some modality's rows were already unit-norm."""
    unit = [m for m in modalities if inp.unit_norm(m)]
    if not unit:
        return ""
    return f"{' and '.join(unit)} rows are already unit-norm, so {what} are degenerate (store raw embeddings to measure them)"


def figure_legend(fig, ax, ncols: int = 3, **kwargs: Any) -> None:
    """One legend for the whole figure in the strip reserved by ``new_figure(legend_strip=...)``.

    ``ax`` is one Axes or a sequence of them; their entries are merged, duplicates dropped.
    """
    handles, labels = [], []
    for one in ax if isinstance(ax, (list, tuple)) else [ax]:
        for h, label in zip(*one.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    y = getattr(fig, "clipgeo_legend_y", 0.0)
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, y), ncols=ncols, fontsize=8, **kwargs)


def compact_ticks(ax, axis: str = "x") -> None:
    """At most 6 ticks, in scientific notation with an offset when the values span a tiny range."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    formatter = ScalarFormatter(useMathText=True)
    formatter.set_powerlimits((-3, 4))
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(6))
    target.set_major_formatter(formatter)


def _plain(x: float, pos: int | None = None) -> str:
    return f"{x:g}"


def _plain_minor(x: float, pos: int | None = None) -> str:
    mantissa = x / 10 ** np.floor(np.log10(x)) if x > 0 else 0
    return f"{x:g}" if round(mantissa) in (2, 3, 5) else ""


def log_axis(ax, axis: str = "x") -> None:
    """A log scale labelled with plain numbers (0.6, 1, 20); minor ticks labelled too on short spans.

    Call it after the data are drawn (the span decides the minor labels).
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if axis == "x":
        ax.set_xscale("log")
        target, (lo, hi) = ax.xaxis, ax.get_xlim()
    else:
        ax.set_yscale("log")
        target, (lo, hi) = ax.yaxis, ax.get_ylim()
    target.set_major_formatter(FuncFormatter(_plain))
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else np.inf
    minor = FuncFormatter(_plain) if decades < 0.8 else FuncFormatter(_plain_minor) if decades < 1.5 else NullFormatter()
    target.set_minor_formatter(minor)


def mark_vline(ax, x: float, color: str, label: str | None = None, style: str = "--") -> None:
    ax.axvline(x, color=color, linestyle=style, linewidth=1.2, label=label)
