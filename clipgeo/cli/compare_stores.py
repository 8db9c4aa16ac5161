"""``clipgeo compare-stores``: the headline numbers of several analysed stores in one table and one figure."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import app, warn


@app.command("compare-stores")
def compare_stores_cmd(
    reports: list[Path] = typer.Argument(
        ..., help="Analysis directories written by `clipgeo analyze STORE --out DIR`."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Directory for compare_stores.csv, compare_stores.md and compare_stores.png/.json."
    ),
    label: Optional[list[str]] = typer.Option(
        None, "--label", help="A name per directory, in order (default: the directory names)."
    ),
) -> None:
    """Gap, offset, thin shell, conformity, separability, RMG … of several models / checkpoints / data sets side by side."""
    from ..report._compare import compare_reports

    comparison = compare_reports(reports, labels=label or None)
    paths = comparison.write(out)
    typer.echo(comparison.markdown(), nl=False)
    typer.echo(f"wrote {paths['csv']}, {paths['md']}, {paths['png']} and {paths['json']}")
    if comparison.dims_differ:
        warn("the stores have different dimensions (different models): raw-space numbers are not on one scale")
