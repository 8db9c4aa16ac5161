"""`clipgeo demo`: the main job end to end on built-in data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import app


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("data/demo"), "--out", help="Folder for everything the demo writes."),
    n_train: int = typer.Option(6000, "--shapes", help="Captioned shapes to train on."),
    n_eval: int = typer.Option(1500, "--eval-shapes", help="Fresh shapes embedded and analyzed."),
    epochs: int = typer.Option(12, "--epochs", help="Training epochs of the tiny CLIP."),
    seed: int = typer.Option(0, "--seed"),
    figures_dir: Optional[Path] = typer.Option(None, "--figures-dir", help="Also copy the PNG figures here."),
    realdata: Optional[Path] = typer.Option(None, "--realdata", help="Folder of real embeddings (default ../shared/realdata if present)."),
) -> None:
    """Shapes -> train a tiny CLIP -> extract (trained and untrained) -> analyze -> figures -> report."""
    from ..demo import DemoConfig, run_demo
    from ..errors import InputError

    if min(n_train, n_eval, epochs) < 1:
        raise InputError("--shapes, --eval-shapes and --epochs must be at least 1")
    report = run_demo(DemoConfig(out=out, n_train=n_train, n_eval=n_eval, epochs=epochs, seed=seed,
                                 figures_dir=figures_dir, realdata=realdata))
    typer.echo(f"report: {report}")
