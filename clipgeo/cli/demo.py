"""`clipgeo demo`: the main job end to end on built-in data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..demo import DemoConfig
from ._app import app
from ._options import defaults, flag_errors

D = defaults(DemoConfig)


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("data/demo"), "--out", help="Folder for everything the demo writes."),
    n_train: int = typer.Option(D["n_train"], "--shapes", help="Captioned shapes to train on."),
    n_eval: int = typer.Option(D["n_eval"], "--eval-shapes", help="Fresh shapes embedded and analyzed."),
    epochs: int = typer.Option(D["epochs"], "--epochs", help="Training epochs of the tiny CLIP."),
    seed: int = typer.Option(D["seed"], "--seed"),
    figures_dir: Optional[Path] = typer.Option(D["figures_dir"], "--figures-dir", help="Also copy the PNG figures here."),
    realdata: Optional[Path] = typer.Option(
        D["realdata"], "--realdata",
        help="Folder of real embedding dumps for an extra section (default: $CLIPGEO_REALDATA, else shared/realdata beside the checkout, if present).",
    ),  # fmt: skip
) -> None:
    """Shapes -> train a tiny CLIP -> extract (trained and untrained) -> analyze -> figures -> report."""
    from ..demo import run_demo
    from ..errors import InputError

    if min(n_train, n_eval, epochs) < 1:
        raise InputError("--shapes, --eval-shapes and --epochs must be at least 1")
    with flag_errors(demo_cmd):
        report = run_demo(DemoConfig(out=out, n_train=n_train, n_eval=n_eval, epochs=epochs, seed=seed,
                                     figures_dir=figures_dir, realdata=realdata))  # fmt: skip
    typer.echo(f"report: {report}")
    page = report.with_name("report.html")
    if page.is_file():
        typer.echo(f"report.html: {page}  (open it in a browser: both models side by side, figures embedded)")
