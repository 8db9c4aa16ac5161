"""`clipgeo analyze`: every geometry measurement of a store -> report.json, report.md, tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import InputError
from ..report import AnalyzeConfig
from ..stream import StreamConfig, dask_client
from ..stream._engine import DEFAULT_WORKERS
from ._app import app, warn
from ._options import defaults, flag_errors

D = defaults(AnalyzeConfig)
#: the streamed analysis's own defaults: its sample (StreamConfig) and how long it waits for a --scheduler
STREAM = {**defaults(StreamConfig), "connect_timeout": defaults(dask_client)["timeout"]}


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


def _config(**values: Any) -> AnalyzeConfig:
    """``AnalyzeConfig(**values)``; a message that starts with a parameter's name shows it as the flag."""
    try:
        return AnalyzeConfig(**values)
    except InputError as exc:
        name, _, rest = str(exc).partition(" ")
        if name in values:
            raise InputError(f"--{name.replace('_', '-')} {rest}") from None
        raise


@app.command("analyze")
def analyze_cmd(
    store: str = typer.Argument(..., help="Store directory (written by `clipgeo extract` or `clipgeo import`), or an fsspec URL (streamed)."),
    out: Path = typer.Option(..., "--out", help="Directory for report.json, report.md and the tables."),
    allow_incomplete: bool = typer.Option(False, "--allow-incomplete", help="Analyze the finished shards of an unfinished store."),
    temperature: float = typer.Option(D["temperature"], "--temperature", help="τ of the centroid-shift contrastive loss."),
    alphas: Optional[str] = typer.Option(None, "--alphas", help="Centroid shifts: START:STOP:STEP or a comma list (default -1:1:0.1)."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", help="Pairs per batch of the centroid-shift loss."),
    conformity: str = typer.Option(D["conformity"], "--conformity", help="exact (pairwise sum, O(N² d)) or mean (same values via the unit mean, O(N d))."),
    max_rows_conformity: int = typer.Option(D["max_rows_conformity"], "--max-rows-conformity", help="Above this many rows, use the O(N d) conformity identity."),
    linear_cv: bool = typer.Option(D["linear_cv"], "--linear-cv/--no-linear-cv", help="Run the 5-fold cross-validated linear classifier."),
    seed: int = typer.Option(D["seed"], "--seed", help="Seed of the CV folds and of the sampled subsets."),
    bootstrap: int = typer.Option(
        D["bootstrap"], "--bootstrap", help="Bootstrap draws of the 95 % intervals of the headline numbers (0: off)."
    ),
    features: Optional[str] = typer.Option(
        None, "--features", help="Also keep the raw values of these features (0-based, e.g. 92,133) for `clipgeo figures --features`."
    ),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="BLAS/OpenMP threads (default: the libraries' own; 1 is faster on a busy machine)."
    ),
    streaming: Optional[bool] = typer.Option(
        None, "--streaming/--in-memory", help="Stream the store in bounded memory on Dask (default: when it would not fit comfortably in memory)."
    ),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Streaming on an existing Dask cluster: tcp://HOST:PORT of its scheduler."),
    workers: Optional[int] = typer.Option(None, "--workers", help=f"Streaming: worker processes of the local Dask cluster (default {DEFAULT_WORKERS})."),
    sample_size: int = typer.Option(STREAM["sample_size"], "--sample-size", help="Streaming: matched pairs sampled (seeded, uniform) for the analyses that need rows together."),
    connect_timeout: float = typer.Option(STREAM["connect_timeout"], "--connect-timeout", help="Streaming: seconds to wait for the --scheduler before giving up."),
    html: bool = typer.Option(True, "--html/--no-html", help="Also write report.html: one self-contained page with the figures (see `clipgeo report`)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Measure the double-ellipsoid geometry of a store and write a report."""
    from .._progress import quiet_scope
    from ..provenance import provenance
    from ..report import REPORT_JSON, REPORT_MD, analyze
    from ..store import read_store

    options: dict[str, Any] = dict(
        temperature=temperature,
        batch_size=batch_size,
        conformity=conformity,
        max_rows_conformity=max_rows_conformity,
        linear_cv=linear_cv,
        seed=seed,
        bootstrap=bootstrap,
    )
    if alphas is not None:
        options["alphas"] = _parse_alphas(alphas)
    if features is not None:
        options["features"] = features
    config = _config(**options)
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    from ..stream import streaming_needed

    if streaming is None:
        streaming, why = (True, "--scheduler given: streamed") if scheduler else streaming_needed(store, allow_incomplete=allow_incomplete)
    else:
        why = "streamed (--streaming)" if streaming else "in memory (--in-memory)"
    if streaming:
        from ..stream import analyze_store

        if sample_size < 2:
            raise InputError(f"--sample-size must be at least 2, got {sample_size}")
        record = {**config.to_dict(), "store": str(store), "allow_incomplete": allow_incomplete, "threads": threads,
                  "scheduler": scheduler, "workers": workers}
        with _thread_limit(threads), quiet_scope(quiet), flag_errors(analyze_cmd):
            report = analyze_store(store, out, config, scheduler=scheduler, workers=workers, allow_incomplete=allow_incomplete,
                                   connect_timeout=connect_timeout,
                                   stream=StreamConfig(sample_size=sample_size, seed=seed, n_extremes=config.n_extremes),
                                   provenance=provenance(record))
        files = {REPORT_JSON: Path(out) / REPORT_JSON, REPORT_MD: Path(out) / REPORT_MD}
        model_id = report.meta.get("model_id", report.meta.get("model"))
    else:
        if "://" in store:
            raise InputError(f"{store} is a URL; analyze it with --streaming")
        es = read_store(store, allow_incomplete=allow_incomplete)
        with _thread_limit(threads), quiet_scope(quiet):
            report = analyze(es, config)
        if allow_incomplete:
            from ..store import status

            state = status(store)
            if not state.complete:  # said at the top of report.md and report.html
                report.warnings.append(f"the store is incomplete ({state.reason}): only its finished shards were analyzed")
        record = {**report.config, "store": str(store), "allow_incomplete": allow_incomplete, "threads": threads}
        with flag_errors(analyze_cmd):
            files = report.write(out, provenance=provenance(record))
        model_id = es.meta.model_id

    lines = [f"analyzed {model_id}: {report.n_image} image, {report.n_text} text rows, {report.n_pairs} pairs, dim {report.dim}",
             f"  engine           {why}"]
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
    gm = None if report.beyond is None else report.beyond.gap_metrics
    if gm is not None:
        lines.append(f"  gap metrics      L2M {gm.l2m:.4f}, L2I {gm.l2i:.4f}, RMG {gm.rmg:.4f} (SPEC §12)")
    for name, reason in report.skipped.items():
        lines.append(f"  skipped {name}: {reason}")
    if html:
        from .._progress import progress
        from ..report import write_html

        with quiet_scope(quiet):
            page = write_html([out], reports=None if streaming else [report],
                              progress=lambda names: progress(names, desc="figures", unit="fig"))
        lines.append(f"wrote {files[REPORT_JSON]}, {files[REPORT_MD]}, {page.path} and tables in {out}")
    else:
        lines.append(f"wrote {files[REPORT_JSON]}, {files[REPORT_MD]} and tables in {out}")
    typer.echo("\n".join(lines))
    for message in report.warnings:
        warn(message)
