"""`clipgeo figures`: draw the paper's figures (SPEC §10) from a store or a `clipgeo analyze` output."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ._app import app
from ._options import flag_errors


@app.command("figures")
def figures_cmd(
    source: Optional[Path] = typer.Argument(
        None, help="A store directory (analyzed first) or a `clipgeo analyze` output directory (read, not recomputed)."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for the figures and their JSON files."),
    only: Optional[list[str]] = typer.Option(
        None, "--only", help="Draw only these figures (repeat the option or give a comma list); see --list."
    ),
    formats: Optional[str] = typer.Option(
        None, "--format", help="Image formats, comma-separated: png, pdf, svg (default png)."
    ),
    dpi: Optional[int] = typer.Option(None, "--dpi", help="Resolution of the raster (png) output, dots per inch (default: clipgeo.plotting.DEFAULT_DPI)."),
    list_: bool = typer.Option(False, "--list", help="Print the figure names with one-line descriptions and exit."),
    features: Optional[str] = typer.Option(
        None,
        "--features",
        help="Features (0-based, comma-separated, e.g. 92,133) the feature figures show instead of the top-ranked ones.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Draw one figure per claim of the paper, each with a JSON file of the numbers it plots."""
    from ..plotting import list_figures, render_figures

    if list_:
        rows = list_figures()
        width = max(len(name) for name, _ in rows)
        typer.echo("\n".join(f"{name:<{width}}  {text}" for name, text in rows))
        return
    if source is None:
        raise InputError("give SOURCE: a store directory or a `clipgeo analyze` output directory (or use --list)")
    if out is None:
        raise InputError("give --out DIR, the directory for the figures")
    from .._progress import quiet_scope

    with quiet_scope(quiet), flag_errors(figures_cmd, aliases={"formats": "format"}):
        run = render_figures(source, out, only=only, formats=formats, dpi=dpi, features=features)
    for name, files in run.written.items():
        typer.echo(f"  {name:<22} " + " ".join(p.name for p in files))
    for name, reason in run.skipped.items():
        typer.echo(f"  skipped {name}: {reason}")
    typer.echo(f"wrote {len(run.written)} figure(s) to {out}" + (f", skipped {len(run.skipped)}" if run.skipped else ""))
