"""Theory figures (SPEC §3): thin shells of isotropic clouds, and the 2-D picture of two offset ellipses."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._draw import new_figure
from ._registry import FigureInput, register
from ._style import MODALITY_COLORS, REFERENCE, SERIES

_DIST_STYLE = {
    "gaussian": (SERIES[0], "o", "Gaussian"),
    "laplace": (SERIES[1], "s", "Laplace (log-concave)"),
    "uniform": (SERIES[2], "^", "uniform (log-concave)"),
}

#: the two planted ellipses of the 2-D illustration (means, axis variances, tilt in degrees)
ELLIPSES = {
    "image": {"mean": (3.0, 1.0), "variances": (0.45, 0.05), "angle_deg": 25.0},
    "text": {"mean": (1.2, 2.8), "variances": (0.35, 0.06), "angle_deg": -35.0},
}
ELLIPSE_POINTS = 300


@register(
    "thin_shell_theory",
    "Norms of isotropic Gaussian and log-concave samples for n = 2 … 512: mean ≈ sqrt(n), spread O(1)",
    "§3",
)
def thin_shell_theory(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    table = inp.thin_shell_theory()
    fig, axes, data = new_figure(
        inp,
        "Thin shell: the norm of an isotropic vector concentrates at sqrt(n)",
        ncols=2,
        notes=["simulation (clipgeo.synthetic.thin_shell_curve), independent of the store"],
    )
    ax_mean, ax_std = axes[0]
    series = {}
    for dist, group in table.groupby("distribution", sort=False):
        group = group.sort_values("dim")
        color, marker, label = _DIST_STYLE.get(str(dist), (SERIES[3], "D", str(dist)))
        dims = group["dim"].to_numpy(dtype=np.float64)
        mean, std = group["mean_norm"].to_numpy(np.float64), group["std_norm"].to_numpy(np.float64)
        ax_mean.plot(dims, mean, marker=marker, color=color, label=label)
        ax_std.plot(dims, std, marker=marker, color=color, label=label)
        series[str(dist)] = {
            "dim": dims.astype(int),
            "mean_norm": mean,
            "std_norm": std,
            "relative_thickness": group["relative_thickness"].to_numpy(np.float64),
        }
    dims = np.sort(table["dim"].unique()).astype(np.float64)
    ax_mean.plot(dims, np.sqrt(dims), linestyle="--", color=REFERENCE, linewidth=1.0, label="sqrt(n)", zorder=0)
    ax_mean.set(xscale="log", yscale="log", xlabel="dimension n", ylabel="mean of ||x|| (units of σ)")
    ax_mean.set_xscale("log", base=2)
    ax_mean.set_title("mean norm grows like sqrt(n)")
    ax_mean.legend()
    ax_std.axhline(1 / np.sqrt(2), color=REFERENCE, linestyle=":", linewidth=1.0, label="Gaussian limit 1/sqrt(2)")
    ax_std.set_xscale("log", base=2)
    ax_std.set(xlabel="dimension n", ylabel="std of ||x|| (units of σ)", ylim=(0, None))
    ax_std.set_title("shell thickness stays O(1)")
    ax_std.legend()
    data.update(
        {
            "kind": "simulation",
            "series": series,
            "reference": {"dim": dims.astype(int), "sqrt_dim": np.sqrt(dims), "gaussian_std_limit": 1 / np.sqrt(2)},
        }
    )
    return fig, data


def _ellipse_cloud(spec: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from ..synthetic import sample_anisotropic

    theta = np.deg2rad(spec["angle_deg"])
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    variances = np.asarray(spec["variances"], dtype=np.float64)
    mean = np.asarray(spec["mean"], dtype=np.float64)
    points = sample_anisotropic(ELLIPSE_POINTS, variances, mean=mean, rotation=rot, seed=seed)
    cov = rot @ np.diag(variances) @ rot.T
    return points, mean, cov


@register(
    "ellipse_2d",
    "2-D illustration: two offset, tilted ellipses and their images on the unit circle after normalisation",
    "§3–6",
)
def ellipse_2d(inp: FigureInput) -> tuple[Any, dict[str, Any]]:
    from matplotlib.patches import Ellipse

    fig, axes, data = new_figure(
        inp,
        "Two offset, tilted ellipses; normalising maps each onto an arc",
        height=4.6,
        width=6.8,
        notes=["illustration drawn from clipgeo.synthetic.sample_anisotropic, independent of the store"],
    )
    ax = axes[0, 0]
    circle = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(circle), np.sin(circle), color=REFERENCE, linewidth=1.0, label="unit circle")
    out: dict[str, Any] = {}
    for k, (m, spec) in enumerate(ELLIPSES.items()):
        color = MODALITY_COLORS[m]
        points, mean, cov = _ellipse_cloud(spec, seed=k)
        unit = points / np.linalg.norm(points, axis=1, keepdims=True)
        ax.scatter(points[:, 0], points[:, 1], s=6, color=color, alpha=0.45, linewidths=0, label=f"{m} rows")
        ax.scatter(unit[:, 0], unit[:, 1], s=9, color=color, marker="o", alpha=0.6, linewidths=0)
        values, vectors = np.linalg.eigh(cov)
        angle = float(np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1])))
        for level in (1.0, 2.0):
            ax.add_patch(
                Ellipse(
                    tuple(mean),
                    2 * level * np.sqrt(values[-1]),
                    2 * level * np.sqrt(values[0]),
                    angle=angle,
                    fill=False,
                    edgecolor=color,
                    linewidth=1.2 if level == 1 else 0.8,
                    linestyle="-" if level == 1 else "--",
                )
            )
        ax.annotate("", xy=tuple(mean), xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": color, "linewidth": 1.2})
        ax.plot(*mean, marker="x", color="black", markersize=7)
        normal = np.array([-mean[1], mean[0]]) / np.linalg.norm(mean)
        side = 1.0 if m == "text" else -1.0
        ax.text(*(0.6 * mean + side * 0.3 * normal), f"m_{m}", color=color, fontsize=8.5, ha="center", va="center")
        out[m] = {
            "mean": mean,
            "covariance": cov,
            "axis_std": np.sqrt(values[::-1]),
            "angle_deg": angle,
            "points": points,
            "unit_points": unit,
            "arc_angles_deg": np.degrees(np.arctan2(unit[:, 1], unit[:, 0])),
        }
    ax.plot([0], [0], marker="+", color="black", markersize=9)
    ax.text(0.08, -0.25, "origin", fontsize=8)
    ax.set_aspect("equal")
    ax.set(xlabel="feature 1 (embedding units)", ylabel="feature 2 (embedding units)", xlim=(-1.3, 4.6), ylim=(-1.3, 4.3))
    ax.plot([], [], marker="o", linestyle="none", color="#777777", markersize=3, label="rows after x/||x||")
    ax.legend(loc="upper right")
    data.update({"ellipses": out, "sigma_levels": [1.0, 2.0]})
    return fig, data
