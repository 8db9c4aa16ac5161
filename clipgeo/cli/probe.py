"""``clipgeo probe``: linear-probe accuracy of trained runs on fresh captioned shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._app import app, echo_json


def _labels(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command("probe")
def probe_cmd(
    runs: Optional[list[Path]] = typer.Argument(None, help="RUN_DIRs written by `clipgeo train`."),
    labels: str = typer.Option("shape,color", "--labels", help="Comma list of shape, color (colour), size, position."),
    n: int = typer.Option(1000, "--n", help="Fresh shapes to probe on (75 % fit, 25 % held out)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the probe shapes and split [default: one no run trains on]."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Add the random-weights baseline of each architecture."),
    baseline_model: Optional[str] = typer.Option(None, "--baseline-model", help="Probe this architecture with random weights (no run needed)."),
    tower: Optional[str] = typer.Option(None, "--tower", help="image or text [default: the tower each objective trains]."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the rows (and provenance) to this JSON file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Held-out accuracy of a logistic-regression probe on frozen features of each run (and of random weights)."""
    import json

    from ..errors import InputError
    from ..provenance import provenance
    from ..train.probe import probe_runs

    if tower not in (None, "image", "text"):
        raise InputError(f"--tower {tower!r} is not known; use image or text")
    names = _labels(labels)
    if not names:
        raise InputError("--labels is empty; give e.g. shape,color")
    rows = probe_runs(
        [str(r) for r in runs or []], labels=names, n=n, seed=seed, baseline=baseline, baseline_model=baseline_model,
        tower=tower, device=device,
    )  # fmt: skip
    if out is not None:
        config = {"runs": [str(r) for r in runs or []], "labels": names, "n": n, "seed": seed, "tower": tower}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": rows, "provenance": provenance(config)}, indent=2, default=str) + "\n")
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
