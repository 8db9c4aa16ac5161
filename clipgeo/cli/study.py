"""``clipgeo study``: a grid of short training runs that says which ingredient keeps the double ellipsoid."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ..train.study import study
from ._app import app
from ._options import defaults, flag_errors

D = defaults(study)


@app.command("study")
def study_command(
    out: Path = typer.Option(Path(D["out"]), "--out", help="Folder for study.csv, study.md, study.json, study_figure.png and runs/."),
    preset: str = typer.Option(D["config"], "--preset", help="Grid and run size: tiny (seconds), small (≤ 20 min on 2 cores), full (~1 h)."),
    temperature: Optional[list[str]] = typer.Option(
        None, "--temperature", help="Replace the grid's temperatures: 'learnable' (from 1/0.07) or a fixed value > 0; repeatable."
    ),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds of every temperature on the plain data [default: the preset's]."),
    ingredient: Optional[list[str]] = typer.Option(
        None, "--ingredient", help="Ingredients tried alone: asymmetry, long-tail, centred, or none; repeatable [default: all]."
    ),
    only: Optional[list[str]] = typer.Option(None, "--only", help="Keep the runs whose name contains this text; repeatable."),
    jobs: Optional[int] = typer.Option(None, "--jobs", help="Runs trained at the same time (one process each, one thread each)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """Train the study's grid (temperature, information asymmetry, long tail, init) and write its table, figure and finding."""
    from ..train import study as st

    with flag_errors(study_command):
        config = st.preset(preset)
        if temperature or seeds is not None or ingredient:
            config = _regrid(config, temperature, seeds, ingredient)
        if only:
            kept = tuple(s for s in config.settings if any(part in s.run_name for part in only))
            if not kept:
                raise InputError(f"the study grid is empty: no run name contains {', '.join(map(repr, only))}; "
                                 "see the run names with --preset tiny, or drop --only")  # fmt: skip
            config = replace(config, settings=kept)
        if jobs is not None:
            config = replace(config, jobs=jobs)
        result = st.study(config, out, progress=not quiet)
    typer.echo(result.finding)
    paths = result.paths
    typer.echo(f"wrote {paths['markdown']}, {paths['csv']}, {paths['json']} and {paths['figure']} in {result.seconds / 60:.1f} min")


def _temperature(text: str) -> float | None:
    if text.strip().lower() == "learnable":
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"temperature {text!r} is neither 'learnable' nor a number; pass e.g. 0.01") from None
    if not value > 0 or value == float("inf"):
        raise InputError(f"temperature must be a finite number > 0, got {text}; pass e.g. 0.01 or 'learnable'")
    return value


def _regrid(config, temperature, seeds, ingredient):
    from ..train import study as st

    base = config.settings
    temps = [_temperature(t) for t in temperature] if temperature else list(dict.fromkeys(
        s.temperature for s in base if s.data_label == "plain" and s.init == "random"))  # fmt: skip
    if seeds is not None and seeds < 1:
        raise InputError(f"seeds must be at least 1, got {seeds}")
    seed_list = range(seeds) if seeds is not None else sorted({s.seed for s in base if s.data_label == "plain"})
    names = [] if ingredient and [i.strip().lower() for i in ingredient] == ["none"] else list(ingredient or st.INGREDIENTS)
    # each ingredient at the preset's temperatures for ingredients that remain in the grid (else at all of them)
    tried = {s.temperature for s in base if s.data_label != "plain" or s.init != "random"}
    at = [t for t in temps if t in tried] or temps
    settings = st.grid(temperatures=temps, seeds=seed_list, ingredients=names, ingredient_temperatures=at)
    return replace(config, settings=settings)
