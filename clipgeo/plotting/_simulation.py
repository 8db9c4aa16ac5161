"""The figure of ``clipgeo simulate thin-shell`` (SPEC §3 by sampling), drawn from the simulation's tables.

Not in the registry (registered figures are drawn from a store's analysis); built the registry's way:
no pyplot, the clipgeo style, a caption, and the plotted numbers returned for the JSON beside the image
(:func:`clipgeo.plotting.save_figure`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._draw import figure_frame
from ._style import REFERENCE, SERIES, WIDTH

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


def thin_shell_study_figure(iso: pd.DataFrame, aniso: pd.DataFrame, *, caption: str) -> tuple[Figure, dict[str, Any]]:
    """Isotropic norms ≈ sqrt(n) with O(1) spread; anisotropic centred norms ≈ sqrt(tr C).

    Parameters
    ----------
    iso : pandas.DataFrame
        :func:`clipgeo.synthetic.thin_shell_curve`: ``distribution, dim, mean_norm, std_norm, ...``.
    aniso : pandas.DataFrame
        :func:`clipgeo.simulate.anisotropic_shell_table`: ``dim, mean_centered_norm, sqrt_trace_cov, ...``.
    caption : str
        The line under the figure (what was sampled, how many, the seed).

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        ``title``, ``caption``, ``notes`` and the two tables as records (``isotropic``, ``anisotropic``).
    """
    fig, axes, data = figure_frame(caption, "Thin shells by sampling", ncols=3, height=3.8, width=1.5 * WIDTH)
    ax_mean, ax_std, ax_aniso = axes[0]
    for k, (dist, group) in enumerate(iso.groupby("distribution", sort=False)):
        ax_mean.plot(group["dim"], group["mean_norm"], marker="o", color=SERIES[k], label=dist)
        ax_std.plot(group["dim"], group["std_norm"], marker="o", color=SERIES[k], label=dist)
    dims = np.sort(iso["dim"].unique()).astype(np.float64)
    ax_mean.plot(dims, np.sqrt(dims), "--", color=REFERENCE, label="sqrt(n)")
    ax_mean.set(xscale="log", yscale="log", xlabel="dimension n", ylabel="mean ||x||", title="isotropic: mean norm ≈ sqrt(n)")
    ax_std.set(xscale="log", xlabel="dimension n", ylabel="std ||x||", ylim=(0, None), title="isotropic: spread stays O(1)")
    ax_aniso.plot(aniso["dim"], aniso["mean_centered_norm"], marker="o", color=SERIES[1], label="mean ||x − m||")
    ax_aniso.plot(aniso["dim"], aniso["sqrt_trace_cov"], "--", color=REFERENCE, label="sqrt(tr C)")
    ax_aniso.set(xscale="log", yscale="log", xlabel="dimension n", ylabel="norm", title="anisotropic: centred norm ≈ sqrt(tr C)")
    for ax in axes[0]:
        ax.legend()
    data.update(
        {
            "isotropic": iso.to_dict("records"),
            "anisotropic": aniso.to_dict("records"),
            "reference": {"dim": dims.astype(int), "sqrt_dim": np.sqrt(dims)},
        }
    )
    return fig, data
