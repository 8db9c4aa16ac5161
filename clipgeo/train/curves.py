"""The curves of a training run: loss, retrieval and the geometry against steps.

Reads ``RUN_DIR/metrics.csv`` (written by the trainer) and draws one panel per
quantity — the figure only plots logged numbers, it recomputes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_curves"]


def plot_curves(metrics_csv: str | Path, out_png: str | Path, pair_names: Sequence[str] = ("image", "text")) -> Path:
    """Draw ``metrics.csv`` into a PNG of 8 panels and return its path.

    Panels: loss; objective scale (``logit_scale`` when logged); held-out
    recall@1 both ways with chance; alignment and uniformity; l2 centroid
    distance (modality gap); mean conformity; relative thickness of the
    centred-norm shell; offset ratio ``||m|| / ||σ||`` — the last three per
    modality.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    a, b = pair_names
    frame = pd.read_csv(metrics_csv)
    x = frame["step"]
    panels = [
        ("training loss", [("loss", "loss")]),
        ("logit scale", [("logit_scale", "logit_scale")]),
        ("held-out recall@1", [(f"r1_{a}_to_{b}", f"{a}→{b}"), (f"r1_{b}_to_{a}", f"{b}→{a}"), ("chance_r1", "chance")]),
        ("alignment / uniformity", [("alignment", "alignment"), (f"uniformity_{a}", f"uniformity {a}"),
                                    (f"uniformity_{b}", f"uniformity {b}")]),
        ("modality gap: l2 centroid distance", [("l2_centroid_distance", "‖mean(u_a) − mean(u_b)‖")]),
        ("mean conformity", [(f"conformity_{a}", a), (f"conformity_{b}", b)]),
        ("relative thickness (std/mean centred norm)", [(f"relative_thickness_{a}", a), (f"relative_thickness_{b}", b)]),
        ("offset ratio ‖m‖/‖σ‖", [(f"offset_ratio_{a}", a), (f"offset_ratio_{b}", b)]),
    ]  # fmt: skip
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5), constrained_layout=True)
    for ax, (title, series) in zip(axes.flat, panels, strict=True):
        drawn = False
        for column, label in series:
            if column not in frame or frame[column].isna().all():
                continue
            y = pd.to_numeric(frame[column], errors="coerce")
            style = {"linestyle": "--", "color": "grey"} if column == "chance_r1" else {"marker": "." if len(x) < 40 else None}
            ax.plot(x, y, label=label, **style)
            drawn = True
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if drawn and len(series) > 1:
            ax.legend(fontsize=8)
        if not drawn:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.suptitle(f"training curves ({Path(metrics_csv).parent.name})")
    out_png = Path(out_png)
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png
