"""``clipgeo probe``: linear-probe accuracy of trained runs on fresh captioned shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..train.probe import probe_runs
from ._app import app, echo_json
from ._options import defaults, flag_errors

D = defaults(probe_runs)


def _labels(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command("probe")
def probe_cmd(
    runs: Optional[list[Path]] = typer.Argument(None, help="RUN_DIRs written by `clipgeo train`."),
    labels: str = typer.Option(",".join(D["labels"]), "--labels", help="Comma list of shape, color (colour), size, position."),
    n: int = typer.Option(D["n"], "--n", help="Fresh shapes to probe on (75 % fit, 25 % held out)."),
    seed: Optional[int] = typer.Option(D["seed"], "--seed", help="Seed of the probe shapes and split [default: one no run trains on]."),
    baseline: bool = typer.Option(D["baseline"], "--baseline/--no-baseline", help="Add the random-weights baseline of each architecture."),
    baseline_model: Optional[str] = typer.Option(D["baseline_model"], "--baseline-model", help="Probe this architecture with random weights (no run needed)."),
    tower: Optional[str] = typer.Option(D["tower"], "--tower", help="image or text [default: the tower each objective trains]."),
    device: str = typer.Option(D["device"], "--device", help="cpu, cuda, cuda:N, mps or auto."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the rows (and provenance) to this JSON file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Held-out accuracy of a logistic-regression probe on frozen features of each run (and of random weights)."""
    from .._io import write_json
    from ..errors import InputError
    from ..provenance import provenance

    if tower not in (None, "image", "text"):
        raise InputError(f"--tower {tower!r} is not known; use image or text")
    names = _labels(labels)
    if not names:
        raise InputError("--labels is empty; give e.g. shape,color")
    with flag_errors(probe_cmd):
        rows = probe_runs(
            [str(r) for r in runs or []], labels=names, n=n, seed=seed, baseline=baseline, baseline_model=baseline_model,
            tower=tower, device=device,
        )  # fmt: skip
    if out is not None:
        config = {"runs": [str(r) for r in runs or []], "labels": names, "n": n, "seed": seed, "tower": tower}
        write_json(out, {"rows": rows, "provenance": provenance(config)})
    if as_json:
        echo_json(rows)
        return
    width = max(len(r["run"]) for r in rows)
    header = f"{'run':<{width}}  {'objective':<17} {'tower':<5}  " + "  ".join(f"{k:>14}" for k in names)
    lines = [header]
    for r in rows:
        cells = "  ".join(f"{r[k]:>6.3f} ({r[k + '_chance']:.2f})" for k in names)
        lines.append(f"{r['run']:<{width}}  {r['objective']:<17} {r['tower']:<5}  {cells}")
    typer.echo("\n".join(lines))
    typer.echo("held-out accuracy (chance: majority class)")
