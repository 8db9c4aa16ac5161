"""The Typer application that every subcommand module registers on."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

app = typer.Typer(
    name="clipgeo",
    help="Measure the geometry of CLIP embedding spaces: extract, analyze, plot, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def echo_json(obj: Any) -> None:
    """Print an object as indented JSON on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def warn(message: str) -> None:
    """One warning line on stderr."""
    typer.echo(f"warning: {message}", err=True)


@app.callback()
def _root() -> None:
    """Measure the geometry of CLIP embedding spaces: extract, analyze, plot, train."""
