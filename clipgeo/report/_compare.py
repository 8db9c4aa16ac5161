"""Headline numbers of several analysed stores side by side (``clipgeo compare-stores``, :func:`compare_reports`).

Reads only the ``report.json`` of each ``clipgeo analyze`` output directory: its ``headlines`` (the SPEC §12
headline numbers) and ``bootstrap.intervals``.  Stores of different dimension (different models) are allowed
and flagged, since their numbers are not on one scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ._beyond import HEADLINES

COMPARE_CSV = "compare_stores.csv"
COMPARE_MD = "compare_stores.md"
COMPARE_FIGURE = "compare_stores"


@dataclass
class ReportComparison:
    """The headline numbers of several reports.

    Attributes
    ----------
    labels : list of str
        One per analysis directory (its name; made unique with the parent's name when needed).
    directories, models : dict of str to str
    dims, n_image, n_text : dict of str to int
    dims_differ : bool
        True when the reports come from embeddings of different dimension (different models).
    headlines : list of str
        Report.json paths of the headline numbers, in SPEC order.
    values : dict of str to dict of str to (value, low, high)
        ``values[label][headline]``; ``low`` / ``high`` are None without a bootstrap.
    """

    labels: list[str]
    directories: dict[str, str]
    models: dict[str, str]
    dims: dict[str, int]
    n_image: dict[str, int]
    n_text: dict[str, int]
    headlines: list[str]
    values: dict[str, dict[str, tuple[float | None, float | None, float | None]]] = field(default_factory=dict)

    @property
    def dims_differ(self) -> bool:
        return len(set(self.dims.values())) > 1

    def value(self, label: str, headline: str) -> float | None:
        return self.values.get(label, {}).get(headline, (None, None, None))[0]

    def interval(self, label: str, headline: str) -> tuple[float, float] | None:
        _, low, high = self.values.get(label, {}).get(headline, (None, None, None))
        return None if low is None or high is None else (float(low), float(high))

    def to_frame(self):
        """Long table: one row per (store, headline) with ``value``, ``low``, ``high`` and the store's facts."""
        import pandas as pd

        rows = []
        for label in self.labels:
            for h in self.headlines:
                value, low, high = self.values[label].get(h, (None, None, None))
                rows.append(
                    {
                        "store": label,
                        "model": self.models[label],
                        "dim": self.dims[label],
                        "dim_differs": self.dims_differ,
                        "n_image": self.n_image[label],
                        "n_text": self.n_text[label],
                        "headline": h,
                        "value": value,
                        "low": low,
                        "high": high,
                    }
                )
        return pd.DataFrame(rows)

    def markdown(self) -> str:
        """One Markdown table: a row per headline, a column per store, cells ``value [low, high]``."""

        def cell(label: str, h: str) -> str:
            value, low, high = self.values[label].get(h, (None, None, None))
            if value is None:
                return "–"
            digits = HEADLINES.get(h, ("", 4))[1]
            text = f"{value:.{digits}f}"
            return text if low is None or high is None else f"{text} [{low:.{digits}f}, {high:.{digits}f}]"

        lines = ["| headline | " + " | ".join(self.labels) + " |", "|---|" + "---|" * len(self.labels)]
        lines.append("| model | " + " | ".join(self.models[s] for s in self.labels) + " |")
        flag = " ⚠ differs" if self.dims_differ else ""
        lines.append("| dimension | " + " | ".join(f"{self.dims[s]}{flag}" for s in self.labels) + " |")
        lines.append(
            "| image / text rows | " + " | ".join(f"{self.n_image[s]} / {self.n_text[s]}" for s in self.labels) + " |"
        )
        for h in self.headlines:
            label = HEADLINES.get(h, (h, 4))[0]
            lines.append(f"| {label} | " + " | ".join(cell(s, h) for s in self.labels) + " |")
        out = "\n".join(lines) + "\n"
        if self.dims_differ:
            out += (
                "\n⚠ The stores have different dimensions "
                f"({', '.join(f'{s}: {self.dims[s]}' for s in self.labels)}): they come from different models, so "
                "raw-space numbers are not on one scale.\n"
            )
        return out

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write compare_stores.csv, compare_stores.md and the figure (PNG + JSON); returns the paths by kind."""
        from .._io import atomic_path, write_text
        from ..plotting._beyond import comparison_figure
        from ..plotting._render import save_figure
        from ..plotting._style import style
        from ..provenance import provenance

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} is a file; give a directory for the comparison (out_dir)")
        paths: dict[str, Path] = {}
        with atomic_path(out / COMPARE_CSV) as tmp:
            self.to_frame().to_csv(tmp, index=False, float_format="%.9g")
        paths["csv"] = out / COMPARE_CSV
        paths["md"] = write_text(out / COMPARE_MD, self.markdown())
        with style():
            fig, data = comparison_figure(self)
            files = save_figure(
                fig, data, out, COMPARE_FIGURE, provenance=provenance({"directories": self.directories})
            )
        paths["png"] = files[0]
        paths["json"] = next(p for p in files if p.suffix == ".json")
        return paths


def _read(directory: Path) -> dict[str, Any]:
    path = directory / "report.json"
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory; give analysis directories written by `clipgeo analyze`")
    if not path.is_file():
        hint = " (it is a store: run `clipgeo analyze` on it first)" if (directory / "manifest.json").is_file() else ""
        raise InputError(
            f"{directory} has no report.json{hint}; give directories written by `clipgeo analyze STORE --out DIR`"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InputError(f"{path} is not readable JSON; rerun `clipgeo analyze`") from None
    if not isinstance(data, dict) or "dim" not in data:
        raise InputError(f"{path} is not a clipgeo report (no dim); rerun `clipgeo analyze`")
    if "headlines" not in data:
        raise InputError(f"{path} has no headline numbers (written by an older clipgeo); rerun `clipgeo analyze`")
    return data


def compare_reports(directories: list[str | Path], labels: list[str] | None = None) -> ReportComparison:
    """Collect the headline numbers and intervals of several ``clipgeo analyze`` output directories.

    Parameters
    ----------
    directories : list of path
        At least one analysis directory (each holding report.json).
    labels : list of str, optional
        A name per directory (default: the directory names, made unique).

    Returns
    -------
    ReportComparison

    Raises
    ------
    InputError
        A path that is not an analysis directory (one line naming it), or labels of the wrong count.
    """
    dirs = [Path(d) for d in directories]
    if not dirs:
        raise InputError("no analysis directories given; pass one or more directories written by `clipgeo analyze`")
    reports = [_read(d) for d in dirs]
    if labels is None:
        labels = [d.name or str(d) for d in dirs]
        if len(set(labels)) < len(labels):
            labels = [f"{d.parent.name}/{d.name}" for d in dirs]
        if len(set(labels)) < len(labels):
            labels = [f"{label} ({i + 1})" for i, label in enumerate(labels)]
    elif len(labels) != len(dirs) or len(set(labels)) != len(labels):
        raise InputError(f"give one distinct label per directory: {len(labels)} label(s) for {len(dirs)} directories")
    present = {h for data in reports for h in data.get("headlines", {})}
    order = [h for h in HEADLINES if h in present] + sorted(present - set(HEADLINES))
    comparison = ReportComparison(
        labels=list(labels),
        directories={label: str(d) for label, d in zip(labels, dirs, strict=True)},
        models={label: str(data.get("model") or "unknown model") for label, data in zip(labels, reports, strict=True)},
        dims={label: int(data["dim"]) for label, data in zip(labels, reports, strict=True)},
        n_image={label: int(data.get("n_image") or 0) for label, data in zip(labels, reports, strict=True)},
        n_text={label: int(data.get("n_text") or 0) for label, data in zip(labels, reports, strict=True)},
        headlines=order,
    )
    for label, data in zip(labels, reports, strict=True):
        intervals = (data.get("bootstrap") or {}).get("intervals") or {}
        entry = {}
        for h, value in (data.get("headlines") or {}).items():
            iv = intervals.get(h) or {}
            entry[h] = (value, iv.get("low"), iv.get("high"))
        comparison.values[label] = entry
    return comparison
