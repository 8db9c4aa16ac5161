"""Writing a store: atomic shards and a manifest that only lists finished work.

A shard is written to a hidden temporary file, flushed to disk and renamed into
place; only then is it entered in ``manifest.json`` (itself replaced atomically,
under a file lock so that several processes -- torchrun ranks -- can share one
store).  A process killed at any moment therefore leaves either a finished
shard listed in the manifest, or nothing that a reader would take for data.
The manifest's ``status`` stays ``"writing"`` until :meth:`StoreWriter.finalize`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .._io import atomic_path, write_bytes
from ..errors import StoreError
from ..validation import check_embeddings
from ._layout import EMBEDDING, FORMAT, FORMAT_VERSION, LOCK, MANIFEST, META_KEY, MODALITIES, shard_path
from ._meta import StoreMeta

_STRING_COLUMNS = ("path", "caption", "image_id")
#: rows per Parquet row group inside a shard
ROW_GROUP_ROWS = 8192


def embedding_type(dtype: str, dim: int) -> pa.DataType:
    """``fixed_size_list<dtype, dim>`` with non-null values: a shard's embedding column.

    Declared non-null (the column and its values; the writer refuses NaN rows and there are no missing ones),
    Parquet stores only the list's own level for each value instead of three, and readers decode it ~1.7x
    faster.
    """
    return pa.list_(pa.field("item", pa.from_numpy_dtype(np.dtype(dtype)), nullable=False), dim)


def embedding_array(embeddings: np.ndarray, dtype: str) -> pa.FixedSizeListArray:
    """(n, d) numpy array -> Arrow ``fixed_size_list<dtype, d>`` (:func:`embedding_type`) without a row loop."""
    values = np.ascontiguousarray(embeddings, dtype=np.dtype(dtype))
    n, d = values.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(n * d)), type=embedding_type(dtype, d))


def _write_table(path: Path, table: pa.Table) -> None:
    """Write one shard atomically (temporary file, fsync, rename)."""
    # Dictionary encoding and compression buy nothing on float vectors and make
    # reading them several times slower; keep both for the string columns only.
    # Column statistics (min / max over every value of every vector) mean nothing for
    # embeddings and made writing a float16 shard 5x slower.  Row groups of ROW_GROUP_ROWS rows keep the
    # writer's per-value level buffers (and a reader's decoded row group) a few MB instead of the whole
    # shard's -- and encode ~1.5x faster than one 65,536-row group.
    others = [name for name in table.column_names if name != EMBEDDING]
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            use_dictionary=others,
            compression={name: ("none" if name == EMBEDDING else "snappy") for name in table.column_names},
            write_statistics=others,
            row_group_size=ROW_GROUP_ROWS,
        )


def read_manifest_file(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is not readable JSON ({exc}); the store is damaged, write it again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is not a clipgeo store manifest; point at a directory written by clipgeo")
    return manifest


def check_same_model(existing: StoreMeta, new: StoreMeta, root: Path) -> None:
    """Refuse to mix models or dimensions in one store."""
    if existing.model_id != new.model_id or existing.dim != new.dim:
        raise StoreError(
            f"store {root} holds {existing.model_id} (dim {existing.dim}) but these embeddings come from "
            f"{new.model_id} (dim {new.dim}); one store holds one model: write to another directory"
        )


class StoreWriter:
    """Write shards of image and text rows into a store directory.

    Parameters
    ----------
    root : path
        The store directory.  Created if missing; must be empty or hold a store
        of the same model.
    meta : StoreMeta
        Provenance of the rows that will be written.
    resume : bool
        Continue an existing store of the same model and fingerprint: shards it
        already lists are kept (see :meth:`committed`) and may be skipped by the
        caller.  Without ``resume`` an existing store is refused.

    Several processes may open the same ``root`` with ``resume=True`` and write
    disjoint shard indices; the manifest is updated under a file lock.
    """

    def __init__(self, root: str | os.PathLike, meta: StoreMeta, *, resume: bool = False) -> None:
        self.root = Path(root)
        self.meta = meta
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not a directory; choose a directory for the store")
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            manifest = read_manifest_file(self.root)
            if manifest is None:
                stray = [p.name for p in self.root.iterdir() if not p.name.startswith(".")]
                if stray:
                    raise StoreError(
                        f"{self.root} is not empty and holds no clipgeo store ({', '.join(sorted(stray)[:3])}…); "
                        "choose an empty or new directory"
                    )
                manifest = self._new_manifest()
                self._write_manifest(manifest)
            else:
                existing = StoreMeta.from_dict(manifest["meta"])
                check_same_model(existing, meta, self.root)
                if not resume:
                    raise StoreError(
                        f"{self.root} already holds a store ({existing.model_id}); write to a new directory, "
                        "or re-run the same command to resume"
                    )
                if existing.fingerprint != meta.fingerprint:
                    raise StoreError(
                        f"{self.root} was written from different data or options "
                        f"(fingerprint {str(existing.fingerprint)[:12]} vs {str(meta.fingerprint)[:12]}); "
                        "re-run the original command to resume it, or write to a new directory"
                    )
        for modality in MODALITIES:
            (self.root / modality).mkdir(exist_ok=True)

    # -- manifest -------------------------------------------------------------
    def _new_manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "status": "writing",
            "meta": self.meta.to_dict(),
            "shards": [],
            "summary": {},
        }

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / LOCK, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        write_bytes(self.root / MANIFEST, (json.dumps(manifest, indent=1, default=str) + "\n").encode())

    def manifest(self) -> dict[str, Any]:
        """The manifest as it is on disk now."""
        manifest = read_manifest_file(self.root)
        assert manifest is not None
        return manifest

    def committed(self, modality: str) -> set[int]:
        """Indices of the shards of ``modality`` already listed in the manifest."""
        return {s["index"] for s in self.manifest()["shards"] if s["modality"] == modality}

    # -- shards ---------------------------------------------------------------
    def write_shard(
        self,
        modality: str,
        index: int,
        embeddings: np.ndarray,
        *,
        ids: Sequence[str],
        columns: dict[str, Sequence[Any]] | None = None,
        skipped: list[dict[str, Any]] | None = None,
    ) -> int:
        """Write one shard atomically and list it in the manifest.

        Parameters
        ----------
        modality : {"image", "text"}
        index : int
            Global shard number; shards are read back in index order.
        embeddings : ndarray of shape (n_rows, dim)
            Raw embeddings; cast to the store dtype.
        ids : sequence of str, length n_rows
        columns : dict of column name -> sequence, optional
            ``path`` for images; ``caption`` and ``image_id`` (None when
            unpaired) for texts; any further columns are kept as they are.
        skipped : list of dict, optional
            Inputs of this shard that were skipped, each with ``id`` and
            ``reason``; kept in the manifest with the shard (exactly once).

        Returns
        -------
        int : the number of rows written.
        """
        if modality not in MODALITIES:
            raise StoreError(f"unknown modality {modality!r}; use 'image' or 'text'")
        embeddings = check_embeddings(
            embeddings, f"{modality} shard {index}", dim=self.meta.dim, allow_empty=True, dtype=None
        )
        with np.errstate(over="ignore"):
            stored = embeddings.astype(self.meta.store_dtype, copy=False)
        if stored is not embeddings and not np.isfinite(stored).all():  # a narrowing cast may overflow
            raise StoreError(
                f"{modality} shard {index} overflows {self.meta.store_dtype} (values beyond ±65504); "
                "store as float32 instead"
            )
        n = embeddings.shape[0]
        ids = [str(i) for i in ids]
        if len(ids) != n:
            raise StoreError(f"{modality} shard {index}: {len(ids)} ids for {n} embedding rows")
        data: dict[str, pa.Array] = {"id": pa.array(ids, type=pa.string())}
        for name, values in (columns or {}).items():
            if len(values) != n:
                raise StoreError(f"{modality} shard {index}: column {name!r} has {len(values)} values for {n} rows")
            kind = pa.string() if name in _STRING_COLUMNS else None
            data[name] = pa.array(list(values) if not isinstance(values, np.ndarray) else values, type=kind)
        data[EMBEDDING] = embedding_array(stored, self.meta.store_dtype)
        schema = pa.schema([pa.field(name, array.type, nullable=name != EMBEDDING) for name, array in data.items()])
        table = pa.Table.from_arrays(list(data.values()), schema=schema)
        table = table.replace_schema_metadata({META_KEY: json.dumps(self.meta.to_dict(), default=str).encode()})
        _write_table(shard_path(self.root, modality, index), table)
        entry = {
            "modality": modality,
            "index": int(index),
            "file": f"{modality}/{shard_path(self.root, modality, index).name}",
            "rows": n,
            "skipped": list(skipped or []),
        }
        with self._locked():
            manifest = self.manifest()
            manifest["shards"] = [
                s for s in manifest["shards"] if not (s["modality"] == modality and s["index"] == index)
            ]
            manifest["shards"].append(entry)
            self._write_manifest(manifest)
        return n

    def finalize(self, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        """Mark the store complete; ``summary`` (counts, timings) goes into the manifest."""
        with self._locked():
            manifest = self.manifest()
            manifest["shards"].sort(key=lambda s: (MODALITIES.index(s["modality"]), s["index"]))
            manifest["status"] = "complete"
            manifest["summary"] = dict(summary or {})
            self._write_manifest(manifest)
        return manifest


#: bytes of shards in flight in a :class:`ShardPool` (embeddings handed over and not yet on disk)
POOL_BYTES = 512 * 2**20


class ShardPool:
    """Write shards of one :class:`StoreWriter` from a few threads, in bounded memory.

    Parquet encoding of the embedding column is the slow part of writing a shard, and pyarrow runs it
    without the GIL: with ``threads`` writers the next shard is checked and read while earlier ones are
    encoded.  :meth:`submit` blocks while ``threads`` shards, or :data:`POOL_BYTES` of embeddings, are in
    flight (so memory is a few shards whatever the number of rows) and raises the first writer error as
    soon as it is seen.  Leaving the ``with`` block waits for every shard; on an exception inside it,
    shards not yet started are dropped and running ones finish before the exception goes on (the caller's
    temporary directory is then removed with nothing writing into it).

    Parameters
    ----------
    writer : StoreWriter
    threads : int, optional
        Writer threads; default ``min(4, cpu count)``.
    """

    def __init__(self, writer: StoreWriter, threads: int | None = None) -> None:
        self.writer = writer
        self.threads = max(1, int(threads if threads is not None else min(4, os.cpu_count() or 1)))
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="clipgeo-shard")
        self._futures: deque[tuple[Future, int]] = deque()

    def _wait_oldest(self) -> None:
        future, _ = self._futures.popleft()
        future.result()

    def submit(self, modality: str, index: int, embeddings: np.ndarray, **kwargs: Any) -> None:
        """Queue :meth:`StoreWriter.write_shard` (same arguments); ``embeddings`` must not change afterwards."""
        size = int(getattr(embeddings, "nbytes", 0))
        while self._futures and (len(self._futures) >= self.threads
                                 or sum(b for _, b in self._futures) + size > POOL_BYTES):
            self._wait_oldest()
        future = self._executor.submit(self.writer.write_shard, modality, index, embeddings, **kwargs)
        self._futures.append((future, size))

    def wait(self) -> None:
        """Block until every queued shard is written; raises the first error."""
        while self._futures:
            self._wait_oldest()

    def __enter__(self) -> ShardPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.wait()
            else:
                for future, _ in self._futures:
                    future.cancel()
        finally:
            self._executor.shutdown(wait=True)
            self._futures.clear()


def write_store(
    root: str | os.PathLike,
    meta: StoreMeta,
    *,
    image: np.ndarray | None = None,
    text: np.ndarray | None = None,
    image_ids: Sequence[str] | None = None,
    text_ids: Sequence[str] | None = None,
    image_paths: Sequence[str] | None = None,
    captions: Sequence[str] | None = None,
    text_image_ids: Sequence[str | None] | None = None,
    shard_rows: int = 65536,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write whole arrays as a complete store in one call.

    ``text_image_ids[j]`` is the id of the image that text row ``j`` describes
    (None for a text-only row).  Default ids are the row numbers as strings.
    """
    writer = StoreWriter(root, meta)
    for modality, emb in (("image", image), ("text", text)):
        if emb is None:
            continue
        n = len(emb)
        if modality == "image":
            ids = list(image_ids) if image_ids is not None else [str(i) for i in range(n)]
            cols = {"path": list(image_paths) if image_paths is not None else [""] * n}
        else:
            ids = list(text_ids) if text_ids is not None else [str(i) for i in range(n)]
            cols = {
                "image_id": list(text_image_ids) if text_image_ids is not None else [None] * n,
                "caption": list(captions) if captions is not None else [""] * n,
            }
        for index, start in enumerate(range(0, max(n, 1), shard_rows)):
            stop = min(start + shard_rows, n)
            writer.write_shard(
                modality,
                index,
                emb[start:stop],
                ids=ids[start:stop],
                columns={k: v[start:stop] for k, v in cols.items()},
            )
    writer.finalize(summary)
    return writer.root
