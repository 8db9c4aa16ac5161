"""Streaming a store shard by shard as numpy batches, from a local path or an fsspec URL.

:func:`iter_store` never holds more than one batch: each shard is read with
``pyarrow.parquet.ParquetFile.iter_batches`` (memory-mapped for local files)
and its ``fixed_size_list`` embedding column is viewed as an (n, d) numpy
array without a Python loop.  A store may live behind any fsspec URL
(``file://``, ``memory://``, ``s3://``, ``gs://``, ``hf://`` with the matching
fsspec backend installed); plain paths are local files.

:func:`open_store` gives the pieces an engine needs to spread the work: the
manifest, the metadata and every shard with its global row offset, each
readable on its own (:meth:`StoreShards.read`) -- a shard that disappeared or
changed since the manifest was read is a one-line :class:`StoreError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import StoreError
from ._layout import EMBEDDING, MANIFEST, MODALITIES
from ._meta import StoreMeta

#: rows per batch of :func:`iter_store`
DEFAULT_BATCH_ROWS = 65536


def _filesystem(path: str | os.PathLike, storage_options: dict[str, Any] | None = None):
    """(fsspec filesystem or None for a local path, root path inside it)."""
    text = os.fspath(path)
    if "://" not in text:
        return None, text
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with datasets
        raise StoreError(f"reading {text} needs fsspec; pip install fsspec") from None
    try:
        fs, root = fsspec.core.url_to_fs(text, **(storage_options or {}))
    except (ImportError, ValueError) as exc:
        raise StoreError(f"cannot open {text}: {exc}; install the fsspec backend for this URL scheme") from None
    return fs, root.rstrip("/")


@dataclass(frozen=True)
class ShardInfo:
    """One shard of a store: where it is and which global rows of its modality it holds."""

    modality: str
    index: int
    file: str
    rows: int
    offset: int  # global row index (within the modality) of its first row


@dataclass
class StoreBatch:
    """Consecutive rows of one shard.

    Attributes
    ----------
    modality : {"image", "text"}
    shard : int
        Shard index.
    offset : int
        Global row index (within the modality, in shard order) of the first row.
    embedding : ndarray of shape (n, d) or None
        In the store dtype (float16 / float32) unless a dtype was asked for.
    columns : dict of str to ndarray
        The other requested columns (``id``, ``path``, ``caption``, ``image_id``), object arrays of str / None
        (``pyarrow`` arrays when read with ``arrow_columns=True``: nothing is turned into Python strings).
    """

    modality: str
    shard: int
    offset: int
    embedding: np.ndarray | None
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        if self.embedding is not None:
            return len(self.embedding)
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclass
class StoreShards:
    """A store opened for streaming: its manifest, metadata and shard list (see :func:`open_store`)."""

    url: str
    manifest: dict[str, Any]
    meta: StoreMeta
    shards: dict[str, list[ShardInfo]]
    storage_options: dict[str, Any] | None = None

    def rows(self, modality: str) -> int:
        return sum(s.rows for s in self.shards.get(modality, []))

    def nbytes(self) -> int:
        """Bytes of the embeddings on disk (rows × dim × itemsize), for choosing in-memory vs streaming."""
        item = np.dtype(self.meta.store_dtype).itemsize
        return sum(self.rows(m) for m in MODALITIES) * self.meta.dim * item

    def read(
        self,
        shard: ShardInfo,
        columns: Sequence[str] = (EMBEDDING,),
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        dtype: np.dtype | type | None = None,
        arrow_columns: bool = False,
    ) -> Iterator[StoreBatch]:
        """Batches of one shard; raises StoreError when the shard is missing or no longer matches the manifest.

        ``arrow_columns`` keeps the string columns as pyarrow arrays (a column the shard lacks is all null).
        """
        yield from _read_shard(self, shard, tuple(columns), int(batch_rows), dtype, arrow_columns)


def open_store(
    path: str | os.PathLike,
    *,
    allow_incomplete: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> StoreShards:
    """Read and check a store's manifest (local path or fsspec URL) without reading any shard."""
    fs, root = _filesystem(path, storage_options)
    text = os.fspath(path)
    manifest_path = f"{root}/{MANIFEST}"
    try:
        if fs is None:
            if not os.path.exists(root):
                raise StoreError(f"no store at {text}; create one with `clipgeo import` or `clipgeo extract`")
            if not os.path.isdir(root):
                raise StoreError(f"{text} is a file; a store is a directory written by `clipgeo import` or `clipgeo extract`")
            with open(manifest_path, "rb") as handle:
                raw = handle.read()
        else:
            with fs.open(manifest_path, "rb") as handle:
                raw = handle.read()
    except FileNotFoundError:
        raise StoreError(f"{text} has no {MANIFEST}, so it is not a clipgeo store (or its writing never started)") from None
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{manifest_path} is not readable JSON ({exc}); the store is damaged, write it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "clipgeo-store":
        raise StoreError(f"{manifest_path} is not a clipgeo store manifest; point at a directory written by clipgeo")
    if manifest.get("status") != "complete" and not allow_incomplete:
        raise StoreError(
            f"store {text} is incomplete (writing stopped after {len(manifest.get('shards', []))} shard(s)); re-run the "
            "command that wrote it to finish, or pass allow_incomplete=True to read the finished shards"
        )
    meta = StoreMeta.from_dict(manifest["meta"])
    shards: dict[str, list[ShardInfo]] = {}
    for m in MODALITIES:
        entries = sorted((s for s in manifest.get("shards", []) if s["modality"] == m), key=lambda s: s["index"])
        offset, infos = 0, []
        for e in entries:
            infos.append(ShardInfo(m, int(e["index"]), e["file"], int(e["rows"]), offset))
            offset += int(e["rows"])
        shards[m] = infos
    return StoreShards(text, manifest, meta, shards, storage_options)


