"""Figures of the analyses beyond the paper (SPEC §12), and the compare-stores figure.

Every number drawn comes from ``report.beyond`` (:class:`clipgeo.report._beyond.Beyond`); bootstrap intervals,
when the analysis computed them, are drawn as error bars and quoted in the titles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._draw import MODALITIES, figure_frame, figure_legend, hist, log_axis, need_both, new_figure, scatter, shared_edges
from ._registry import FigureInput, FigureSkipped, register
from ._style import MODALITY_COLORS, REFERENCE, SERIES


def _beyond(inp: FigureInput, name: str) -> Any:
    """``report.beyond.<name>``, or FigureSkipped with the report's reason."""
    beyond = getattr(inp.report, "beyond", None)
    result = None if beyond is None else getattr(beyond, name, None)
    if result is None or (isinstance(result, dict) and not result):
        reasons = [v for k, v in inp.report.skipped.items() if k == name or k.startswith(name + ".")]
        why = "; ".join(dict.fromkeys(reasons)) if reasons else "it is not in the results (rerun `clipgeo analyze`)"
        raise FigureSkipped(f"{name} was not computed: {why}")
    return result


def _f(value: Any, digits: int = 2) -> str:
    """A number for a title, "n/a" when missing or not finite (NaN is written as null in report.json)."""
    if value is None or not np.isfinite(float(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"


def _interval(inp: FigureInput, name: str) -> tuple[float, float] | None:
    beyond = getattr(inp.report, "beyond", None)
    boot = None if beyond is None else beyond.bootstrap
    iv = None if boot is None else boot.interval(name)
    if iv is None or not (np.isfinite(iv.low) and np.isfinite(iv.high)):
        return None
    return float(iv.low), float(iv.high)


def _with_interval(inp: FigureInput, name: str, value: float, digits: int = 3) -> str:
    iv = _interval(inp, name)
    text = _f(value, digits)
    return text if iv is None else f"{text} [{_f(iv[0], digits)}, {_f(iv[1], digits)}]"


@register(
    "pair_conformity",
    "Exact conformity of each image against that of its caption over the matched pairs, with Pearson and Spearman r",
    "§12",
)
def pair_conformity(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    need_both(inp)
    pc = _beyond(inp, "pair_conformity")
    fig, axes, data = new_figure(
        inp,
        f"C_img vs C_txt, {pc.n_pairs} pairs: r = {_with_interval(inp, 'pair_conformity.pearson', pc.pearson)}, "
        f"Spearman {_f(pc.spearman, 3)}",
        width=6.8,
        height=4.2,
        notes=[
            "exact conformity (SPEC §7) inside each modality; circled: the pairs whose two conformities disagree most"
        ],
    )
    ax = axes[0, 0]
    rows = scatter(
        ax,
        pc.image_conformity,
        pc.text_conformity,
        SERIES[0],
        "matched pair",
        seed=int(inp.report.config.get("seed", 0)),
    )
    worst = pc.most_disagreeing(5)
    ax.scatter(pc.image_conformity[worst], pc.text_conformity[worst], s=40, facecolors="none", edgecolors=REFERENCE)
    ax.set_xlabel("C_img (conformity of the image)")
    ax.set_ylabel("C_txt (conformity of its caption)")
    data.update(
        pearson=pc.pearson,
        spearman=pc.spearman,
        interval=_interval(inp, "pair_conformity.pearson"),
        rows=rows,
        image_conformity=pc.image_conformity[rows],
        text_conformity=pc.text_conformity[rows],
        most_disagreeing=worst,
    )
    return fig, data


@register(
    "retrieval_by_conformity",
    "R@1 per conformity decile, image→text and text→image (same-image captions are no competitors)",
    "§12",
)
def retrieval_by_conformity(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    need_both(inp)
    rt = _beyond(inp, "retrieval_by_conformity")
    ends = {d: rt.by_decile(d) for d in ("i2t", "t2i")}
    span = ", ".join(
        f"{label} {_f(t[0]['r1'])} → {_f(t[-1]['r1'])}"
        for label, t in (("i→t", ends["i2t"]), ("t→i", ends["t2i"]))
        if t
    )
    fig, axes, data = new_figure(
        inp,
        f"R@1, rarest → most common conformity decile: {span}",
        width=6.4,
        height=3.6,
        notes=[
            f"overall R@1 {rt.r1_i2t:.3f} image→text, {rt.r1_t2i:.3f} text→image; deciles of the query's exact conformity"
        ],
    )
    ax = axes[0, 0]
    out = {}
    for direction, label, color in (
        ("i2t", "image→text", MODALITY_COLORS["image"]),
        ("t2i", "text→image", MODALITY_COLORS["text"]),
    ):
        table = rt.by_decile(direction)
        x = np.array([row["decile"] + 1 for row in table])
        r1 = np.array([row["r1"] for row in table])
        ax.plot(
            x, r1, marker="o", color=color, label=f"{label} (query: {'image' if direction == 'i2t' else 'caption'})"
        )
        out[direction] = table
    ax.set_xlabel("conformity decile of the query (1 = rarest, 10 = most common)")
    ax.set_ylabel("R@1")
    ax.set_ylim(0, 1.02)
    ax.legend()
    data.update(by_decile=out, r1_i2t=rt.r1_i2t, r1_t2i=rt.r1_t2i)
    return fig, data


@register(
    "commonness",
    "Caption conformity against the mean corpus frequency of its words and its length, with Spearman r",
    "§12",
)
def commonness(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    cm = _beyond(inp, "commonness")
    fig, axes, data = new_figure(
        inp,
        f"Caption conformity vs word frequency: Spearman r = {_f(cm.spearman_word_frequency)}; "
        f"vs length: {_f(cm.spearman_length)}",
        ncols=2,
        height=3.4,
        notes=[
            f"{cm.n_captions} captions, {cm.n_duplicated} of them repeated (duplicates: Spearman r = {_f(cm.spearman_duplicates)})"
        ],
    )
    seed = int(inp.report.config.get("seed", 0))
    freq = np.asarray(cm.word_frequency, dtype=np.float64)
    rows = scatter(axes[0, 0], np.maximum(freq, 1e-12), cm.conformity, MODALITY_COLORS["text"], "caption", seed=seed)
    if np.all(freq[rows] > 0):
        log_axis(axes[0, 0], "x")
    axes[0, 0].set_xlabel("mean corpus frequency of the caption's words")
    axes[0, 0].set_ylabel("exact conformity of the caption")
    scatter(axes[0, 1], cm.length, cm.conformity, MODALITY_COLORS["text"], "caption", seed=seed)
    axes[0, 1].set_xlabel("caption length (words)")
    data.update(
        rows=rows,
        conformity=cm.conformity[rows],
        word_frequency=freq[rows],
        length=cm.length[rows],
        spearman_word_frequency=cm.spearman_word_frequency,
        spearman_length=cm.spearman_length,
        spearman_duplicates=cm.spearman_duplicates,
    )
    return fig, data


@register(
    "gap_metrics",
    "Schrodi et al.'s gap metrics L2M, L2I and RMG with their bootstrap 95 % intervals",
    "§12",
)
def gap_metrics(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    need_both(inp)
    gm = _beyond(inp, "gap_metrics")
    names = (
        ("L2M", "modality_gap.l2_centroid_distance", gm.l2m),
        ("L2I", "gap_metrics.l2i", gm.l2i),
        ("RMG", "gap_metrics.rmg", gm.rmg),
    )
    fig, axes, data = new_figure(
        inp,
        f"Modality gap: L2M {_f(gm.l2m, 3)}, L2I {_f(gm.l2i, 3)}, RMG {_f(gm.rmg, 3)}",
        width=5.2,
        height=3.2,
        notes=[
            "bars: 95 % bootstrap intervals (images resampled with their captions)"
            if _interval(inp, "gap_metrics.rmg")
            else ""
        ],
    )
    ax = axes[0, 0]
    values, lows, highs = [], [], []
    for k, (_label, key, value) in enumerate(names):
        iv = _interval(inp, key)
        err = None if iv is None else [[value - iv[0]], [iv[1] - value]]
        ax.bar(k, value, color=SERIES[1 + k % 3], alpha=0.7)
        if err is not None:
            ax.errorbar(k, value, yerr=err, color=REFERENCE, capsize=4)
        values.append(value)
        lows.append(None if iv is None else iv[0])
        highs.append(None if iv is None else iv[1])
    ax.set_xticks(range(3), [n[0] for n in names])
    ax.set_ylabel("value (unit rows)")
    data.update(metrics=[n[0] for n in names], values=values, low=lows, high=highs, d_m=gm.d_m, d_i=gm.d_i, d_t=gm.d_t)
    return fig, data


@register(
    "spectrum",
    "Eigenvalues of each modality's covariance on log axes, with the dimensions holding 90 % of the variance",
    "§12",
)
def spectrum(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    spec = _beyond(inp, "spectrum")
    parts = ", ".join(f"{m} {_f(r.effective_rank, 0)}" for m, r in spec.items())
    fig, axes, data = new_figure(
        inp,
        f"Eigen-spectra of C: effective rank (RankMe) {parts} of d = {inp.report.dim}",
        width=7.2,
        height=3.8,
        notes=["dotted: the number of leading eigenvalues holding 90 % of tr C"],
    )
    ax = axes[0, 0]
    out = {}
    for m in MODALITIES:
        if m not in spec:
            continue
        r = spec[m]
        lam = np.asarray(r.eigenvalues, dtype=np.float64)
        k = np.arange(1, len(lam) + 1)
        keep = lam > 0
        ax.plot(
            k[keep],
            lam[keep],
            color=MODALITY_COLORS[m],
            label=f"{m}: PR {r.participation_ratio:.1f}, 90 % in {r.dims_90}, 99 % in {r.dims_99}",
        )
        ax.axvline(r.dims_90, color=MODALITY_COLORS[m], linestyle=":", linewidth=1)
        out[m] = {"eigenvalues": lam, "effective_rank": r.effective_rank, "dims_90": r.dims_90, "dims_99": r.dims_99}
    log_axis(ax, "x")
    log_axis(ax, "y")
    ax.set_xlabel("eigenvalue rank k")
    ax.set_ylabel("λ_k")
    ax.legend()
    data.update(spectrum=out)
    return fig, data


@register(
    "whitening",
    "Held-out Gaussian log-likelihood of each modality after whitening, and a QQ-plot of three whitened coordinates",
    "§12",
)
def whitening(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    wh = _beyond(inp, "whitening")
    rates = ", ".join(f"{m} {_f(100 * w.dagostino_pass_rate, 0)} %" for m, w in wh.items())
    fig, axes, data = new_figure(
        inp,
        f"Whitened coordinates passing D'Agostino–Pearson (5 %): {rates}",
        ncols=2,
        height=3.4,
        legend_strip=1,
        notes=[
            "Gaussian rows pass about 95 % (each test rejects 5 % of true normals); left: rows held out of the fit "
            "(seeded half); right: held-out rows, coordinates 0-2 = the largest axes"
        ],
    )
    ax_h, ax_q = axes[0]
    values = {m: np.asarray(w.heldout_log_likelihood, dtype=np.float64) for m, w in wh.items()}
    edges = shared_edges(list(values.values()))
    counts = {m: hist(ax_h, v, edges, MODALITY_COLORS[m], f"{m} (n = {len(v)})") for m, v in values.items()}
    ax_h.set_xlabel("held-out log-likelihood (nats)")
    ax_h.set_ylabel("rows")
    qq = {}
    for m, w in wh.items():
        theo = np.asarray(w.qq_theoretical, dtype=np.float64)
        for k, row in enumerate(np.asarray(w.qq_sample, dtype=np.float64)):
            ax_q.plot(theo, row, color=MODALITY_COLORS[m], alpha=0.5 + 0.15 * k, linewidth=1)
            qq[f"{m}_{k}"] = row
    spread = max((float(np.max(np.abs(w.qq_theoretical))) for w in wh.values() if len(w.qq_theoretical)), default=3.0)
    lim = [-spread, spread]
    ax_q.plot(lim, lim, color=REFERENCE, linestyle="--", linewidth=1, label="y = x (Gaussian)")
    ax_q.set_xlabel("standard normal quantile")
    ax_q.set_ylabel("whitened coordinate")
    figure_legend(fig, [ax_h, ax_q])
    data.update(edges=edges, counts=counts, qq_theoretical={m: w.qq_theoretical for m, w in wh.items()}, qq=qq)
    return fig, data


# -- compare stores -----------------------------------------------------------------------------------------


def comparison_figure(table: Any) -> tuple[Any, dict[str, Any]]:
    """One panel per headline: each analysed store's value with its 95 % interval.

    Parameters
    ----------
    table : clipgeo.report._compare.ReportComparison

    Returns
    -------
    fig, data
    """
    headlines = [h for h in table.headlines if any(table.value(s, h) is not None for s in table.labels)]
    if not headlines:
        raise FigureSkipped("no headline number is shared by the analysed stores")
    ncols = min(3, len(headlines))
    nrows = int(np.ceil(len(headlines) / ncols))
    flag = " (dimensions differ: compare with care)" if table.dims_differ else ""
    fig, axes, data = figure_frame(
        "  ·  ".join(f"{label}: {table.models[label]}, d = {table.dims[label]}" for label in table.labels),
        f"Headline numbers of {len(table.labels)} analysed stores with 95 % bootstrap intervals{flag}",
        nrows=nrows,
        ncols=ncols,
        height=1.9 * nrows + 0.4,
        width=8.0,
    )
    y = np.arange(len(table.labels))
    out = {}
    for i, h in enumerate(headlines):
        ax = axes[i // ncols, i % ncols]
        vals = [table.value(s, h) for s in table.labels]
        ivs = [table.interval(s, h) for s in table.labels]
        for j, (v, iv) in enumerate(zip(vals, ivs, strict=True)):
            if v is None:
                continue
            color = SERIES[j % len(SERIES)]
            xerr = None if iv is None else [[v - iv[0]], [iv[1] - v]]
            ax.errorbar(v, j, xerr=xerr, fmt="o", color=color, capsize=3)
        ax.set_yticks(y, table.labels)
        ax.invert_yaxis()
        ax.set_title(h, fontsize=8)
        out[h] = {"values": vals, "intervals": ivs}
    for k in range(len(headlines), nrows * ncols):
        axes[k // ncols, k % ncols].set_visible(False)
    data.update(labels=table.labels, headlines=out, dims=table.dims, dims_differ=table.dims_differ)
    return fig, data


@register(
    "pair_conformity_disagreements",
    "The pairs whose image and caption conformity disagree most: thumbnail (if readable), caption, C_img, C_txt",
    "§12",
)
def pair_conformity_disagreements(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    import textwrap

    from ._conformity import _thumbnail

    need_both(inp)
    pc = _beyond(inp, "pair_conformity")
    worst = pc.most_disagreeing(5)
    captions = inp.report.rows.get("text", {}).get("captions")
    paths = inp.report.rows.get("image", {}).get("paths")
    fig, axes, data = new_figure(
        inp,
        f"The {len(worst)} pairs whose image and caption conformity disagree most (of {pc.n_pairs})",
        ncols=len(worst),
        height=3.0,
        notes=["disagreement = difference of the two conformities' quantiles in their modality (1 = opposite ends)"],
    )
    items = []
    for ax, p in zip(axes[0], worst, strict=False):
        i, j = int(pc.image_row[p]), int(pc.text_row[p])
        path = str(paths[i]) if paths is not None and len(paths) > i and paths[i] else ""
        caption = str(captions[j]) if captions is not None and len(captions) > j else ""
        thumb = _thumbnail(path)
        ax.set_axis_off()
        if thumb is not None:
            ax.imshow(thumb)
        else:
            ax.text(0.5, 0.6, f"image row {i}", ha="center", va="center", transform=ax.transAxes, color=REFERENCE)
        text = textwrap.fill(" ".join(caption.split())[:90], 24) if caption else f"text row {j}"
        ax.set_title(
            f"C_img {pc.image_conformity[p]:.3f}\nC_txt {pc.text_conformity[p]:.3f}\n{text}", fontsize=7, loc="center"
        )
        items.append(
            {
                "image_row": i,
                "text_row": j,
                "image_conformity": float(pc.image_conformity[p]),
                "text_conformity": float(pc.text_conformity[p]),
                "disagreement": float(pc.disagreement[p]),
                "caption": caption,
                "path": path,
                "thumbnail": thumb is not None,
            }
        )
    data.update(pairs=items)
    return fig, data
