"""The Dask engine: per-shard tasks on ``dask.distributed``, merged in a tree.

:func:`collect_statistics` runs the two passes of a streamed analysis on a
``distributed.Client`` (a local cluster by default, or an existing scheduler,
see :func:`dask_client`):

1. pass 1 over every shard (:func:`~clipgeo.stream._tasks.first_pass`) and, in
   parallel, the image–text join on ``image_id``: the ids are hash-partitioned
   into buckets, each bucket is joined on its own, and each text shard gets its
   (text row, image shard, image row) matches -- no modality is ever gathered
   in one place;
2. pass 2 (:func:`~clipgeo.stream._tasks.second_pass`) once the merged first
   pass, the histogram grid and the sample cut-off are known.  A text shard is
   read together with the image shard its pairs point to, so a store written
   by ``clipgeo import`` / ``extract`` / ``simulate`` is read exactly twice.

Shards are grouped into a few tasks per worker; results are merged pairwise
(a tree) on the workers.  A worker lost mid-run costs only its tasks, which the
scheduler runs again elsewhere: the statistics are exact sums, so the result
does not change.  Dask is imported only here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ClipgeoError, StoreError
from ..store._iter import ShardInfo, StoreShards, open_store
from . import _tasks as tasks
from ._histogram import DEFAULT_BINS
from ._moments import ModalityMoments
from ._sample import DEFAULT_SAMPLE, cutoff, row_keys

#: seconds to wait for an existing scheduler before giving up
DEFAULT_CONNECT_TIMEOUT = 10.0
#: workers of the local cluster when none are asked for
DEFAULT_WORKERS = 2
#: rows per float64 batch inside a task
DEFAULT_BATCH_ROWS = 4096


@dataclass(frozen=True)
class StreamConfig:
    """Options of a streamed analysis (recorded in report.json under ``streaming``)."""

    sample_size: int = DEFAULT_SAMPLE
    bins: int = DEFAULT_BINS
    batch_rows: int = DEFAULT_BATCH_ROWS
    seed: int = 0
    n_extremes: int = 5
    tasks_per_worker: int = 4
    #: also accumulate Σuuᵀ of the unit rows (the unit-row covariance, ``first[m].unit_scatter``); no report
    #: number needs it and it doubles the first pass's cost
    unit_covariance: bool = False


@dataclass
class StoreStatistics:
    """Everything a streamed analysis measured: merged passes and the sample."""

    store: StoreShards
    config: StreamConfig
    first: dict[str, ModalityMoments]
    second: tasks.SecondPass
    n_pairs: int
    sample_kind: str  # "pairs" or "rows"
    workers: int
    info: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def dask_client(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
    processes: bool = True,
) -> Iterator[Any]:
    """A ``distributed.Client``: connected to ``scheduler`` (``tcp://HOST:PORT``), or on a new local cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler; unreachable within ``timeout`` seconds -> one-line ClipgeoError.
    workers : int, optional
        Workers of the local cluster (one thread each; default :data:`DEFAULT_WORKERS`).
    processes : bool
        Local workers as processes (default) or threads of this process.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency
        raise ClipgeoError("streaming analysis needs dask.distributed; pip install 'dask[distributed]'") from None
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    if scheduler:
        if "://" not in scheduler:
            scheduler = f"tcp://{scheduler}"
        try:
            client = Client(scheduler, timeout=f"{timeout}s")
        except (OSError, TimeoutError) as exc:
            raise ClipgeoError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({type(exc).__name__}); start it "
                "(`dask scheduler`, or dask-jobqueue on a cluster) or run without a scheduler (on a local cluster)"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    n = DEFAULT_WORKERS if workers is None else int(workers)
    if n < 1:
        raise ClipgeoError(f"workers={workers} is below 1; use at least 1 worker")
    where = {"host": "127.0.0.1"} if processes else {}  # in-process workers talk over inproc://
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0",
                           silence_logs=logging.CRITICAL, **where)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _groups(items: list, n_groups: int) -> list[list]:
    n_groups = max(1, min(len(items), n_groups))
    size = math.ceil(len(items) / n_groups) if items else 0
    return [items[i:i + size] for i in range(0, len(items), size)] if items else []