def _open_parquet(store: StoreShards, shard: ShardInfo) -> pq.ParquetFile:
    fs, root = _filesystem(store.url, store.storage_options)
    path = f"{root}/{shard.file}"
    damaged = f"store {store.url} changed or is damaged: shard {shard.file}"
    try:
        if fs is None:
            handle = pq.ParquetFile(path, memory_map=True)
        else:
            handle = pq.ParquetFile(fs.open(path, "rb"))
    except FileNotFoundError:
        raise StoreError(f"{damaged} is missing; restore it or write the store again, then re-run") from None
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"{damaged} is not readable Parquet ({first}); restore it or write the store again") from None
    if handle.metadata.num_rows != shard.rows:
        raise StoreError(
            f"{damaged} has {handle.metadata.num_rows} rows but the manifest says {shard.rows}; "
            "the store was modified during the analysis: write it again, then re-run"
        )
    column = handle.schema_arrow.field(EMBEDDING) if EMBEDDING in handle.schema_arrow.names else None
    if column is None or not pa.types.is_fixed_size_list(column.type) or column.type.list_size != store.meta.dim:
        raise StoreError(f"{damaged}: embedding column is {None if column is None else column.type}, expected "
                         f"fixed_size_list of {store.meta.dim}; write the store again")
    return handle


def embedding_matrix(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """A ``fixed_size_list<float, dim>`` Arrow column as an (n, dim) numpy array (zero-copy where possible)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        if chunk.null_count:
            raise StoreError("embedding column has null rows; the store is damaged, write it again")
        parts.append(chunk.flatten().to_numpy(zero_copy_only=False).reshape(len(chunk), dim))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty((0, dim), dtype=np.float32)


def _read_shard(store: StoreShards, shard: ShardInfo, columns: tuple[str, ...], batch_rows: int, dtype,
                arrow_columns: bool = False) -> Iterator[StoreBatch]:
    handle = _open_parquet(store, shard)
    names = handle.schema_arrow.names
    present = [c for c in columns if c in names]
    offset = shard.offset
    read = 0
    try:
        for batch in handle.iter_batches(batch_size=batch_rows, columns=present or [EMBEDDING], use_threads=False):
            n = batch.num_rows
            emb = None
            if EMBEDDING in columns:
                emb = embedding_matrix(batch.column(EMBEDDING), store.meta.dim)
                if dtype is not None:
                    emb = emb.astype(dtype, copy=False)
            cols = {}
            for c in columns:
                if c == EMBEDDING:
                    continue
                if arrow_columns:
                    cols[c] = batch.column(c) if c in present else pa.nulls(n, pa.string())
                else:
                    cols[c] = (batch.column(c).to_numpy(zero_copy_only=False) if c in present
                               else np.full(n, None, dtype=object))
            yield StoreBatch(shard.modality, shard.index, offset, emb, cols)
            offset += n
            read += n
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"store {store.url} changed or is damaged: shard {shard.file} could not be read ({first}); "
                         "restore it or write the store again") from None
    if read != shard.rows:
        raise StoreError(f"store {store.url} changed or is damaged: shard {shard.file} gave {read} rows, the manifest "
                         f"says {shard.rows}; write the store again")


def iter_store(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] = (EMBEDDING,),
    modality: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    dtype: np.dtype | type | None = None,
    allow_incomplete: bool = False,
    storage_options: dict[str, Any] | None = None,
) -> Iterator[StoreBatch]:
    """Stream a store's rows as numpy batches, shard by shard, in store order.

    Parameters
    ----------
    path : path or URL
        Store directory: a local path or an fsspec URL (``file://``, ``memory://``, ``s3://`` …).
    columns : sequence of str
        Any of ``embedding``, ``id``, ``path`` (image), ``caption``, ``image_id`` (text).
    modality : {"image", "text"}, optional
        One modality; default both, images first.
    batch_rows : int
        Rows per batch (a batch never spans two shards).
    dtype : numpy dtype, optional
        Cast the embeddings (default: the store dtype, no copy).
    allow_incomplete : bool
        Stream the finished shards of a store still being written.
    storage_options : dict, optional
        Passed to fsspec for URLs (credentials, endpoints).

    Yields
    ------
    StoreBatch
        ``.embedding`` (n, d), ``.columns``, ``.modality``, ``.shard``, ``.offset``.
    """
    from ..errors import InputError

    if int(batch_rows) < 1:
        raise InputError(f"batch_rows must be at least 1, got {batch_rows}")
    if modality is not None and modality not in MODALITIES:
        raise InputError(f"unknown modality {modality!r}; use 'image' or 'text'")
    known = {EMBEDDING, "id", "path", "caption", "image_id"}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise InputError(f"unknown store column(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    store = open_store(path, allow_incomplete=allow_incomplete, storage_options=storage_options)
    for m in (modality,) if modality else MODALITIES:
        for shard in store.shards[m]:
            yield from store.read(shard, columns, batch_rows=batch_rows, dtype=dtype)
