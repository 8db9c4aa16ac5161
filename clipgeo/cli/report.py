"""`clipgeo report`: report.html from one analysis directory, or several side by side, without recomputing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ._app import app, warn
from ._options import defaults, flag_errors


def _write_html_defaults() -> dict:
    from ..report._html import write_html

    return defaults(write_html)


D = _write_html_defaults()


@app.command("report")
def report_cmd(
    analyses: list[Path] = typer.Argument(
        ..., help="One `clipgeo analyze` output directory, or several for a side-by-side page (e.g. trained untrained)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Directory for report.html (default: beside report.md; required for several analyses)."
    ),
    label: Optional[list[str]] = typer.Option(
        None, "--label", help="Column heading of each analysis, in order (repeat; default: the directory names)."
    ),
    figures: Optional[list[Path]] = typer.Option(
        None,
        "--figures",
        help="A `clipgeo figures --out` folder per analysis, in order (repeat; '-': none): its PNGs are embedded, the rest drawn.",
    ),
    only: Optional[list[str]] = typer.Option(
        None, "--only", help="Embed only these figures (repeat or comma list; see `clipgeo figures --list`)."
    ),
    no_figures: bool = typer.Option(False, "--no-figures", help="Leave the figures out (numbers and text only)."),
    dpi: int = typer.Option(D["dpi"], "--dpi", help="Resolution of the figures drawn for the page."),
    title: Optional[str] = typer.Option(None, "--title", help="Page title (default: the model, or the labels)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write a self-contained report.html (figures embedded, opens offline) from analysis directories."""
    from .._progress import progress, quiet_scope
    from ..report._html import write_html

    if figures and len(figures) != len(analyses):
        raise InputError(
            f"{len(figures)} --figures folder(s) for {len(analyses)} analyses; give one per analysis, in order"
        )
    aliases = {"labels": "label", "figures_dirs": "figures", "figures": "only"}
    with quiet_scope(quiet), flag_errors(report_cmd, aliases):
        run = write_html(
            analyses,
            out,
            labels=label or None,
            figures_dirs=[None if str(f) == "-" else f for f in figures] if figures else None,
            figures=None if no_figures else (only or None),
            draw=not no_figures,
            dpi=dpi,
            title=title,
            progress=lambda names: progress(names, desc="figures", unit="fig"),
        )
    for message in run.warnings:
        warn(message)
    counts = ", ".join(f"{k}: {v}" for k, v in run.figures.items())
    typer.echo(f"wrote {run.path} ({counts} figure(s) embedded)")
