"""Reading a store: checked, vectorised, memory-frugal.

The embedding column is a ``fixed_size_list``; its flat child buffer is viewed
as numpy without a copy and written straight into one preallocated output array
(float16 -> float32 conversion happens there), so a store of N rows × d costs
the output array plus one shard, with no Python loop over rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import StoreError
from ._embedding_set import EmbeddingSet
from ._layout import EMBEDDING, MANIFEST, META_KEY, MODALITIES
from ._meta import StoreMeta
from ._writer import check_same_model, read_manifest_file


def read_manifest(root: str | os.PathLike, *, allow_incomplete: bool = False) -> dict[str, Any]:
    """Load and check ``manifest.json``; refuse a store that is still being written."""
    root = Path(root)
    if not root.exists():
        raise StoreError(f"no store at {root}; create one with `clipgeo import` or `clipgeo extract`")
    if not root.is_dir():
        raise StoreError(f"{root} is a file; a store is a directory written by `clipgeo import` or `clipgeo extract`")
    manifest = read_manifest_file(root)
    if manifest is None:
        raise StoreError(f"{root} has no {MANIFEST}, so it is not a clipgeo store (or its writing never started)")
    if manifest.get("status") != "complete" and not allow_incomplete:
        n = len(manifest.get("shards", []))
        raise StoreError(
            f"store {root} is incomplete (writing stopped after {n} shard(s)); re-run the command that wrote it "
            "to finish, or pass allow_incomplete=True to read the finished shards"
        )
    return manifest


def _check_shard(root: Path, entry: dict[str, Any], meta: StoreMeta) -> pq.ParquetFile:
    path = root / entry["file"]
    if not path.exists():
        raise StoreError(f"store {root} lists {entry['file']} but the file is missing; the store is damaged, write it again")
    try:
        handle = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(f"{path} is not a readable Parquet file ({exc}); the store is damaged, write it again") from None
    if handle.metadata.num_rows != entry["rows"]:
        raise StoreError(
            f"{path} has {handle.metadata.num_rows} rows but the manifest says {entry['rows']}; "
            "the store is inconsistent, write it again"
        )
    raw = (handle.schema_arrow.metadata or {}).get(META_KEY)
    if raw is not None:
        check_same_model(meta, StoreMeta.from_dict(json.loads(raw)), root)
    field = handle.schema_arrow.field(EMBEDDING)
    if not pa.types.is_fixed_size_list(field.type) or field.type.list_size != meta.dim:
        raise StoreError(f"{path}: embedding column is {field.type}, expected fixed_size_list of {meta.dim}")
    return handle


def _fill_embeddings(column: pa.ChunkedArray, out: np.ndarray, start: int) -> int:
    """Copy a fixed_size_list column into ``out[start:]`` chunk by chunk; returns rows copied."""
    d = out.shape[1]
    row = start
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0:
            continue
        if chunk.null_count:
            raise StoreError("embedding column has null rows; the store is damaged, write it again")
        flat = chunk.flatten().to_numpy(zero_copy_only=False)  # zero-copy for float16/32 without nulls
        out[row : row + n] = flat.reshape(n, d)
        row += n
    return row - start


def _read_modality(root: Path, entries: list[dict[str, Any]], meta: StoreMeta, dtype: np.dtype, columns: tuple[str, ...]):
    for entry in entries:  # check every shard before reading any
        _check_shard(root, entry, meta)
    total = sum(e["rows"] for e in entries)
    out = np.empty((total, meta.dim), dtype=dtype)
    extra: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    row = 0
    for entry in entries:
        path = root / entry["file"]
        present = [c for c in columns if c in pq.read_schema(path).names]
        table = pq.read_table(path, columns=[EMBEDDING, *present], memory_map=True)
        row += _fill_embeddings(table.column(EMBEDDING), out, row)
        for c in columns:
            if c in present:
                extra[c].append(table.column(c).to_numpy(zero_copy_only=False))
            else:
                extra[c].append(np.full(table.num_rows, None, dtype=object))
        del table
        pa.default_memory_pool().release_unused()  # give the shard's buffers back before the next one
    cols = {c: (np.concatenate(v) if v else np.empty(0, dtype=object)) for c, v in extra.items()}
    return out, cols


def read_store(
    root: str | os.PathLike,
    *,
    dtype: np.dtype | type = np.float32,
    allow_incomplete: bool = False,
) -> EmbeddingSet:
    """Read a store into an :class:`EmbeddingSet`.

    Parameters
    ----------
    root : path
        Store directory.
    dtype : numpy dtype, default float32
        dtype of the returned embedding arrays (float16 stores are widened).
    allow_incomplete : bool
        Read the finished shards of a store whose writing has not completed.

    Raises
    ------
    StoreError
        Missing, incomplete, inconsistent or mixed-model store.
    """
    root = Path(root)
    manifest = read_manifest(root, allow_incomplete=allow_incomplete)
    meta = StoreMeta.from_dict(manifest["meta"])
    dtype = np.dtype(dtype)
    by_modality = {
        m: sorted((s for s in manifest["shards"] if s["modality"] == m), key=lambda s: s["index"]) for m in MODALITIES
    }
    image, icols = _read_modality(root, by_modality["image"], meta, dtype, ("id", "path"))
    text, tcols = _read_modality(root, by_modality["text"], meta, dtype, ("id", "caption", "image_id"))

    image_ids = icols["id"].astype(str) if len(icols["id"]) else np.empty(0, dtype=str)
    text_ids = tcols["id"].astype(str) if len(tcols["id"]) else np.empty(0, dtype=str)
    text_image_index = np.full(len(text), -1, dtype=np.int64)
    if len(text) and len(image):
        import pandas as pd

        index = pd.Index(image_ids)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise StoreError(f"store {root} has duplicate image id {dup!r}; ids must be unique per modality")
        linked = tcols["image_id"]
        has = np.array([v is not None for v in linked], dtype=bool) if linked.dtype == object else np.ones(len(linked), bool)
        if has.any():
            found = index.get_indexer(linked[has].astype(str))
            if (found < 0).any():
                missing = linked[has][found < 0][0]
                raise StoreError(f"store {root}: a text row points at image id {missing!r}, which is not in the store")
            text_image_index[has] = found
    skipped = [dict(item, modality=s["modality"]) for s in manifest["shards"] for item in s.get("skipped", [])]
    return EmbeddingSet(
        image=image,
        text=text,
        image_ids=image_ids,
        text_ids=text_ids,
        image_paths=np.array(["" if p is None else p for p in icols["path"]], dtype=object),
        captions=np.array(["" if c is None else c for c in tcols["caption"]], dtype=object),
        text_image_index=text_image_index,
        meta=meta,
        skipped=skipped,
    )
