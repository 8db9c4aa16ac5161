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
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data.sources import CaptionedSource
from ..errors import ClipgeoError, InputError
from ..models import PRECISIONS, LoadedModel, load_model
from ..provenance import provenance
from ..store import StoreMeta, StoreWriter
from ..store._meta import STORE_DTYPES

__all__ = ["DECODE_MODES", "DEVICES", "ExtractOptions", "extract", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "mps")
DECODE_MODES = ("pil", "draft", "torchvision", "device")
_SHARD_DELAY_ENV = "CLIPGEO_TEST_SHARD_DELAY"  # seconds to wait after each shard (kill-and-resume tests)


@dataclass
class ExtractOptions:
    """Everything ``clipgeo extract`` can be told, with its defaults.

    Attributes
    ----------
    model, pretrained, checkpoint
        Weights (see :func:`clipgeo.models.load_model`); ``pretrained="none"``
        is random initialisation from ``seed``.
    batch_size : int
        Records per image batch and captions per text batch.
    num_workers : int or None
        DataLoader worker processes; None = one less than the CPUs available
        to this process (at least 1, at most 8).  0 decodes in the main process.
    device : {"auto", "cpu", "cuda", "mps"}
    precision : {"fp32", "fp16", "bf16"}
        Compute precision (autocast for fp16/bf16).
    store_dtype : {"float32", "float16"}
    limit : int or None
        Only the first ``limit`` records of the source.
    seed : int
        Seeds the random initialisation (``pretrained="none"``).
    shard_size : int
        Records per shard: the unit of resumption and of multi-process work.
    trim_text : bool
        Run the text tower only up to each batch's longest caption (same
        features; falls back to ``encode_text`` where not valid).
    decode : {"pil", "draft", "torchvision", "device"}
        ``pil``: PIL decoding and open_clip's own preprocessing, exactly.
        ``draft``: PIL lets libjpeg decode large JPEGs at 1/2, 1/4 or 1/8
        scale (never below the model's image size).  ``torchvision``: JPEGs
        decoded by ``torchvision.io.decode_jpeg`` (libjpeg-turbo) and resized
        as tensors in the workers.  ``device``: JPEGs decoded in batches on the
        model's device (nvJPEG on CUDA) and resized there.  The last three are
        faster and give pixels (hence features) slightly different from
        ``pil``; other formats and odd JPEGs always go through PIL.
    max_pixels : int or None
        Decompression-bomb guard (default: PIL's limit, ~89 M pixels).
    decode_timeout : float
        Seconds after which one image is skipped as ``decode_timeout``.
    progress : bool or None
        Show a progress bar (None: when stderr is a terminal).
    """

    model: str = "tiny"
    pretrained: str = "none"
    checkpoint: str | None = None
    batch_size: int = 64
    num_workers: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    store_dtype: str = "float32"
    limit: int | None = None
    seed: int = 0
    shard_size: int = 2048
    trim_text: bool = True
    decode: str = "pil"
    max_pixels: int | None = None
    decode_timeout: float = 30.0
    progress: bool | None = None

    def validate(self) -> None:
        """Check every option once, with a one-line message naming the fix."""
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.num_workers is not None and self.num_workers < 0:
            raise InputError(f"--num-workers must be 0 or more, got {self.num_workers}")
        if self.device not in DEVICES:
            raise InputError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.store_dtype not in STORE_DTYPES:
            raise InputError(f"--store-dtype must be one of {', '.join(STORE_DTYPES)}, got {self.store_dtype!r}")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit must be at least 1, got {self.limit}")
        if self.shard_size < 1:
            raise InputError(f"--shard-size must be at least 1, got {self.shard_size}")
        if self.decode not in DECODE_MODES:
            raise InputError(f"--decode must be one of {', '.join(DECODE_MODES)}, got {self.decode!r}")
        if self.max_pixels is not None and self.max_pixels < 1:
            raise InputError(f"--max-pixels must be positive, got {self.max_pixels}")


