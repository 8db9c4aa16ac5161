"""`clipgeo analyze`: every geometry measurement of a store -> report.json, report.md, tables."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ._app import app, warn


def _parse_alphas(text: str) -> list[float]:
    """``"-1:1:0.1"`` (start:stop:step, stop included) or ``"-0.5,0,0.5"``."""
    import numpy as np

    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (float(p) for p in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            count = int(np.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 10) for i in range(count)]
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InputError(
            f"--alphas {text!r} is not a grid; use START:STOP:STEP with STEP > 0 (e.g. -1:1:0.1) or a list (e.g. -0.5,0,0.5)"
        ) from None


def _thread_limit(threads: int | None):
    """A context limiting BLAS and OpenMP thread pools to ``threads`` (no limit when None)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)


@app.command("analyze")
def analyze_cmd(
    store: Path = typer.Argument(..., help="Store directory (written by `clipgeo extract` or `clipgeo import`)."),
    out: Path = typer.Option(..., "--out", help="Directory for report.json, report.md and the tables."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Analyze the finished shards of an unfinished store."),
    temperature: float = typer.Option(0.01, "--temperature", help="τ of the centroid-shift contrastive loss."),
    alphas: Optional[str] = typer.Option(None, "--alphas", help="Centroid shifts: START:STOP:STEP or a comma list (default -1:1:0.1)."),
    batch_size: int = typer.Option(1024, "--batch-size", help="Pairs per batch of the centroid-shift loss."),
    conformity: str = typer.Option("exact", "--conformity", help="exact (pairwise sum, O(N² d)) or mean (same values via the unit mean, O(N d))."),
    max_rows_conformity: int = typer.Option(50_000, "--max-rows-conformity", help="Above this many rows, use the O(N d) conformity identity."),
    linear_cv: bool = typer.Option(True, "--linear-cv/--no-linear-cv", help="Run the 5-fold cross-validated linear classifier."),
    seed: int = typer.Option(0, "--seed", help="Seed of the CV folds and of the sampled subsets."),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="BLAS/OpenMP threads (default: the libraries' own; 1 is faster on a busy machine)."
    ),
) -> None:
    """Measure the double-ellipsoid geometry of a store and write a report."""
    from ..provenance import provenance
    from ..report import analyze
    from ..store import read_store

    if conformity not in ("exact", "mean"):
        raise InputError(f"--conformity {conformity!r} is not known; use exact or mean")
    if not temperature > 0:
        raise InputError(f"--temperature must be positive, got {temperature}")
    if batch_size < 2:
        raise InputError(f"--batch-size must be at least 2, got {batch_size}")
    if max_rows_conformity < 2:
        raise InputError(f"--max-rows-conformity must be at least 2, got {max_rows_conformity}")
    options = dict(
        temperature=temperature,
        batch_size=batch_size,
        conformity=conformity,
        max_rows_conformity=max_rows_conformity,
        linear_cv=linear_cv,
        seed=seed,
    )
    if alphas is not None:
        options["alphas"] = _parse_alphas(alphas)
        if not options["alphas"]:
            raise InputError("--alphas is empty; give at least one shift, e.g. -1:1:0.1")

    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    es = read_store(store, allow_incomplete=allow_incomplete)
    with _thread_limit(threads):
        report = analyze(es, **options)
    config = {**report.config, "store": str(store), "allow_incomplete": allow_incomplete, "threads": threads}
    report.write(out, provenance=provenance(config))

    lines = [f"analyzed {es.meta.model_id}: {report.n_image} image, {report.n_text} text rows, {report.n_pairs} pairs, dim {report.dim}"]
    gap, sep, cs = report.modality_gap, report.separability, report.centroid_shift
    if gap is not None:
        lines.append(f"  modality gap     l2 centroid distance {gap.l2_centroid_distance:.4f}, raw {gap.raw_centroid_distance:.4g}")
    if sep is not None:
        perfect = sep.separating_features(1.0)
        best = int(sep.ranking[0])
        lines.append(
            f"  separability     {len(perfect)} feature(s) at 100 %; best feature {best} "
            f"({100 * sep.threshold_accuracy[best]:.1f} %)"
        )
    for m, res in report.thin_shell.items():
        lines.append(
            f"  thin shell {m:<5} centred norm {res.mean_centered_norm:.4g} ± {res.std_centered_norm:.2g} "
            f"vs sqrt(tr C) {res.sqrt_trace_cov:.4g}"
        )
    for m, res in report.conformity.items():
        lines.append(f"  conformity {m:<5} r = {res.pearson:.5f}, mean {res.mean:.4f}")
    if cs is not None:
        lines.append(f"  centroid shift   loss lowest at α = {cs.loss_argmin:.2g}, conformity KL lowest at α = {cs.kl_argmin:.2g}")
    for name, reason in report.skipped.items():
        lines.append(f"  skipped {name}: {reason}")
    lines.append(f"wrote {out / 'report.json'}, {out / 'report.md'} and tables in {out}")
    typer.echo("\n".join(lines))
    for message in report.warnings:
        warn(message)
