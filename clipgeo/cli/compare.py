"""``clipgeo compare``: the geometry of several training runs side by side (one table, one figure)."""

from __future__ import annotations

from pathlib import Path

import typer

from ..train.compare import compare_runs
from ._app import app
from ._options import defaults, flag_errors

D = defaults(compare_runs)


@app.command("compare")
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="RUN_DIRs written by `clipgeo train` (same data, any objectives)."),
    out: Path = typer.Option(..., "--out", help="Directory for compare.csv, compare.md, compare.json and compare.png."),
    n: int = typer.Option(D["n"], "--n", help="Fresh shapes embedded as pairs for the geometry."),
    n_probe: int = typer.Option(D["n_probe"], "--n-probe", help="Fresh shapes for the linear probes."),
    seed: int = typer.Option(D["seed"], "--seed", help="Seed of the evaluation shapes, their views and the probe split."),
    labels: str = typer.Option(",".join(D["labels"]), "--labels", help="Probe labels: comma list of shape, color, size, position."),
    baseline: bool = typer.Option(D["baseline"], "--baseline/--no-baseline", help="Add random-weights rows."),
    device: str = typer.Option(D["device"], "--device", help="cpu, cuda, cuda:N, mps or auto."),
) -> None:
    """Gap, thin shell, offset, conformity and probe accuracy of each run in one table and one figure."""
    from ..train.compare import write_comparison

    names = [part.strip() for part in labels.split(",") if part.strip()]
    with flag_errors(compare_cmd):
        comparison = compare_runs(
            [str(r) for r in runs], n=n, n_probe=n_probe, seed=seed, labels=names, baseline=baseline, device=device
        )
        paths = write_comparison(comparison, out)
    typer.echo(comparison.markdown(), nl=False)
    typer.echo(f"wrote {paths['md']}, {paths['csv']}, {paths['json']} and {paths['png']}")
