"""``analyze_store``: a streamed analysis of a store from its path to a written report directory."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from .._io import atomic_dir
from ..errors import InputError

#: in-memory analysis holds about this many float64 copies of every embedding (read, checked, paired, pooled)
IN_MEMORY_COPIES = 4
#: stream when the in-memory analysis would need more than this share of the available memory
MEMORY_SHARE = 0.5


def streaming_needed(path: str | os.PathLike, *, allow_incomplete: bool = False,
                     storage_options: dict[str, Any] | None = None) -> tuple[bool, str]:
    """Whether a store should be analysed by streaming, and why (one line for the CLI and report).

    A store behind a URL always streams; a local one streams when its rows × dim × 8 bytes ×
    ``IN_MEMORY_COPIES`` exceed ``MEMORY_SHARE`` of the memory available now.
    """
    import psutil

    from ..store._iter import open_store

    text = os.fspath(path)
    if "://" in text:
        return True, f"{text} is a URL: streamed"
    store = open_store(text, allow_incomplete=allow_incomplete, storage_options=storage_options)
    rows = sum(store.rows(m) for m in ("image", "text"))
    need = rows * store.meta.dim * 8 * IN_MEMORY_COPIES
    available = psutil.virtual_memory().available
    gib = 1 << 30
    if need > MEMORY_SHARE * available:
        return True, (f"in-memory analysis would need ~{need / gib:.1f} GiB of the {available / gib:.1f} GiB available: "
                      "streamed (--in-memory to force)")
    return False, f"fits in memory (~{need / gib:.2f} GiB of {available / gib:.1f} GiB available; --streaming to force)"


def analyze_store(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    config=None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    client=None,
    stream=None,
    allow_incomplete: bool = False,
    storage_options: dict[str, Any] | None = None,
    connect_timeout: float | None = None,
    processes: bool = True,
    provenance: dict[str, Any] | None = None,
    **options: Any,
):
    """Analyse a store of any size in bounded memory and (optionally) write the report directory.

    Parameters
    ----------
    path : path or URL
        The store (a local directory or an fsspec URL).
    out : path, optional
        Report directory; written only when the whole analysis succeeded (a previous report there is
        replaced whole, nothing half-written is left on failure).
    config : AnalyzeConfig, optional
        Options of the analyses (as :func:`clipgeo.report.analyze`); ``**options`` replace its fields.
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running Dask scheduler; default a local cluster of ``workers`` processes.
    client : distributed.Client, optional
        Use this client instead (``scheduler`` / ``workers`` are then ignored).
    stream : StreamConfig, optional
        Sample size, histogram bins, batch rows (default :class:`StreamConfig`).

    Returns
    -------
    StreamReport
    """
    import dataclasses

    from ..report import AnalyzeConfig
    from ._engine import DEFAULT_CONNECT_TIMEOUT, StreamConfig, collect_statistics, dask_client
    from ._report import build_report

    cfg = AnalyzeConfig.from_options(config, **options)
    stream = stream or StreamConfig(seed=cfg.seed, n_extremes=cfg.n_extremes)
    if out is not None:
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise InputError(f"out='{out}' is a file; give a directory for the report")
    timeout = DEFAULT_CONNECT_TIMEOUT if connect_timeout is None else float(connect_timeout)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers=workers, timeout=timeout, processes=processes))
        stats = collect_statistics(os.fspath(path), client, stream, allow_incomplete=allow_incomplete,
                                   storage_options=storage_options)
    # the cluster is closed: the sample analyses run here, in this process
    report = build_report(stats, cfg)
    report.config = {**report.config, "conformity": cfg.conformity, "streaming": dataclasses.asdict(stream)}
    if out is not None:
        with atomic_dir(out, replace=True) as tmp:  # a previous report there is replaced whole
            report.write(tmp, provenance=provenance)
    return report
