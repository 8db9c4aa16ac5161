"""Why off-centre (SPEC §8), cosine sensitivity (SPEC §9) and the 2-D picture of the gap (SPEC §10)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..report._paper import PAPER
from ._draw import MODALITIES, figure_legend, log_axis, need_both, new_figure, scatter, skip_reason
from ._registry import FigureInput, FigureSkipped, register
from ._style import MODALITY_COLORS, REFERENCE, SEQUENTIAL_CMAP, SERIES


def _log_ticks(ax, axis: str = "x") -> None:
    """A log axis with plain labels at 1, 2, 5 × 10^k (1, 1.2, 1.5, 2, 3, 5, 7 × 10^k within a decade)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    log_axis(ax, axis)
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if not (lo > 0 and hi > lo) or np.log10(hi / lo) > 3:
        return
    mantissas = (1, 2, 5) if np.log10(hi / lo) > 1 else (1, 1.2, 1.5, 2, 3, 5, 7)
    decades = np.arange(np.floor(np.log10(lo)) - 1, np.ceil(np.log10(hi)) + 1)
    ticks = [m * 10.0**k for k in decades for m in mantissas]
    ticks = [t for t in ticks if lo <= t <= hi]
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda x, pos=None: f"{x:g}"))
    target.set_minor_formatter(NullFormatter())


def _mark_min(ax, alpha: np.ndarray, values: np.ndarray, color: str, what: str) -> dict[str, Any]:
    """Star the lowest point of a curve; a minimum at the first or last α is labelled a grid edge."""
    i = int(np.argmin(values))
    edge = i in (0, len(alpha) - 1)
    where = f"α = {alpha[i]:.2g}" + (" (grid edge)" if edge else "")
    ax.plot(alpha[i], values[i], marker="*", markersize=11, color=color, linestyle="none", label=f"lowest {what}: {where}")
    return {"argmin": float(alpha[i]), "at_edge": edge}


def _lowest(cs: Any, curve: str) -> str:
    """``"α = 0.1"`` or ``"α = -1 (grid edge)"`` for the minimum of one curve."""
    i = int(np.argmin(getattr(cs, curve)))
    edge = i in (0, len(cs.alpha) - 1)
    return f"α = {cs.alpha[i]:.2g}" + (" (grid edge)" if edge else "")