def _merge(a, b):
    return a.merge(b)


def _tree(client, futures: list):
    """Merge futures pairwise, level by level, on the workers; one future (or None)."""
    futures = list(futures)
    if not futures:
        return None
    while len(futures) > 1:
        nxt = [client.submit(_merge, futures[i], futures[i + 1], pure=False) if i + 1 < len(futures) else futures[i]
               for i in range(0, len(futures), 2)]
        futures = nxt
    return futures[0]


def _pick(parts: dict[int, np.ndarray], shards: list[int]) -> dict[int, np.ndarray]:
    return {j: parts[j] for j in shards if j in parts}


def _concat_pairs(*picked: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    out: dict[int, list[np.ndarray]] = {}
    for d in picked:
        for j, v in d.items():
            out.setdefault(j, []).append(v)
    return {j: tasks.pairs_of_text_shard([{j: np.concatenate(v)}], j) for j, v in out.items()}


def _summaries(pairs: dict[int, np.ndarray], offsets: dict[int, int], seed: int, size: int) -> dict[int, dict]:
    return {j: tasks.pair_summary(p, offsets[j], seed, size) for j, p in pairs.items()}


def _modality_cutoff(n: int, seed: int, modality: str, size: int):
    chunks = (row_keys(np.arange(s, min(s + (1 << 20), n)), seed, modality) for s in range(0, n, 1 << 20))
    return cutoff(chunks, size)


def _gather(client, future):
    try:
        return client.gather(future)
    except ClipgeoError:
        raise
    except (OSError, ValueError) as exc:  # a task that could not read its shard
        raise StoreError(f"a streaming task failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def _join(client, store: StoreShards, img_shards: list[ShardInfo], txt_shards: list[ShardInfo],
          text_groups: list[list[ShardInfo]], n_groups: int, config: StreamConfig) -> tuple[list, dict[int, dict]]:
    """The image_id join: per text group, a future of its matches, and every text shard's pair summary."""
    submit = client.submit
    n_buckets = max(1, min(64, len(txt_shards)))
    id_img = [submit(tasks.id_buckets, store, g, n_buckets, pure=False) for g in _groups(img_shards, n_groups)]
    id_txt = [submit(tasks.id_buckets, store, g, n_buckets, pure=False) for g in text_groups]
    joined = []
    for b in range(n_buckets):
        ip = [submit(operator.getitem, f, b, pure=False) for f in id_img]
        tp = [submit(operator.getitem, f, b, pure=False) for f in id_txt]
        joined.append(submit(tasks.join_bucket, store.url, ip, tp, pure=False))
    offsets = {s.index: s.offset for s in txt_shards}
    pair_futures, summary_futures = [], []
    for group in text_groups:
        ids = [s.index for s in group]
        picked = [submit(_pick, f, ids, pure=False) for f in joined]
        pair_futures.append(submit(_concat_pairs, *picked, pure=False))
        summary_futures.append(submit(_summaries, pair_futures[-1], offsets, config.seed, config.sample_size,
                                      pure=False))
    summaries: dict[int, dict] = {}
    for part in _gather(client, summary_futures):
        summaries.update(part)
    return pair_futures, summaries


def collect_statistics(
    path: str,
    client,
    config: StreamConfig = StreamConfig(),
    *,
    allow_incomplete: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> StoreStatistics:
    """Both passes of a streamed analysis of the store at ``path`` (local or fsspec URL) on ``client``."""
    import time

    started = time.perf_counter()
    store = open_store(path, allow_incomplete=allow_incomplete, storage_options=storage_options)
    img_shards, txt_shards = store.shards["image"], store.shards["text"]
    if not img_shards and not txt_shards:
        raise StoreError(f"store {path} has no shards; nothing to analyze")
    n_workers = max(1, len(client.scheduler_info().get("workers", {})) or 1)
    n_groups = n_workers * config.tasks_per_worker
    submit = client.submit

    # pass 1 and, beside it, the join on image_id
    first_futures = {}
    for m, shards in (("image", img_shards), ("text", txt_shards)):
        if shards:
            parts = [submit(tasks.first_pass, store, g, config.batch_rows, config.unit_covariance, pure=False)
                     for g in _groups(shards, n_groups)]
            first_futures[m] = _tree(client, parts)

    text_groups: list[list[ShardInfo]] = _groups(txt_shards, n_groups)
    pair_futures: list = [None] * len(text_groups)
    summaries: dict[int, dict] = {}
    if img_shards and txt_shards:
        # the hashed ids and the joined buckets (24 bytes a row) are released on return: only each text
        # group's matches stay on the workers through pass 2
        pair_futures, summaries = _join(client, store, img_shards, txt_shards, text_groups, n_groups, config)
    first = {m: _gather(client, f) for m, f in first_futures.items()}
    n_pairs = sum(s["n"] for s in summaries.values())
    first_done = time.perf_counter()

    # the sample: pairs when the store has them, else rows of each modality
    modality_cutoff: dict[str, Any] = {}
    pair_cutoff = None
    if n_pairs >= 2:
        kind = "pairs"
        pair_cutoff = cutoff((s["keys"] for s in summaries.values()), config.sample_size, total=n_pairs)
    else:
        kind = "rows"
        for m, mom in first.items():
            modality_cutoff[m] = _modality_cutoff(mom.n, config.seed, m, config.sample_size)

    # histogram grid: pooled per-feature min / max of the first pass
    lo = np.min([mom.minimum for mom in first.values()], axis=0)
    hi = np.max([mom.maximum for mom in first.values()], axis=0)
    cfg = tasks.PassTwoConfig(config.batch_rows, config.seed, config.n_extremes, lo, hi, config.bins,
                              modality_cutoff, pair_cutoff)

    # units: each text shard with the image shard its pairs point to (each image shard read once)
    claimed: set[int] = set()
    img_by_index = {s.index: s for s in img_shards}
    unit_groups: list[list[tasks.Unit]] = []
    for group in text_groups:
        units = []
        for s in group:
            used = summaries.get(s.index, {}).get("image_shards", [])
            choice = s.index if s.index in used and s.index not in claimed else next(
                (i for i in used if i not in claimed), None)
            if choice is not None:
                claimed.add(choice)
            units.append(tasks.Unit(img_by_index.get(choice) if choice is not None else None, s))
        unit_groups.append(units)
    rest = [tasks.Unit(s, None) for s in img_shards if s.index not in claimed]
    rest_groups = _groups(rest, n_groups)

    # one future for the whole dict, under a fresh key (a scattered dict would be keyed "image" / "text",
    # and a key an earlier run still holds would hand that run's data to this one)
    first_future = client.scatter([first], broadcast=False, hash=False)[0]
    parts = [submit(tasks.second_pass, store, units, first_future, pair_futures[g] or {}, cfg, pure=False)
             for g, units in enumerate(unit_groups)]
    parts += [submit(tasks.second_pass, store, units, first_future, {}, cfg, pure=False) for units in rest_groups]
    del pair_futures, first_future  # each group's matches are freed as soon as its pass-2 task is done
    # the sampled rows are not merged on the workers (each merge level would copy the whole sample): each
    # task's piece comes to this process on its own, and the statistics merge in a tree without them
    pieces = [submit(tasks.SecondPass.samples_only, p, pure=False) for p in parts]
    lean = [submit(tasks.SecondPass.without_samples, p, pure=False) for p in parts]
    del parts  # released once both halves are computed
    second = _gather(client, _tree(client, lean))
    pair_pieces, row_pieces = [], {}
    for future in pieces:
        pair_piece, row_piece = _gather(client, future)
        future.release()
        pair_pieces.append(pair_piece)
        for m, piece in row_piece.items():
            row_pieces.setdefault(m, []).append(piece)
    second.pair_sample = tasks.RowSample.concat_sorted(pair_pieces, "text_row")
    second.samples = {m: tasks.RowSample.concat_sorted(p, "row") for m, p in row_pieces.items()}
    del pair_pieces, row_pieces
    info = {"workers": n_workers, "tasks_pass2": len(pieces),
            "seconds": {"stream_pass1_and_join": first_done - started, "stream_pass2": time.perf_counter() - first_done}}
    return StoreStatistics(store, config, first, second, n_pairs, kind, n_workers, info)
