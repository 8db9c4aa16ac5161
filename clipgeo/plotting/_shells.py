"""Shell and ellipsoid figures (SPEC §3–6): norms, variances, Mahalanobis shells, tilt, covariance, offset."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..report._paper import PAPER
from ._draw import (
    compact_ticks,
    figure_legend,
    hist,
    log_axis,
    mark_vline,
    modality_hist,
    new_figure,
    per_modality,
    shared_edges,
    unit_norm_note,
)
from ._registry import FigureInput, FigureSkipped, register
from ._style import DIVERGING_CMAP, MODALITY_COLORS, REFERENCE


def _per(results: dict[str, Any], fmt: str, attr: str) -> str:
    """``"0.091 (image), 0.12 (text)"``: one attribute of each modality's result."""
    return ", ".join(f"{format(getattr(r, attr), fmt)} ({m})" for m, r in results.items())


@register(
    "norms",
    "Histograms of ||x|| and of the centred norm ||x − m|| per modality, with sqrt(tr C) marked",
    "§3",
)
def norms(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    shells = per_modality(inp, "thin_shell")
    note = unit_norm_note(inp, shells, "the uncentred norms (all 1)")
    thick = ", ".join(f"{100 * r.relative_thickness:.1f} % ({m})" for m, r in shells.items())
    paper = PAPER["thin_shell"].value
    fig, axes, data = new_figure(
        inp,
        f"Thin shell: centred norm std / mean = {thick}",
        ncols=2,
        notes=[
            note,
            f"theory: centred norms concentrate at sqrt(tr C); paper (ViT-B/32 images): mean² {paper['mean_sq']} vs "
            f"variance {paper['var']}",
        ],
        legend_strip=1,
    )
    ax_raw, ax_c = axes[0]
    raw = modality_hist(ax_raw, {m: r.norms for m, r in shells.items()}, shared_edges([r.norms for r in shells.values()]))
    ax_raw.set(xlabel="||x|| (embedding units)", ylabel="rows")
    ax_raw.set_title("norm of the raw rows")
    compact_ticks(ax_raw)
    centred = modality_hist(
        ax_c,
        {m: r.centered_norms for m, r in shells.items()},
        shared_edges([r.centered_norms for r in shells.values()] + [np.array([r.sqrt_trace_cov for r in shells.values()])]),
    )
    stats = {}
    for m, r in shells.items():
        mark_vline(ax_c, r.sqrt_trace_cov, MODALITY_COLORS[m], label=f"sqrt(tr C) {m} = {r.sqrt_trace_cov:.3g}")
        stats[m] = {
            key: getattr(r, key)
            for key in (
                "mean_norm", "std_norm", "mean_centered_norm", "std_centered_norm", "sqrt_trace_cov",
                "relative_thickness", "squared_mean_centered_norm", "var_centered_norm",
            )
        }  # fmt: skip
    ax_c.set(xlabel="||x − m|| (embedding units)", ylabel="rows")
    ax_c.set_title("centred norm; dashed: sqrt(tr C)")
    compact_ticks(ax_c)
    figure_legend(fig, ax_c, ncols=4)
    data.update({"norm": raw, "centered_norm": centred, "stats": stats})
    return fig, data


@register(
    "feature_variance",
    "Histogram of the per-feature variances diag(C) per modality (long-tailed), mean marked",
    "§3",
)
def feature_variance(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    shells = per_modality(inp, "thin_shell")
    values = {m: np.asarray(r.feature_variance, dtype=np.float64) for m, r in shells.items()}
    if any(len(v) == 0 for v in values.values()):
        raise FigureSkipped("the results carry no per-feature variances; rerun `clipgeo analyze`")
    note = unit_norm_note(inp, shells, "the variances (of unit rows)")
    positive = all((v > 0).all() for v in values.values())
    edges = shared_edges(list(values.values()), log=positive)
    ratio = ", ".join(
        f"{float(np.max(v) / np.median(v)):.2g}× ({m})" for m, v in values.items() if len(v) and np.median(v) > 0
    )
    fig, axes, data = new_figure(
        inp,
        f"Per-feature variances C_kk: the largest is {ratio} the median",
        height=3.4,
        width=6.6,
        notes=[note, "paper (ViT-B/32): long-tailed, about 0.1 on average"],
    )
    ax = axes[0, 0]
    hists = modality_hist(ax, values, edges, label="{m} (d = {n})")
    for m, r in shells.items():
        mark_vline(ax, r.mean_feature_variance, MODALITY_COLORS[m], label=f"mean {m} = {r.mean_feature_variance:.3g}")
    if positive:
        log_axis(ax)
    ax.set(xlabel="variance of feature k, C_kk (embedding units²)", ylabel="features")
    ax.legend(loc="upper right")
    data.update(
        {
            **hists,
            "log_bins": positive,
            "feature_variance": values,
            "mean_feature_variance": {m: r.mean_feature_variance for m, r in shells.items()},
        }
    )
    return fig, data


@register(
    "mahalanobis_shell",
    "Held-out (5-fold) Mahalanobis vs Euclidean shells: distance / its mean, held-out and in-sample cv",
    "§4",
)
def mahalanobis_shell(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    shells = per_modality(inp, "mahalanobis_shell")
    note = unit_norm_note(inp, shells, "the shells (of unit rows)")
    verdicts = ", ".join(f"{m} {r.cv:.3f} vs {r.euclidean_cv:.3f}" for m, r in shells.items())
    folds = max(int(getattr(r, "folds", 0) or 0) for r in shells.values())
    fig, axes, data = new_figure(
        inp,
        f"Held-out shell cv, Mahalanobis vs Euclidean: {verdicts}",
        ncols=len(shells),
        width=max(4.4 * len(shells), 6.4),
        notes=[
            note,
            f"cross-fitted: Ledoit–Wolf fitted on {folds - 1} of {folds} seeded folds, distances measured on the fifth; "
            "distances of the rows a fit has seen (in-sample) shrink the cv when N is not ≫ d",
            f"paper: {PAPER['mahalanobis_shell'].paper}",
        ],
    )
    out = {}
    for ax, (m, r) in zip(axes[0], shells.items(), strict=False):
        d_m = np.asarray(r.distances, dtype=np.float64)
        held = getattr(r, "centered_norms_held_out", None)
        d_e = np.asarray(held if held is not None and len(held) == len(d_m) else r.centered_norms, dtype=np.float64)
        rel_m, rel_e = d_m / r.mean, d_e / r.euclidean_mean
        edges = shared_edges([rel_m, rel_e])
        c_m = hist(ax, rel_m, edges, MODALITY_COLORS[m], f"Mahalanobis d_M, held out (cv {r.cv:.3f})")
        c_e = hist(ax, rel_e, edges, REFERENCE, f"Euclidean ||x − m||, held out (cv {r.euclidean_cv:.3f})", fill=False)
        ax.plot([], [], linestyle="none", label=f"in-sample d_M cv {r.cv_in_sample:.3f} (biased small)")
        verdict = "thinner" if r.thinner_than_euclidean else "not thinner"
        ax.set_title(f"{m}: the ellipsoidal shell is {verdict}")
        ax.set(xlabel="distance / its mean (dimensionless)", ylabel="rows")
        ax.legend(loc="upper right", fontsize=7)
        out[m] = {
            "edges": edges,
            "counts_mahalanobis": c_m,
            "counts_euclidean": c_e,
            **{
                k: getattr(r, k)
                for k in ("mean", "std", "cv", "cv_in_sample", "euclidean_mean", "euclidean_std", "euclidean_cv",
                          "shrinkage", "folds")
            },  # fmt: skip
            "thinner_than_euclidean": bool(r.thinner_than_euclidean),
        }
    data.update({"modalities": out, "x": "held-out distance divided by its mean"})
    return fig, data


@register(
    "off_diagonal_dominance",
    "Histogram of the off-diagonal dominance odd_k = Σ_j≠k |C_kj| / |C_kk| per modality; odd > 1 = tilted",
    "§5",
)
def off_diagonal_dominance(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "off_diagonal_dominance")
    values = {m: np.asarray(r.per_feature, dtype=np.float64) for m, r in results.items()}
    finite = {m: v[np.isfinite(v)] for m, v in values.items()}
    positive = all(len(v) and (v > 0).all() for v in finite.values())
    edges = shared_edges(list(finite.values()), log=positive)
    shares = ", ".join(f"{100 * r.fraction_above_1:.0f} % ({m})" for m, r in results.items())
    fig, axes, data = new_figure(
        inp,
        f"Off-diagonal dominance: odd > 1 (a tilted axis) for {shares} of the covariance rows",
        height=3.4,
        width=7.0,
        legend_strip=2,
        notes=[f"paper: {PAPER['off_diagonal_dominance'].claim.replace(' ({m})', '')}: {PAPER['off_diagonal_dominance'].paper}"],
    )
    ax = axes[0, 0]
    hists = modality_hist(ax, finite, edges, label="{m} (d = {n})")
    ax.axvline(1.0, color=REFERENCE, linestyle="--", linewidth=1.2, label="odd = 1 (above: tilted)")
    for m, r in results.items():
        ax.axvline(r.median, color=MODALITY_COLORS[m], linestyle=":", linewidth=1.3,
                   label=f"median {m} {r.median:.3g}; {100 * r.fraction_above_1:.0f} % > 1")  # fmt: skip
    if positive:
        log_axis(ax)
    lo, hi = float(edges[0]), float(edges[-1])
    span = (hi / lo) ** 0.05 if positive else 0.05 * (hi - lo)
    ax.set_xlim(min(lo, 1.0) / span if positive else min(lo, 1.0) - span, max(hi, 1.0) * span if positive else max(hi, 1.0) + span)
    ax.set(xlabel="odd_k = Σ_j≠k |C_kj| / |C_kk| (dimensionless)", ylabel="features")
    figure_legend(fig, ax, ncols=3)
    data.update(
        {
            **hists,
            "per_feature": values,
            "median": {m: r.median for m, r in results.items()},
            "fraction_above_1": {m: r.fraction_above_1 for m, r in results.items()},
        }
    )
    return fig, data


@register(
    "covariance",
    "Heat maps of the image and text covariance matrices C (ddof = 1)",
    "§5",
)
def covariance(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "off_diagonal_dominance")
    mats = {m: np.asarray(r.covariance, dtype=np.float64) for m, r in results.items()}
    if any(c.ndim != 2 or c.size == 0 for c in mats.values()):
        raise FigureSkipped("the results carry no covariance matrix (covariance_<modality>.npy); rerun `clipgeo analyze`")
    # one symmetric colour scale for both, clipped at the 99th percentile of |C| so the tilt is visible
    limit = float(np.percentile(np.abs(np.concatenate([c.ravel() for c in mats.values()])), 99)) or 1.0
    fig, axes, data = new_figure(
        inp,
        "Covariance matrices C (ddof = 1) of the image and the text rows",
        ncols=len(mats),
        width=max(3.9 * len(mats) + 0.8, 6.0),
        height=3.8,
    )
    image = None
    for ax, (m, c) in zip(axes[0], mats.items(), strict=False):
        d = len(c)
        image = ax.imshow(c, cmap=DIVERGING_CMAP, vmin=-limit, vmax=limit, extent=(-0.5, d - 0.5, d - 0.5, -0.5))
        ax.set_title(f"{m} covariance ({d} × {d})", color=MODALITY_COLORS[m])
        ax.set(xlabel="feature j", ylabel="feature k")
        ax.grid(False)
    fig.colorbar(image, ax=list(axes[0]), shrink=0.85, label=f"C_kj (embedding units²), clipped at ±{limit:.2g}")
    data.update({"covariance": mats, "color_limit": limit, "color_limit_rule": "99th percentile of |C| over both"})
    return fig, data


@register(
    "offset",
    "Per-feature |m_k| vs σ_k: the ellipsoid centres sit far from the origin (||m|| / ||σ||)",
    "§6",
)
def offset(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    results = per_modality(inp, "ellipsoid_offset")
    if any(r.mean is None or len(r.mean) == 0 for r in results.values()):
        raise FigureSkipped("the results carry no per-feature means; rerun `clipgeo analyze`")
    note = unit_norm_note(inp, results, "means and spreads (of unit rows)")
    fig, axes, data = new_figure(
        inp,
        f"Centre offset ||m|| / ||σ|| = {_per(results, '.3g', 'ratio')}",
        height=4.2,
        width=6.4,
        notes=[
            note,
            f"paper (ViT-B/32): {PAPER['offset_image'].paper} (image), {PAPER['offset_text'].paper} (text), the centres "
            "as far from the origin as the shells are wide",
        ],
        legend_strip=1,
    )
    ax = axes[0, 0]
    out = {}
    lo, hi = np.inf, 0.0
    for m, r in results.items():
        mean_abs, std = np.abs(np.asarray(r.mean, dtype=np.float64)), np.asarray(r.std, dtype=np.float64)
        ax.scatter(std, mean_abs, s=9, color=MODALITY_COLORS[m], alpha=0.55, linewidths=0,
                   label=f"{m}: ||m|| / ||σ|| = {r.ratio:.3g}")  # fmt: skip
        both = np.concatenate([mean_abs[mean_abs > 0], std[std > 0]])
        if len(both):
            lo, hi = min(lo, float(both.min())), max(hi, float(both.max()))
        out[m] = {
            "abs_mean": mean_abs,
            "std": std,
            "ratio": r.ratio,
            "mean_norm": r.mean_norm,
            "std_norm": r.std_norm,
            "fraction_mean_above_std": r.fraction_mean_above_std,
        }
    if np.isfinite(lo) and hi > lo:
        ax.plot([lo, hi], [lo, hi], color=REFERENCE, linestyle="--", linewidth=1.0, label="|m_k| = σ_k")
        ax.set(xscale="log", yscale="log")
    ax.set(xlabel="σ_k, std of feature k (embedding units)", ylabel="|m_k|, |mean of feature k| (embedding units)")
    figure_legend(fig, ax, ncols=3, markerscale=2)
    data.update({"modalities": out})
    return fig, data