@register(
    "centroid_shift",
    "CLIP loss, its terms and Wang & Isola's metrics (change from α = 0), conformity KL, vs image centroid shift α",
    "§8",
)
def centroid_shift(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    need_both(inp)
    cs = inp.report.centroid_shift
    if cs is None:
        raise FigureSkipped(skip_reason(inp, "centroid_shift"))
    alpha = np.asarray(cs.alpha, dtype=np.float64)
    if len(alpha) < 2:
        raise FigureSkipped("the centroid shift has fewer than 2 shifts α; rerun `clipgeo analyze` with a longer --alphas grid")
    i0 = int(np.argmin(np.abs(alpha)))
    ref = f"α = {alpha[i0]:.2g}"

    def change(name: str) -> np.ndarray:
        values = np.asarray(getattr(cs, name), dtype=np.float64)
        return values - values[i0] if len(values) == len(alpha) else np.full(len(alpha), np.nan)

    d_loss, d_align, d_unif = change("loss"), change("alignment"), change("uniformity")
    d_wa, d_wu = change("wang_isola_alignment"), change("wang_isola_uniformity_image")
    kl = np.asarray(cs.conformity_kl, dtype=np.float64)
    kl_est = np.asarray(cs.conformity_kl_estimate, dtype=np.float64)
    loss_at = _lowest(cs, "loss")
    paper = PAPER["centroid_shift_loss"]
    fig, axes, data = new_figure(
        inp,
        f"Centroid shift: loss lowest at {loss_at}, conformity KL at {_lowest(cs, 'conformity_kl')}",
        nrows=2,
        ncols=2,
        height=5.6,
        legend_strip=0,
        notes=[
            f"paper (ViT-B/32, MS-COCO): loss and conformity KL lowest at {paper.paper}; a minimum at the edge of "
            "the α grid is a bound, not an optimum; dotted: α = 0, the data as trained",
            f"symmetric InfoNCE at τ = {cs.temperature:g}; {cs.repetitions} caption draw(s), each {cs.pairs_used} pairs "
            f"(one caption per image, {cs.n_pairs} stored pairs, {cs.n_images} unique images) shuffled into "
            f"{cs.batches} batch(es) of ≤ {cs.batch_size}, every image at most once per batch",
            f"conformity KL: {cs.kl_bins}-bin histograms, +{cs.kl_pseudo_count:g} per bin; such a KL is bounded by "
            f"{cs.kl_bound:.2f} nats (≈ log(2N+1)), so its size is not comparable with the paper's curve",
        ],
    )
    ax_loss, ax_terms = axes[0]
    ax_wi, ax_kl = axes[1]
    xlabel = "shift α (× image mean)"

    ax_loss.plot(alpha, d_loss, color=SERIES[0], marker="o", markersize=3, label="loss")
    marks = {"loss": _mark_min(ax_loss, alpha, d_loss, SERIES[0], "loss")}
    ax_loss.set_title(f"CLIP loss, change from {ref}")
    ax_loss.set(xlabel=xlabel, ylabel="Δ loss (nats)")

    ax_terms.plot(alpha, d_align, color=SERIES[1], marker="s", markersize=3, label="alignment −mean S_ii")
    ax_terms.plot(alpha, d_unif, color=SERIES[2], marker="^", markersize=3, label="uniformity (logsumexp)")
    ax_terms.set_title("its two terms (±1/τ-sized, nearly cancel)")
    ax_terms.set(xlabel=xlabel, ylabel=f"Δ term from {ref} (nats)")

    ax_wi.plot(alpha, d_wa, color=SERIES[1], marker="s", markersize=3, label="pair alignment E||u − v||²")
    ax_wi.set(xlabel=xlabel, ylabel="Δ alignment", title="Wang & Isola, change from " + ref)
    ax_wi.tick_params(axis="y", labelcolor=SERIES[1])
    ax_wi.yaxis.label.set_color(SERIES[1])
    twin = ax_wi.twinx()
    twin.plot(alpha, d_wu, color=SERIES[2], marker="^", markersize=3, label="image uniformity")
    twin.set_ylabel("Δ image uniformity", color=SERIES[2])
    twin.tick_params(axis="y", labelcolor=SERIES[2])
    twin.grid(False)
    if np.isfinite(d_wa).all():
        marks["wang_isola_alignment"] = _mark_min(ax_wi, alpha, d_wa, SERIES[1], "alignment")
    if np.isfinite(d_wu).all():
        marks["wang_isola_uniformity_image"] = _mark_min(twin, alpha, d_wu, SERIES[2], "uniformity")

    ax_kl.plot(alpha, kl, color=SERIES[0], marker="o", markersize=3, label="from the exact conformity")
    marks["conformity_kl"] = _mark_min(ax_kl, alpha, kl, SERIES[0], "KL")
    if len(kl_est) == len(alpha):
        ax_kl.plot(alpha, kl_est, color=SERIES[3], marker="d", markersize=3, label="from estimate_unit (paper's notebook)")
        marks["conformity_kl_estimate"] = _mark_min(ax_kl, alpha, kl_est, SERIES[3], "KL (estimate)")
    ax_kl.axhline(cs.kl_bound, color=REFERENCE, linestyle="--", linewidth=1.0, label=f"bound {cs.kl_bound:.2f} nats")
    ax_kl.set_ylim(0, 2.0 * max(cs.kl_bound, float(np.nanmax(kl)) if len(kl) else 0.0))
    ax_kl.set_title("KL(image ‖ text conformity)")
    ax_kl.set(xlabel=xlabel, ylabel="KL divergence (nats)")

    for ax in (ax_loss, ax_terms, ax_wi, ax_kl):
        if alpha.min() <= 0 <= alpha.max():
            ax.axvline(0.0, color=REFERENCE, linestyle=":", linewidth=1.0)
    for ax, extra, loc, ncols in (
        (ax_loss, None, "upper center", 1),
        (ax_terms, None, "best", 1),
        (ax_wi, twin, "center left", 1),
        (ax_kl, None, "upper left", 1),
    ):
        handles, labels = ax.get_legend_handles_labels()
        if extra is not None:
            h2, l2 = extra.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        ax.legend(handles, labels, fontsize=6.5, loc=loc, ncols=ncols)
    data.update(
        {
            "alpha": alpha,
            "reference_alpha": float(alpha[i0]),
            "loss": np.asarray(cs.loss, dtype=np.float64),
            "loss_std": np.asarray(cs.loss_std, dtype=np.float64),
            "change": {
                "loss": d_loss,
                "alignment": d_align,
                "uniformity": d_unif,
                "wang_isola_alignment": d_wa,
                "wang_isola_uniformity_image": d_wu,
            },
            "conformity_kl": kl,
            "conformity_kl_estimate": kl_est,
            "kl_bound": cs.kl_bound,
            "kl_estimator": cs.kl_estimator,
            "minima": marks,
            "argmin_loss": marks["loss"]["argmin"],
            "argmin_at_edge": marks["loss"]["at_edge"],
            "temperature": cs.temperature,
            "batch_size": cs.batch_size,
            "batches": cs.batches,
            "repetitions": cs.repetitions,
            "pairs_used": cs.pairs_used,
            "paper": paper.paper,
        }
    )
    return fig, data


@register(
    "cosine_gradient",
    "Mean |Δcos| under a fixed random move vs ||u||, own and nearest unpaired caption; gradient formula overlay",
    "§9",
)
def cosine_gradient(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    need_both(inp)
    cg = inp.report.cosine_gradient
    if cg is None:
        raise FigureSkipped(skip_reason(inp, "cosine_gradient"))
    norm = np.asarray(cg.norm, dtype=np.float64)
    grad = np.asarray(cg.grad_norm, dtype=np.float64)
    alpha = np.asarray(cg.alpha, dtype=np.float64)
    cos = np.asarray(cg.cosine, dtype=np.float64)
    mean_norm = np.asarray(cg.mean_norm, dtype=np.float64)
    own, neg = np.asarray(cg.delta_cos_own, dtype=np.float64), np.asarray(cg.delta_cos_negative, dtype=np.float64)
    f_own, f_neg = np.asarray(cg.formula_delta_cos_own, dtype=np.float64), np.asarray(cg.formula_delta_cos_negative, dtype=np.float64)
    ok = (norm > 0) & (grad > 0)
    if len(mean_norm) < 2 or len(own) != len(mean_norm):
        raise FigureSkipped("the results carry no perturbation sweep (cosine_gradient); rerun `clipgeo analyze`")
    far, near = int(np.argmax(mean_norm)), int(np.argmin(mean_norm))
    ratio = own[near] / own[far] if own[far] > 0 else float("nan")
    fig, axes, data = new_figure(
        inp,
        f"A fixed move changes cos(u, own caption) {ratio:.2g}× less at ||u|| = {mean_norm[far]:.2g} than at "
        f"{mean_norm[near]:.2g}",
        ncols=2,
        height=3.8,
        notes=[
            "paper: far from the origin a small move changes the cosine less (||∂cos/∂u|| = sqrt(1 − cos²)/||u||), "
            "which tolerates false negatives",
            f"δ = {cg.perturbation_norm:.2g} ({cg.epsilon:g} × the images' mean centred norm), one seeded random "
            f"direction per row (the same at every α); {cg.n_samples} image rows; nearest unpaired caption among "
            f"{cg.n_negatives} texts; the first-order line leaves out the δ² term",
        ],
    )
    ax, ax_g = axes[0]
    ax.plot(mean_norm, own, color=SERIES[0], marker="o", markersize=3, linewidth=1.2, label="own caption (measured)")
    ax.plot(mean_norm, neg, color=SERIES[3], marker="s", markersize=3, linewidth=1.2, label="nearest unpaired caption")
    ax.plot(mean_norm, f_own, color=SERIES[0], linestyle="--", linewidth=1.0, label="first order: δ·c_d·sqrt(1 − cos²)/||u||")
    ax.plot(mean_norm, f_neg, color=SERIES[3], linestyle="--", linewidth=1.0)
    i0 = int(np.argmin(np.abs(np.asarray(cg.grid_alpha, dtype=np.float64))))
    ax.axvline(mean_norm[i0], color=REFERENCE, linestyle=":", linewidth=1.0, label="α = 0: the data as trained")
    _log_ticks(ax, "x")
    _log_ticks(ax, "y")
    ax.set(xlabel="mean ||u|| of the shifted rows (embedding units)", ylabel="mean |Δcos| (dimensionless)")
    ax.set_title("perturbation experiment")
    ax.legend(fontsize=6.5, loc="upper right")
    if ok.sum() >= 2:
        points = ax_g.scatter(norm[ok], grad[ok], c=alpha[ok], cmap=SEQUENTIAL_CMAP, s=7, alpha=0.7, linewidths=0)
        sine = float(np.median(np.sqrt(np.clip(1 - cos[ok] ** 2, 0, None))))
        xs = np.geomspace(norm[ok].min(), norm[ok].max(), 50)
        ax_g.plot(xs, sine / xs, color=REFERENCE, linestyle="--", linewidth=1.2, label=f"sqrt(1 − cos²)/||u||, sin = {sine:.3f}")
        _log_ticks(ax_g, "x")
        _log_ticks(ax_g, "y")
        fig.colorbar(points, ax=ax_g, label="shift α of u = x − α·m_img")
        ax_g.legend(loc="upper right", fontsize=6.5)
    else:
        sine = float("nan")
    ax_g.set(xlabel="||u|| (embedding units)", ylabel="||∂cos(u, w)/∂u|| (1 / embedding units)")
    ax_g.set_title(f"the formula: gradient vs norm, log-log slope {cg.loglog_slope:.2f}")
    data.update(
        {
            "grid_alpha": np.asarray(cg.grid_alpha, dtype=np.float64),
            "mean_norm": mean_norm,
            "delta_cos_own": own,
            "delta_cos_negative": neg,
            "formula_delta_cos_own": f_own,
            "formula_delta_cos_negative": f_neg,
            "perturbation_norm": cg.perturbation_norm,
            "epsilon": cg.epsilon,
            "sensitivity_ratio": float(own[far] / own[near]) if own[near] > 0 else None,
            "alpha": alpha,
            "row": np.asarray(cg.row),
            "norm": norm,
            "grad_norm": grad,
            "cosine": cos,
            "reference_sine": sine,
            "loglog_slope": cg.loglog_slope,
            "max_relative_error": cg.max_relative_error,
        }
    )
    return fig, data


@register(
    "pca_projection",
    "2-D PCA projection of the image and text rows together, showing the modality gap",
    "§1, §10",
)
def pca_projection(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    need_both(inp)
    proj = inp.report.projection
    if proj is None:
        raise FigureSkipped(skip_reason(inp, "pca"))
    coords = {m: np.asarray(getattr(proj, m), dtype=np.float64) for m in MODALITIES}
    if any(c.ndim != 2 or c.shape[1] < 2 or len(c) == 0 for c in coords.values()):
        raise FigureSkipped("the projection has fewer than 2 components or misses a modality")
    ratio = np.asarray(proj.explained_variance_ratio, dtype=np.float64)
    gap = inp.report.modality_gap
    measured = "" if gap is None else f": l2 centroid distance {gap.l2_centroid_distance:.3f}"
    fig, axes, data = new_figure(
        inp,
        f"PCA of both modalities{measured}",
        height=4.4,
        width=6.4,
        legend_strip=1,
        notes=[f"paper: l2 centroid distance of unit vectors {PAPER['modality_gap'].paper}"],
    )
    ax = axes[0, 0]
    seed = int(inp.report.config.get("seed", 0))
    out = {}
    for m, c in coords.items():
        rows = scatter(ax, c[:, 0], c[:, 1], MODALITY_COLORS[m], f"{m} (n = {len(c)})", seed=seed)
        centre = c[:, :2].mean(axis=0)
        ax.plot(*centre, marker="X", markersize=10, color=MODALITY_COLORS[m], markeredgecolor="black", linestyle="none")
        out[m] = {"rows": rows, "pc1": c[rows, 0], "pc2": c[rows, 1], "centroid": centre}
    ax.plot([], [], marker="X", color="#777777", markeredgecolor="black", linestyle="none", label="centroids")
    ax.set(
        xlabel=f"PC 1, {100 * ratio[0]:.1f} % of the variance (embedding units)",
        ylabel=f"PC 2, {100 * ratio[1]:.1f} % of the variance (embedding units)",
    )
    ax.set_aspect("equal", adjustable="datalim")
    figure_legend(fig, ax, ncols=3, markerscale=2)
    data.update({"modalities": out, "explained_variance_ratio": ratio})
    return fig, data
