"""The extraction pipeline: source -> workers -> model -> writer thread -> store.

Left to right:

1. **Shards.** Record ``i`` of the source belongs to shard ``i // shard_size``.
   A shard's image rows and text rows are written together as
   ``image/part-k`` and ``text/part-k``; a shard is finished when both are in
   the manifest.  On start, finished shards are skipped, so a killed run
   re-run with the same command completes the store with every input exactly
   once (the store's atomic shard writes do the rest).  Under ``torchrun``,
   rank ``r`` of ``W`` takes the shards ``k ≡ r (mod W)``; rank 0 finalises
   after a barrier.
2. **Workers** (:mod:`._loader`) decode images (:func:`clipgeo.data.load_image`,
   never raising), run the PIL part of the preprocessing and tokenise every
   caption once; batches never cross a shard.
3. **Model.** Images go to the device as ``uint8`` (pinned, non-blocking on
   GPU), are normalised there and encoded with ``encode_image(x,
   normalize=False)``; fp16/bf16 run under autocast with fp32 weights.  At
   the end of a shard its captions are sorted by token length and encoded in
   batches cut at their longest caption (:mod:`._text`).
4. **Writer.** A background thread writes finished shards while the model
   works on the next one.

Determinism: what a batch holds depends only on the data, ``shard_size`` and
``batch_size``, so on CPU in fp32 the same command writes bit-identical
embeddings whatever ``num_workers``, and a resumed run writes the same bytes
as an uninterrupted one.  Across batch sizes, features agree to float
rounding (see ``docs/extract.md`` for the measured tolerances).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import queue
import threading
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import runtime
from ..data.sources import CaptionedSource
from ..errors import InputError
from ..models import LoadedModel, load_model
from ..provenance import provenance
from ..store import StoreMeta, StoreWriter
from ._options import ExtractOptions

__all__ = ["extract", "fingerprint", "store_summary"]

_SHARD_DELAY_ENV = "CLIPGEO_TEST_SHARD_DELAY"  # seconds to wait after each shard (kill-and-resume tests)


# -- writer thread ----------------------------------------------------------------------------
class _ShardWriterThread(threading.Thread):
    """Writes finished shards in the background; at most ``depth`` shards wait in its queue."""

    def __init__(self, store: StoreWriter, depth: int = 2) -> None:
        super().__init__(name="clipgeo-shard-writer", daemon=True)
        self.store = store
        self.jobs: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.delay = float(os.environ.get(_SHARD_DELAY_ENV, "0") or 0)

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is not None:
                continue
            try:
                for modality in ("image", "text"):
                    payload = job[modality]
                    self.store.write_shard(modality, job["shard"], payload["embeddings"], ids=payload["ids"],
                                           columns=payload["columns"], skipped=payload["skipped"])
                if self.delay:
                    time.sleep(self.delay)
            except BaseException as exc:  # re-raised in the main thread
                self.error = exc

    def put(self, job: dict[str, Any] | None) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.jobs.put(job, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self.put(None)
        self.join()
        if self.error is not None:
            raise self.error


# -- helpers --------------------------------------------------------------------------------------
def _default_workers(world: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus // max(1, world) - 1))


def fingerprint(source: CaptionedSource, loaded: LoadedModel, options: ExtractOptions) -> str:
    """Hash of everything that determines the store's content (data, weights, options)."""
    random_init = loaded.pretrained in (None, "none") and loaded.checkpoint_sha256 is None
    identity = {
        "source": source.fingerprint,
        "kind": source.kind,
        "records": len(source),
        "model": loaded.name,
        "pretrained": loaded.pretrained,
        "checkpoint_sha256": loaded.checkpoint_sha256,
        "seed": options.seed if random_init else None,
        "precision": options.precision,
        "store_dtype": options.store_dtype,
        "shard_size": options.shard_size,
        "decode": options.decode,
        "max_pixels": options.max_pixels,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _count_pairs(source: CaptionedSource, indices: range | list[int]) -> int:
    """Image–caption pairs among ``indices`` (exact for file sources, estimated from 1000 records for HF)."""
    n = len(indices)
    if n == 0:
        return 0
    if source.kind != "hf":
        return sum(max(1, len(source[i].captions)) for i in indices)
    step = max(1, n // 1000)
    sample = [max(1, len(source[indices[j]].captions)) for j in range(0, n, step)]
    return int(round(np.mean(sample) * n))


def _encode_texts(model: Any, tokens: Any, batch_size: int, device: Any, precision: str, trim: bool):
    """Raw text features of ``tokens`` (n, L), batched by length; rows in the input order."""
    import torch

    from ._text import encode_text, pooled_positions

    n = tokens.shape[0]
    out = torch.empty(n, _embed_dim(model), dtype=torch.float32, device=device)
    if n == 0:
        return out
    order = torch.argsort(pooled_positions(model, tokens), stable=True)
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        batch = tokens[rows].to(device, non_blocking=True)
        with runtime.autocast(device, precision):
            features = encode_text(model, batch, trim=trim)
        out[rows.to(device)] = features.float()
    return out


def _embed_dim(model: Any) -> int:
    projection = getattr(model, "text_projection", None)
    if projection is not None:
        return int(projection.out_features if hasattr(projection, "out_features") else projection.shape[1])
    return int(model.visual.output_dim)


def _shard_payloads(shard: int, items: list[Any], image_features: Any, text_features: Any) -> dict[str, Any]:
    """Rows, columns and skip entries of one shard, ready for :meth:`StoreWriter.write_shard`."""
    image_ids, paths, image_skips = [], [], []
    text_ids, captions, text_image_ids, truncated, text_skips = [], [], [], [], []
    for item in items:
        if item.has_image:
            image_ids.append(item.image_id)
            paths.append(item.path)
        elif item.image_skip is not None:
            image_skips.append({"id": item.image_id, "reason": item.image_skip, "path": item.path})
        linked = item.image_id if item.has_image else None
        text_ids.extend(item.caption_ids)
        captions.extend(item.captions)
        text_image_ids.extend([linked] * len(item.captions))
        truncated.extend(item.truncated)
        text_skips.extend(item.caption_skips)
    return {
        "shard": shard,
        "image": {
            "embeddings": image_features,
            "ids": image_ids,
            "columns": {"path": paths},
            "skipped": image_skips,
        },
        "text": {
            "embeddings": text_features,
            "ids": text_ids,
            "columns": {"image_id": text_image_ids, "caption": captions, "truncated": np.array(truncated, dtype=bool)},
            "skipped": text_skips,
        },
    }


def store_summary(root: Path) -> dict[str, Any]:
    """Counts of a store (:func:`clipgeo.store.summary`): rows per modality, skips by reason, truncated captions."""
    from ..store import summary

    described = summary(root)
    return {"rows": described.rows, "skipped": described.skipped, "truncated_captions": described.truncated_captions}


# -- the pipeline ----------------------------------------------------------------------------------------
def extract(source: CaptionedSource, out: str | os.PathLike, options: ExtractOptions | None = None, *,
            loaded: LoadedModel | None = None) -> dict[str, Any]:
    """Embed every image and caption of ``source`` into the store at ``out``; resumable.

    Parameters
    ----------
    source : CaptionedSource
        See :mod:`clipgeo.data`.
    out : path
        Store directory.  If it holds an unfinished store written by the same
        command (same data, weights and options), the missing shards are
        added; a store from other data or weights is refused.
    options : ExtractOptions
    loaded : LoadedModel, optional
        A model already built by :func:`clipgeo.models.load_model` (its weights
        and name replace ``options.model/pretrained/checkpoint/seed``); it is
        moved to the extraction device.

    Returns
    -------
    dict
        Summary: ``rows`` per modality, ``skipped`` counts by reason,
        ``truncated_captions``, ``shards``, ``shards_resumed``, ``seconds``,
        ``pairs``, ``pairs_per_s`` (this run), ``world_size``, ``status``, ``rank`` (of this
        process; only rank 0 reports for the whole store, the others their own counts).
    """
    import torch

    options = options or ExtractOptions()
    options.validate()
    source = source.head(options.limit)
    if len(source) == 0:
        raise InputError("the source holds no records; check the paths")
    started = time.perf_counter()
    device = runtime.resolve_device(options.device)
    pretrained = options.pretrained if options.pretrained is not None else "none" if options.checkpoint else "openai"
    options = replace(options, pretrained=pretrained, precision=runtime.resolve_precision(options.precision, device))
    with runtime.distributed(device):
        return _run(source, Path(out), options, device, started, torch, loaded)


def _run(source: CaptionedSource, root: Path, options: ExtractOptions, device: Any, started: float,
         torch: Any, loaded: LoadedModel | None) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from ._loader import (
        DeviceJpegDecoder,
        RecordDataset,
        ShardBatchSampler,
        collate,
        split_preprocess,
        tensor_resize,
        worker_init,
    )

    rank, world = runtime.rank(), runtime.world_size()
    if loaded is None:
        torch.manual_seed(options.seed)  # random initialisation is the same on every rank and every run
        with warnings.catch_warnings():
            if rank != 0:
                warnings.simplefilter("ignore")
            loaded = load_model(options.model, options.pretrained, checkpoint=options.checkpoint, device="cpu")
    else:
        options = replace(options, model=loaded.name, pretrained=loaded.pretrained or "none", checkpoint=None)
    model = loaded.model.to(device).eval()
    meta = StoreMeta(
        model=loaded.name,
        dim=loaded.embed_dim,
        pretrained=loaded.pretrained,
        checkpoint_sha256=loaded.checkpoint_sha256,
        precision=options.precision,
        store_dtype=options.store_dtype,
        normalized=False,
        source=source.description,
        fingerprint=fingerprint(source, loaded, options),
        **provenance({**asdict(options), "source": source.description, "records": len(source)}),
    )
    if rank == 0:
        store = StoreWriter(root, meta, resume=True)
        runtime.barrier()
    else:
        runtime.barrier()  # let rank 0 create the store (or refuse it) first
        store = StoreWriter(root, meta, resume=True)
    n_shards = math.ceil(len(source) / options.shard_size)
    manifest = store.manifest()
    if manifest.get("status") == "complete":  # finalised only after every shard of every rank
        runtime.barrier()
        return {**manifest.get("summary", {}), "status": "already complete", "shards_written": 0,
                "shards_resumed": n_shards, "rank": rank}
    done = store.committed("image") & store.committed("text")
    todo = [k for k in range(n_shards) if k % world == rank and k not in done]

    pil_transform, normalizer = split_preprocess(loaded.preprocess_val)
    draft = loaded.image_size if options.decode == "draft" else None
    load_options = {"max_pixels": options.max_pixels, "draft_size": draft, "timeout": options.decode_timeout}
    resize = tensor_resize(pil_transform) if normalizer is not None else None
    decode = options.decode if options.decode in ("torchvision", "device") else "pil"
    if decode != "pil" and resize is None:
        warnings.warn(f"decode={options.decode!r} is not possible with {loaded.name}'s preprocessing; using PIL",
                      stacklevel=2)
        decode = "pil"
    dataset = RecordDataset(source, pil_transform, loaded.tokenizer, loaded.context_length, split=normalizer is not None,
                            load_options=load_options, decode=decode, resize=resize)
    device_decoder = DeviceJpegDecoder(resize, pil_transform, load_options) if decode == "device" else None
    sampler = ShardBatchSampler(len(source), options.shard_size, options.batch_size, todo)
    workers = _default_workers(world) if options.num_workers is None else options.num_workers
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        worker_init_fn=worker_init if workers else None,
        prefetch_factor=4 if workers else None,
    )
    todo_indices = [i for k in todo for i in sampler.shard_range(k)]
    from .._progress import progress

    bar = progress(total=_count_pairs(source, todo_indices), unit="pair", desc=f"extract {loaded.name}",
                   show=False if rank != 0 else options.progress)  # None: on a terminal (clipgeo._progress)
    writer = _ShardWriterThread(store)
    writer.start()
    loop_start = time.perf_counter()
    pairs_done = 0
    items: list[Any] = []
    image_chunks: list[Any] = []
    try:
        with torch.inference_mode():
            for batch in loader:
                shard = batch.items[0].index // options.shard_size
                if device_decoder is not None:
                    x = device_decoder(batch, device)  # (n, 3, S, S) uint8 on the device
                else:
                    x = None if batch.images is None else batch.images.to(device, non_blocking=True)
                    for item in batch.items:
                        item.image = None  # the shard keeps its items until written: drop the pixels
                if x is not None:
                    if normalizer is not None:
                        x = normalizer(x)
                    with runtime.autocast(device, options.precision):
                        image_chunks.append(model.encode_image(x, normalize=False).float())
                items.extend(batch.items)
                pairs = sum(item.pairs for item in batch.items)
                pairs_done += pairs
                bar.update(pairs)
                if batch.items[-1].index == sampler.shard_range(shard).stop - 1:
                    writer.put(_finish_shard(shard, items, image_chunks, model, loaded, options, device))
                    items, image_chunks = [], []
        writer.close()
    except BaseException:
        bar.close()
        with contextlib.suppress(BaseException):
            writer.close()
        raise
    bar.close()
    loop_seconds = time.perf_counter() - loop_start
    totals = runtime.all_reduce_sum(torch.tensor([float(pairs_done), float(len(todo))], dtype=torch.float64)).tolist()
    runtime.barrier()
    summary: dict[str, Any] = {
        "status": "complete",
        "shards": n_shards,
        "shards_resumed": len(done),
        "shards_written": int(totals[1]),
        "pairs": int(totals[0]),
        "seconds": round(loop_seconds, 3),
        "seconds_total": round(time.perf_counter() - started, 3),
        "pairs_per_s": round(totals[0] / loop_seconds, 2) if loop_seconds > 0 and totals[0] else 0.0,
        "world_size": world,
        "device": str(device),
        "num_workers": workers,
        "text_trimmed": bool(options.trim_text and _can_trim(model)),
    }
    if rank == 0:
        summary.update(store_summary(root))
        store.finalize(summary)
    runtime.barrier()
    return {**summary, "rank": rank}


def _can_trim(model: Any) -> bool:
    from ._text import can_trim_text

    return can_trim_text(model)


def _finish_shard(shard: int, items: list[Any], image_chunks: list[Any], model: Any, loaded: LoadedModel,
                  options: ExtractOptions, device: Any) -> dict[str, Any]:
    import torch

    dim = loaded.embed_dim
    if image_chunks:
        image_features = torch.cat(image_chunks).cpu().numpy()
    else:
        image_features = np.zeros((0, dim), dtype=np.float32)
    token_rows = [item.tokens for item in items if item.tokens.shape[0]]
    if token_rows:
        tokens = torch.cat(token_rows)
        text_features = _encode_texts(model, tokens, options.batch_size, device, options.precision,
                                      options.trim_text).cpu().numpy()
    else:
        text_features = np.zeros((0, dim), dtype=np.float32)
    return _shard_payloads(shard, items, image_features, text_features)
