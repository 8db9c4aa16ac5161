"""Linear separability figures (SPEC §2): modality-label features, the best pair, the ranking, features 0–9."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

from ..report._paper import PAPER
from ._draw import MODALITIES, figure_legend, modality_hist, need_both, new_figure, scatter, shared_edges, skip_reason
from ._registry import FigureInput, FigureSkipped, register
from ._style import MODALITY_COLORS, REFERENCE, SERIES

#: features shown by the top-features figure when none is a modality-label feature
N_TOP = 6
#: most modality-label features the top-features figure shows
N_LABEL = 9


def named_features(inp: FigureInput) -> list[int]:
    """The features the user asked for (``clipgeo figures --features``), checked against the dimension."""
    from ..validation import check_features

    return check_features(getattr(inp, "features", None), inp.report.dim)


def _separability(inp: FigureInput):
    need_both(inp)
    sep = inp.report.separability
    if sep is None:
        raise FigureSkipped(skip_reason(inp, "separability"))
    return sep


def _values(inp: FigureInput, feature: int) -> dict[str, np.ndarray]:
    """Raw values of one feature per modality, as the analysis stored them for the figures."""
    out = {}
    for m in MODALITIES:
        values = inp.report.top_feature_values.get(m, {})
        if feature not in values:
            raise FigureSkipped(f"the results carry no values of feature {feature}; rerun `clipgeo analyze`")
        out[m] = np.asarray(values[feature], dtype=np.float64)
    return out


def _feature_panel(ax, inp: FigureInput, sep: Any, k: int) -> dict[str, Any]:
    values = _values(inp, k)
    hist = modality_hist(ax, values, shared_edges(list(values.values())))
    ax.axvline(sep.threshold[k], color=REFERENCE, linestyle="--", linewidth=1.0, label="best threshold")
    ax.set_title(f"feature {k}: {100 * sep.threshold_accuracy[k]:.1f} %, d' = {sep.dprime[k]:.2g}")
    ax.set_xlabel(f"x[{k}] (embedding units)")
    return {
        "feature": int(k),
        "rank": int(sep.rank[k]),
        "threshold_accuracy": float(sep.threshold_accuracy[k]),
        "auc": float(sep.auc[k]),
        "dprime": float(sep.dprime[k]),
        "threshold": float(sep.threshold[k]),
        "orientation": int(sep.orientation[k]),
        "mean": {"image": float(sep.mean_image[k]), "text": float(sep.mean_text[k])},
        "std": {"image": float(sep.std_image[k]), "text": float(sep.std_text[k])},
        **hist,
    }


@register(
    "separating_features",
    "Histograms of the most modality-separating features (image vs text) with their best thresholds",
    "§2",
)
def separating_features(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    sep = _separability(inp)
    label = [int(k) for k in sep.modality_label_features]
    perfect = len(sep.separating_features(1.0))
    named = named_features(inp)
    best = int(sep.ranking[0])
    if named:
        top = named
        shown = ", ".join(f"{k} ({100 * sep.threshold_accuracy[k]:.1f} %)" for k in named)
        title = f"Named features, single-threshold accuracy: {shown}"
    elif label:
        top = label[:N_LABEL]
        more = f"; top {len(top)} shown" if len(label) > len(top) else ""
        title = f"{len(label)} feature(s) separate image from text ≥ 95 % alone ({perfect} at 100 %){more}"
    else:
        top = [int(k) for k in sep.ranking[: min(N_TOP, len(sep.ranking))]]
        title = f"No feature separates ≥ 95 % on its own; the best, feature {best}, {100 * sep.threshold_accuracy[best]:.1f} %"
    ncols = min(3, len(top))
    nrows = -(-len(top) // ncols)
    paper = PAPER["label_features"]
    fig, axes, data = new_figure(
        inp,
        title,
        nrows=nrows,
        ncols=ncols,
        height=2.5 * nrows,
        legend_strip=1,
        notes=[
            f"paper: {paper.paper} (features {' and '.join(map(str, PAPER['label_feature_indices'].value))}, "
            "probably 1-based: 92 and 133 here); modality-label criterion: single-threshold balanced accuracy ≥ 95 %, "
            "in-sample; feature indices 0-based"
        ],
    )
    panels = []
    for i, k in enumerate(top):
        ax = axes.flat[i]
        panels.append(_feature_panel(ax, inp, sep, k))
        if i % ncols == 0:
            ax.set_ylabel("rows")
    figure_legend(fig, axes.flat[0])
    for ax in axes.flat[len(top) :]:
        ax.set_visible(False)
    data.update(
        {
            "features": panels,
            "shown": top,
            "named": named,
            "modality_label_features": label,
            "n_modality_label_features": len(label),
            "modality_label_criterion": "single-threshold balanced accuracy >= 0.95, in-sample",
            "n_perfect": perfect,
            "accuracy": "balanced, in-sample, one threshold",
        }
    )
    return fig, data


@register(
    "best_pair",
    "Best two-feature scatter of image vs text rows with its LDA separating line",
    "§2",
)
def best_pair(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    sep = _separability(inp)
    if sep.best_pair is None or sep.best_pair_w is None:
        raise FigureSkipped("the separability results have no best feature pair")
    f0, f1 = (int(k) for k in sep.best_pair)
    w = np.asarray(sep.best_pair_w, dtype=np.float64)
    b = float(sep.best_pair_b)
    v0, v1 = _values(inp, f0), _values(inp, f1)
    fig, axes, data = new_figure(
        inp,
        f"Best feature pair ({f0}, {f1}): one line separates {100 * sep.best_pair_accuracy:.1f} %",
        height=4.4,
        width=6.8,
        legend_strip=1,
    )
    ax = axes[0, 0]
    ties = int(getattr(sep, "best_pair_ties", 0) or 0)
    fisher = getattr(sep, "best_pair_fisher", None)
    if ties > 1:
        ax.set_title(f"{ties} pairs tie at this accuracy; this one has the largest Fisher ratio ({fisher:.3g})", fontsize=8.5)
    else:
        ax.set_title("Fisher LDA line; balanced accuracy, in-sample")
    points = {}
    seed = int(inp.report.config.get("seed", 0))
    for m in MODALITIES:
        rows = scatter(ax, v0[m], v1[m], MODALITY_COLORS[m], f"{m} (n = {len(v0[m])})", seed=seed)
        points[m] = {"rows": rows, "x": v0[m][rows], "y": v1[m][rows]}
    allx = np.concatenate([v0[m] for m in MODALITIES])
    ally = np.concatenate([v1[m] for m in MODALITIES])
    pad = 0.05 * max(np.ptp(allx), 1e-12)
    xs = np.array([allx.min() - pad, allx.max() + pad])
    if abs(w[1]) > 1e-12 * max(abs(w[0]), 1e-300):
        ys = -(w[0] * xs + b) / w[1]
        ax.plot(xs, ys, color=REFERENCE, linestyle="--", linewidth=1.3, label="LDA line")
    else:
        ax.axvline(-b / w[0], color=REFERENCE, linestyle="--", linewidth=1.3, label="LDA line")
    pady = 0.05 * max(np.ptp(ally), 1e-12)
    ax.set(xlim=tuple(xs), ylim=(ally.min() - pady, ally.max() + pady))
    ax.set(xlabel=f"x[{f0}] (embedding units)", ylabel=f"x[{f1}] (embedding units)")
    figure_legend(fig, ax, ncols=3, markerscale=2)
    data.update(
        {
            "features": [f0, f1],
            "accuracy": float(sep.best_pair_accuracy),
            "w": w,
            "b": b,
            "line": f"image where {w[0]:.6g} * x[{f0}] + {w[1]:.6g} * x[{f1}] + {b:.6g} > 0",
            "classifier": "Fisher LDA, equal priors; balanced accuracy, in-sample",
            "best_pair_ties": ties,
            "fisher_ratio": fisher,
            "points": points,
        }
    )
    return fig, data


@register(
    "separability_ranking",
    "Per-feature separability ranking: single-threshold balanced accuracy and |d'| by rank",
    "§2",
)
def separability_ranking(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    sep = _separability(inp)
    ranking = np.asarray(sep.ranking, dtype=np.int64)
    acc = 100 * np.asarray(sep.threshold_accuracy, dtype=np.float64)[ranking]
    dprime = np.abs(np.asarray(sep.dprime, dtype=np.float64))[ranking]
    from matplotlib.ticker import StrMethodFormatter

    ranks = np.arange(1, len(ranking) + 1)
    cv = sep.linear_cv_accuracy
    label = len(sep.modality_label_features)
    together = f"; all {len(ranking)} together {100 * cv:.1f} % (5-fold CV)" if cv is not None else ""
    fig, axes, data = new_figure(
        inp,
        f"{label} of {len(ranking)} features reach ≥ 95 % on their own, the best {acc[0]:.1f} %{together}",
        ncols=2,
        notes=[f"paper: {PAPER['label_features'].paper}; linear, all features: {PAPER['linear_cv'].paper}"],
    )
    ax_acc, ax_d = axes[0]
    ax_acc.plot(ranks, acc, color=SERIES[0], marker="o", markersize=2.5, linewidth=1.0)
    ax_acc.axhline(50, color=REFERENCE, linestyle=":", linewidth=1.0, label="chance (50 %)")
    ax_acc.axhline(95, color=SERIES[3], linestyle="--", linewidth=1.0, label="modality-label criterion (95 %)")
    if cv is not None:
        ax_acc.axhline(100 * cv, color=SERIES[2], linestyle="-.", linewidth=1.0, label=f"all features, 5-fold CV ({100 * cv:.1f} %)")
    shown = min(10, len(ranking))
    top = ", ".join(str(int(k)) for k in ranking[:shown])
    ax_acc.text(0.97, 0.86, textwrap.fill(f"top {shown} (0-based): {top}", 34), transform=ax_acc.transAxes,
                ha="right", va="top", fontsize=7.5, bbox={"facecolor": "white", "edgecolor": "#bbbbbb", "pad": 3})  # fmt: skip
    ax_acc.set_xscale("log")
    ax_acc.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax_acc.set(xlabel="rank of the feature (1 = most separating)", ylabel="balanced accuracy, one threshold (%)")
    ax_acc.set_title("single-feature accuracy by rank")
    ax_acc.legend(loc="center left")
    ax_d.plot(ranks, dprime, color=SERIES[0], marker="o", markersize=2.5, linewidth=0, alpha=0.7)
    ax_d.set_xscale("log")
    ax_d.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax_d.set(xlabel="rank of the feature (1 = most separating)", ylabel="|d'| (pooled standard deviations)")
    ax_d.set_title("effect size of the same features")
    data.update(
        {
            "ranking": ranking,
            "threshold_accuracy_by_rank": np.asarray(sep.threshold_accuracy, dtype=np.float64)[ranking],
            "abs_dprime_by_rank": dprime,
            "auc_by_rank": np.asarray(sep.auc, dtype=np.float64)[ranking],
            "linear_cv_accuracy": cv,
            "n_perfect": int(len(sep.separating_features(1.0))),
            "n_modality_label_features": label,
        }
    )
    return fig, data


@register(
    "first_features",
    "Distributions of the first 10 features (0–9), image vs text",
    "§2",
)
def first_features(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    sep = _separability(inp)
    n = min(10, inp.report.dim)
    ncols = min(5, n)
    nrows = -(-n // ncols)
    fig, axes, data = new_figure(
        inp, "The first 10 features, image vs text (title: single-threshold accuracy)", nrows=nrows, ncols=ncols,
        height=2.3 * nrows,
        legend_strip=1,
    )
    panels = []
    for k in range(n):
        ax = axes.flat[k]
        values = _values(inp, k)
        hist = modality_hist(ax, values, shared_edges(list(values.values()), bins=30))
        ax.set_title(f"feature {k}: {100 * sep.threshold_accuracy[k]:.0f} %", fontsize=8.5)
        ax.set_xlabel(f"x[{k}] (emb. units)", fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel("rows")
        panels.append({"feature": k, "threshold_accuracy": float(sep.threshold_accuracy[k]), **hist})
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    figure_legend(fig, axes.flat[0])
    data.update({"features": panels, "units": "embedding units"})
    return fig, data
