"""Run every analyzer on an embedding set and write, or read back, a report directory.

:func:`analyze` takes an :class:`~clipgeo.store.EmbeddingSet` (or anything with its attributes) and an
:class:`AnalyzeConfig`, runs each SPEC measurement the data allows (the others are listed in
``Report.skipped`` with the reason) and returns a :class:`Report`.  :meth:`Report.write` produces the output
directory that ``clipgeo figures`` reads, and :func:`read_report` rebuilds the :class:`Report` from it: every
number and array a figure needs is there, so nothing is computed twice.

====================  ================================================================  ==================
module                holds                                                             imports
====================  ================================================================  ==================
``_config``           :class:`AnalyzeConfig` (the CLI reads its defaults)               standard library
``_names``            every file name, table column and report.json key                 nothing
``_paper``            :data:`PAPER`: the paper's values, for report.md and the demo     nothing
``_result``           :class:`Report`                                                   analyzers, _write
``_analyze``          :func:`analyze`                                                   analyzers, synthetic
``_write``            the writer (report.json, the tables) -- computes nothing          _names, _markdown, _io
``_markdown``         the text of report.md                                             _paper
``_read``             :func:`read_report`, the inverse of ``_write``                    _names, _rebuild, analyzers
``_rebuild``          result objects from JSON summaries + table columns (any reader)   numpy
``_beyond``           the SPEC §12 analyses: run, report.json keys, tables, report.md   analyzers, _rebuild
``_compare``          :func:`compare_reports` (``clipgeo compare-stores``)              _beyond, plotting
``_html``             report.html: the self-contained page, one analysis or side by side  jinja2, markdown-it
====================  ================================================================  ==================

The files (names in :mod:`clipgeo.report._names`): ``report.json``, ``report.md``, ``features.csv``,
``rows_{image,text}.csv``, ``covariance_{image,text}.npy``, ``centroid_shift.csv``,
``cosine_gradient.csv``, ``thin_shell_theory.csv``.

Names are resolved lazily: ``from clipgeo.report import AnalyzeConfig`` imports neither numpy nor the analyzers.
"""

from __future__ import annotations

from clipgeo._lazy import lazy_exports

_EXPORTS = {
    "AnalyzeConfig": "._config",
    "CONFORMITY_METHODS": "._config",
    "PAPER": "._paper",
    "REPORT_JSON": "._names",
    "REPORT_MD": "._names",
    "REPORT_HTML": "._names",
    "OUTPUT_FILES": "._names",
    "PAPER_MODEL": "._paper",
    "PaperValue": "._paper",
    "Report": "._result",
    "analyze": "._analyze",
    "read_report": "._read",
    "write_report": "._write",
    "render_markdown": "._markdown",
    "render_html": "._html",
    "write_html": "._html",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
