"""One look for every clipgeo figure: colour-blind-safe palette, fonts, fixed modality colours.

Image rows are always drawn in :data:`IMAGE` (blue) and text rows in
:data:`TEXT` (vermillion), in every figure; other series (theory curves, loss
terms) use the remaining Okabe–Ito colours, never those two.  Heat maps use
the colour-blind-safe ``RdBu_r`` (diverging) and ``cividis`` (sequential).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

#: Okabe & Ito (2008) palette, safe for the common colour-vision deficiencies
OKABE_ITO = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
    "black": "#000000",
}

IMAGE = OKABE_ITO["blue"]
TEXT = OKABE_ITO["vermillion"]
#: modality -> colour; the same in every figure
MODALITY_COLORS = {"image": IMAGE, "text": TEXT}
#: colours for series that are not a modality (theory curves, loss terms), in order
SERIES = (OKABE_ITO["black"], OKABE_ITO["green"], OKABE_ITO["purple"], OKABE_ITO["orange"], OKABE_ITO["sky_blue"])
#: reference marks (thresholds, sqrt(tr C), y = x): dashed, in this colour
REFERENCE = "#333333"
DIVERGING_CMAP = "RdBu_r"
SEQUENTIAL_CMAP = "cividis"

#: default resolution of saved raster figures
DEFAULT_DPI = 150
#: width of a full-width figure, inches
WIDTH = 8.0
#: height of the caption strip under every figure, inches
CAPTION_HEIGHT = 0.32
#: height of the strip holding a legend shared by all panels, inches
LEGEND_HEIGHT = 0.3

RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "figure.titlesize": 11.0,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "axes.axisbelow": True,
    "lines.linewidth": 1.5,
    "lines.markersize": 4.0,
    "image.cmap": SEQUENTIAL_CMAP,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    # deterministic vector output: fixed SVG ids, embedded (not referenced) fonts
    "svg.hashsalt": "clipgeo",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "axes.unicode_minus": True,
}


@contextmanager
def style() -> Iterator[None]:
    """Apply the clipgeo rcParams (and a palette without the modality colours) inside a ``with`` block."""
    import matplotlib as mpl
    from cycler import cycler

    with mpl.rc_context({**RC, "axes.prop_cycle": cycler(color=list(SERIES))}):
        yield


def modality_color(modality: str) -> str:
    """The colour of ``"image"`` or ``"text"`` rows."""
    return MODALITY_COLORS[modality]
