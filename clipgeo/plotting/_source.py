"""Where figures get their numbers: a store (analyzed here) or a ``clipgeo analyze`` output directory.

A report directory is read back by :func:`clipgeo.report.read_report` (the reader beside the writer, which
owns the file format), so the figures are drawn from exactly what the analysis wrote and nothing is computed
twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ._registry import FigureInput


def read_report(directory: str | Path) -> FigureInput:
    """A ``clipgeo analyze`` output directory as figure input (see :func:`clipgeo.report.read_report`).

    Raises
    ------
    InputError
        No ``report.json``, or one that is not a clipgeo report.
    """
    from ..report import read_report as read

    report = read(directory)
    return FigureInput(report=report, theory=report.thin_shell_theory, origin=str(Path(directory)))


def load_source(source: Any, *, features: list[int] | tuple[int, ...] | None = None) -> FigureInput:
    """The analyzer results behind the figures, from whatever the user has.

    Parameters
    ----------
    source : path, Report, EmbeddingSet or FigureInput
        A store directory (read and analyzed with :func:`clipgeo.report.analyze`),
        a ``clipgeo analyze`` output directory or its ``report.json`` (read back,
        nothing recomputed), a :class:`~clipgeo.report.Report`, or an embedding set.
    features : sequence of int, optional
        Features whose raw values an analysis run here keeps for the figures (``AnalyzeConfig.features``).

    Raises
    ------
    InputError, StoreError
        A missing path, a directory that is neither, an empty store.
    """
    from ..report import Report, analyze

    if isinstance(source, FigureInput):
        return source
    if isinstance(source, Report):
        return FigureInput(report=source, origin="Report")
    if hasattr(source, "image") and hasattr(source, "text"):
        return FigureInput(report=analyze(source, features=features), origin=repr(source))
    if not isinstance(source, (str, Path)):
        raise InputError(f"cannot draw figures from a {type(source).__name__}; give a store or report directory")
    from ..report import REPORT_JSON
    from ..store import read_store, status

    path = Path(source)
    if not path.exists():
        raise InputError(f"{path} does not exist; give a store directory or a `clipgeo analyze` output directory")
    if path.is_file():
        if path.name == REPORT_JSON:
            return read_report(path.parent)
        raise InputError(f"{path} is a file; give a store directory or a `clipgeo analyze` output directory")
    if (path / REPORT_JSON).is_file():
        return read_report(path)
    if status(path).exists:
        return FigureInput(report=analyze(read_store(path), features=features), origin=str(path))
    raise InputError(
        f"{path} is neither a store (no manifest.json) nor a report (no report.json); "
        "give a store directory or a `clipgeo analyze` output directory"
    )