# -- device and process group ------------------------------------------------------------
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, values: list[float], device: Any) -> list[float]:
        if self.world == 1:
            return values
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def close(self) -> None:
        if self.initialized_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def resolve_device(device: str, local_rank: int = 0):
    """``auto`` -> cuda (this rank's GPU) if available, else mps, else cpu; checks that the device exists."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ClipgeoError("--device cuda but no CUDA GPU is visible; use --device cpu (or auto)")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if device == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ClipgeoError("--device mps but MPS is not available; use --device cpu (or auto)")
    return torch.device(device)


def _init_dist(device: Any) -> _Dist:
    """Join the process group torchrun set up in the environment (gloo on CPU, nccl on CUDA)."""
    world = _env_int("WORLD_SIZE", 1)
    ctx = _Dist(rank=_env_int("RANK", 0), world=world, local_rank=_env_int("LOCAL_RANK", 0))
    if world <= 1:
        return ctx
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=12))
        ctx.initialized_here = True
    ctx.rank, ctx.world = dist.get_rank(), dist.get_world_size()
    return ctx


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
def _autocast(device: Any, precision: str):
    import torch

    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


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
        with _autocast(device, precision):
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
    """Counts over a store's manifest: rows per modality, skips by reason, truncated captions."""
    import pyarrow.parquet as pq

    manifest = json.loads((root / "manifest.json").read_text())
    rows = Counter()
    skipped: dict[str, Counter] = {"image": Counter(), "text": Counter()}
    truncated = 0
    for entry in manifest["shards"]:
        rows[entry["modality"]] += entry["rows"]
        for item in entry.get("skipped", []):
            skipped[entry["modality"]][item["reason"]] += 1
        if entry["modality"] == "text" and entry["rows"]:
            path = root / entry["file"]
            if "truncated" in pq.read_schema(path).names:
                truncated += int(np.count_nonzero(pq.read_table(path, columns=["truncated"]).column(0).to_numpy()))
    return {
        "rows": {"image": rows["image"], "text": rows["text"]},
        "skipped": {m: dict(sorted(c.items())) for m, c in skipped.items()},
        "truncated_captions": truncated,
    }


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
        ``pairs``, ``pairs_per_s`` (this run), ``world_size``, ``status``.
        On ranks other than 0 of a multi-process run, only this rank's counts.
    """
    import torch

    options = options or ExtractOptions()
    options.validate()
    source = source.head(options.limit)
    if len(source) == 0:
        raise InputError("the source holds no records; check the paths")
    started = time.perf_counter()
    device = resolve_device(options.device, _env_int("LOCAL_RANK", 0))
    dist = _init_dist(device)
    try:
        return _run(source, Path(out), options, device, dist, started, torch, loaded)
    finally:
        dist.close()


def _run(source: CaptionedSource, root: Path, options: ExtractOptions, device: Any, dist: _Dist, started: float,
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

    if loaded is None:
        torch.manual_seed(options.seed)  # random initialisation is the same on every rank and every run
        with warnings.catch_warnings():
            if dist.rank != 0:
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
    if dist.rank == 0:
        store = StoreWriter(root, meta, resume=True)
        dist.barrier()
    else:
        dist.barrier()  # let rank 0 create the store (or refuse it) first
        store = StoreWriter(root, meta, resume=True)
    n_shards = math.ceil(len(source) / options.shard_size)
    manifest = store.manifest()
    if manifest.get("status") == "complete":  # finalised only after every shard of every rank
        dist.barrier()
        return {**manifest.get("summary", {}), "status": "already complete", "shards_written": 0,
                "shards_resumed": n_shards}
    done = store.committed("image") & store.committed("text")
    todo = [k for k in range(n_shards) if k % dist.world == dist.rank and k not in done]

    pil_transform, normalizer = split_preprocess(loaded.preprocess_val)
    draft = loaded.image_size if options.decode == "draft" else None
    load_options = {"max_pixels": options.max_pixels, "draft_size": draft, "timeout": options.decode_timeout}
    resize = tensor_resize(pil_transform) if normalizer is not None else None
    decode = options.decode if options.decode in ("torchvision", "device") else "pil"
    if decode != "pil" and resize is None:
        warnings.warn(f"--decode {options.decode} is not possible with {loaded.name}'s preprocessing; using PIL",
                      stacklevel=2)
        decode = "pil"
    dataset = RecordDataset(source, pil_transform, loaded.tokenizer, loaded.context_length, split=normalizer is not None,
                            load_options=load_options, decode=decode, resize=resize)
    device_decoder = DeviceJpegDecoder(resize, pil_transform, load_options) if decode == "device" else None
    sampler = ShardBatchSampler(len(source), options.shard_size, options.batch_size, todo)
    workers = _default_workers(dist.world) if options.num_workers is None else options.num_workers
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
    from tqdm import tqdm

    if dist.rank != 0:
        show = False
    else:
        show = _stderr_is_tty() if options.progress is None else bool(options.progress)
    bar = tqdm(total=_count_pairs(source, todo_indices), unit="pair", dynamic_ncols=True, disable=not show,
               leave=False, desc=f"extract {loaded.name}")
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
                    with _autocast(device, options.precision):
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
    totals = dist.sum([float(pairs_done), float(len(todo))], device if device.type == "cuda" else "cpu")
    dist.barrier()
    summary: dict[str, Any] = {
        "status": "complete",
        "shards": n_shards,
        "shards_resumed": len(done),
        "shards_written": int(totals[1]),
        "pairs": int(totals[0]),
        "seconds": round(loop_seconds, 3),
        "seconds_total": round(time.perf_counter() - started, 3),
        "pairs_per_s": round(totals[0] / loop_seconds, 2) if loop_seconds > 0 and totals[0] else 0.0,
        "world_size": dist.world,
        "device": str(device),
        "num_workers": workers,
        "text_trimmed": bool(options.trim_text and _can_trim(model)),
    }
    if dist.rank == 0:
        summary.update(store_summary(root))
        store.finalize(summary)
    dist.barrier()
    return summary


def _can_trim(model: Any) -> bool:
    from ._text import can_trim_text

    return can_trim_text(model)


def _stderr_is_tty() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


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
