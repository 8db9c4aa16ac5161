"""The curves of a training run: loss, retrieval and the geometry against steps.

The figure is :func:`clipgeo.plotting._training.plot_training_curves` (package style,
deterministic, ``curves.json`` beside the image); this name is kept for callers that pass
the image path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_curves"]


def plot_curves(metrics_csv: str | Path, out_png: str | Path, pair_names: Sequence[str] = ("image", "text")) -> Path:
    """Draw ``metrics.csv`` into ``out_png`` (with a JSON of the plotted numbers beside it); returns the PNG path."""
    from ..plotting._training import plot_training_curves

    out_png = Path(out_png)
    plot_training_curves(metrics_csv, out_png.parent, pair_names=pair_names, name=out_png.stem)
    return out_png
