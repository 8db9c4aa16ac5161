"""Why off-centre (SPEC §8), cosine sensitivity (SPEC §9) and the 2-D picture of the gap (SPEC §10)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._draw import MODALITIES, figure_legend, log_axis, need_both, new_figure, scatter, skip_reason
from ._registry import FigureInput, FigureSkipped, register
from ._style import MODALITY_COLORS, REFERENCE, SEQUENTIAL_CMAP, SERIES


@register(
    "centroid_shift",
    "CLIP loss, its alignment and uniformity terms, and the conformity KL as the image centroid shifts by α",
    "§8",
)
def centroid_shift(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    need_both(inp)
    cs = inp.report.centroid_shift
    if cs is None:
        raise FigureSkipped(skip_reason(inp, "centroid_shift"))
    alpha = np.asarray(cs.alpha, dtype=np.float64)
    loss, align, unif = (np.asarray(v, dtype=np.float64) for v in (cs.loss, cs.alignment, cs.uniformity))
    kl = np.asarray(cs.conformity_kl, dtype=np.float64)
    fig, axes, data = new_figure(
        inp,
        "Shifting the image ellipsoid along its mean: x − α·m_img",
        ncols=3,
        height=3.2,
        legend_strip=2,
        notes=[
            f"symmetric InfoNCE at τ = {cs.temperature:g}, {cs.n_batches} batch(es) of {cs.batch_size} pairs; "
            f"KL of conformity histograms ({cs.kl_bins} bins, +{cs.kl_pseudo_count:g} per bin)"
        ],
    )
    ax_loss, ax_terms, ax_kl = axes[0]
    i_loss, i_kl = int(np.argmin(loss)), int(np.argmin(kl))
    ax_loss.plot(alpha, loss, color=SERIES[0], marker="o", markersize=3)
    ax_loss.plot(alpha[i_loss], loss[i_loss], marker="*", markersize=11, color=SERIES[0], linestyle="none",
                 label=f"lowest loss at α = {alpha[i_loss]:.2g}")  # fmt: skip
    ax_loss.set_title("contrastive loss = alignment + uniformity")
    ax_loss.set(xlabel="shift α (× image mean)", ylabel="loss (nats)")
    ax_terms.plot(alpha, align, color=SERIES[1], marker="s", markersize=3, label="alignment −mean S_ii")
    ax_terms.plot(alpha, unif, color=SERIES[2], marker="^", markersize=3, label="uniformity (logsumexp)")
    ax_terms.set_title("the two terms")
    ax_terms.set(xlabel="shift α (× image mean)", ylabel="term (nats)")
    ax_kl.plot(alpha, kl, color=SERIES[0], marker="o", markersize=3)
    ax_kl.plot(alpha[i_kl], kl[i_kl], marker="*", markersize=11, color=SERIES[3], linestyle="none",
               label=f"lowest KL at α = {alpha[i_kl]:.2g}")  # fmt: skip
    ax_kl.set_title("KL(image ‖ text conformity)")
    ax_kl.set(xlabel="shift α (× image mean)", ylabel="KL divergence (nats)")
    for ax in (ax_loss, ax_terms, ax_kl):
        if alpha.min() <= 0 <= alpha.max():
            ax.axvline(0.0, color=REFERENCE, linestyle=":", linewidth=1.0, label="α = 0: the data as trained")
    figure_legend(fig, [ax_loss, ax_terms, ax_kl], ncols=3)
    data.update(
        {
            "alpha": alpha,
            "loss": loss,
            "alignment": align,
            "uniformity": unif,
            "conformity_kl": kl,
            "loss_argmin_alpha": float(alpha[i_loss]),
            "kl_argmin_alpha": float(alpha[i_kl]),
            "temperature": cs.temperature,
            "batch_size": cs.batch_size,
            "n_batches": cs.n_batches,
        }
    )
    return fig, data


@register(
    "cosine_gradient",
    "Gradient magnitude ||∂cos(u, w)/∂u|| against ||u|| for image rows shifted along their mean",
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
    ok = (norm > 0) & (grad > 0)
    if ok.sum() < 2:
        raise FigureSkipped("fewer than 2 gradient samples with a positive norm and gradient")
    fig, axes, data = new_figure(
        inp, "Far from the origin, a small move changes the cosine less", height=4.0, width=6.6
    )
    ax = axes[0, 0]
    points = ax.scatter(norm[ok], grad[ok], c=alpha[ok], cmap=SEQUENTIAL_CMAP, s=7, alpha=0.7, linewidths=0)
    # the formula sqrt(1 - cos²)/||u|| at the median angle of the samples: a line of slope −1
    sine = float(np.median(np.sqrt(np.clip(1 - cos[ok] ** 2, 0, None))))
    xs = np.geomspace(norm[ok].min(), norm[ok].max(), 50)
    ax.plot(xs, sine / xs, color=REFERENCE, linestyle="--", linewidth=1.2,
            label=f"sqrt(1 − cos²)/||u|| at the median angle (sin = {sine:.3f})")  # fmt: skip
    log_axis(ax, "x")
    log_axis(ax, "y")
    ax.set(xlabel="||u|| (embedding units)", ylabel="||∂cos(u, w)/∂u|| (1 / embedding units)")
    ax.set_title(f"log-log slope {cg.loglog_slope:.3f} (−1 at a fixed angle)")
    fig.colorbar(points, ax=ax, label="shift α of u = x − α·m_img")
    ax.legend(loc="upper right", fontsize=7)
    data.update(
        {
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
    subtitle = "" if gap is None else f" (l2 centroid distance {gap.l2_centroid_distance:.3f})"
    fig, axes, data = new_figure(inp, "The modality gap in two dimensions" + subtitle, height=4.4, width=6.4, legend_strip=1)
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
