"""Figures of the paper's claims (SPEC §10), drawn from analyzer results.

One function per figure, registered in :data:`FIGURES`; each takes the
analyzer results of one embedding set (a :class:`FigureInput` around a
:class:`clipgeo.report.Report`) and returns a matplotlib figure plus the dict
of the numbers it plots.  :func:`render_figures` draws them all from a store
or a ``clipgeo analyze`` output directory and saves each as PNG/PDF/SVG with a
JSON file of its numbers beside it, byte-for-byte reproducibly.

>>> from clipgeo.plotting import render_figures
>>> run = render_figures("my_store", "figures/")          # doctest: +SKIP
>>> fig, data = draw_figure("norms", "report_dir/")       # doctest: +SKIP
"""

# isort: off
# importing the figure modules registers their figures, in the order of SPEC §10
from . import _theory, _separability, _shells, _conformity, _shift, _beyond  # noqa: F401

# isort: on
from ._registry import FIGURES, FigureInput, FigureSkipped, FigureSpec, data_label, list_figures, register
from ._render import FORMATS, FigureRun, check_formats, draw_figure, render_figures, save_figure
from ._source import load_source, read_report
from ._style import DEFAULT_DPI, IMAGE, MODALITY_COLORS, OKABE_ITO, TEXT, style

__all__ = [
    "DEFAULT_DPI",
    "FIGURES",
    "FORMATS",
    "IMAGE",
    "MODALITY_COLORS",
    "OKABE_ITO",
    "TEXT",
    "FigureInput",
    "FigureRun",
    "FigureSkipped",
    "FigureSpec",
    "check_formats",
    "data_label",
    "draw_figure",
    "list_figures",
    "load_source",
    "read_report",
    "register",
    "render_figures",
    "save_figure",
    "style",
]
