"""Importing embeddings shard by shard: bounded memory whatever the number of rows.

:func:`import_embeddings` (behind ``clipgeo import``) and
:func:`import_clip_retrieval` (``clipgeo import --clip-retrieval DIR``) read their inputs in row chunks
(:mod:`clipgeo.store._chunked`), check every chunk for NaN / inf as it comes, and write each chunk as a
store shard right away.  The store is built in a temporary sibling directory and renamed into place only
when every row was written (:func:`clipgeo._io.atomic_dir`), so a failure half-way leaves nothing.
Peak memory: one chunk of ``shard_rows`` rows (plus its Arrow copy), independent of N.

The metadata that depends on every row (``fingerprint``: SHA-256 of the rows as read, then the pairing;
``normalized``: every row unit-norm) is known only at the end; it is written into the manifest then.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_dir, write_text
from ..errors import InputError, StoreError
from ..provenance import provenance
from ..validation import finite_rows
from ._chunked import MatrixSource, open_matrix
from ._formats import StringChunks, load_pairs
from ._layout import MANIFEST
from ._meta import StoreMeta
from ._writer import ShardPool, StoreWriter, check_same_model, read_manifest_file

#: rows whose norms all lie within this distance of 1 count as unit-norm (float16 dumps need ~1e-3)
UNIT_TOLERANCE = 1e-2


def _rows(rows: np.ndarray, limit: int = 5) -> str:
    return ", ".join(str(int(r)) for r in rows[:limit]) + (", …" if len(rows) > limit else "")


class _ShardSink:
    """Checks each block of rows, hashes it, and writes it as the next shard of its modality."""

    def __init__(self, writer: StoreWriter, pool: ShardPool) -> None:
        self.writer = writer
        self.pool = pool
        self.digest = hashlib.sha256()
        self.unit = True
        self.next_index = {"image": 0, "text": 0}
        self.rows = {"image": 0, "text": 0}

    def write(self, modality: str, block: np.ndarray, start: int, what: str, ids, columns: dict[str, Any]) -> None:
        block = np.asarray(block)
        if not (np.issubdtype(block.dtype, np.floating) or np.issubdtype(block.dtype, np.integer)):
            raise InputError(f"{what} has dtype {block.dtype}; expected numbers (a float array of rows × dim)")
        if not np.issubdtype(block.dtype, np.floating):
            block = block.astype(np.float32)
        finite = finite_rows(block)
        if not finite.all():
            bad = np.flatnonzero(~finite) + start
            where = f" (checked rows {start}…{start + len(block) - 1} so far)" if start else ""
            raise InputError(f"{what} has {len(bad)} row(s) with NaN or inf (rows {_rows(bad)}){where}; "
                             "drop or recompute those rows")
        block = np.ascontiguousarray(block)
        self.digest.update(memoryview(block).cast("B"))  # no copy of the bytes
        if self.unit:
            norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
            self.unit = bool(len(norms) and np.all(np.abs(norms - 1.0) < UNIT_TOLERANCE))
        index = self.next_index[modality]
        self.pool.submit(modality, index, block, ids=ids, columns=columns)
        self.next_index[modality] = index + 1
        self.rows[modality] += len(block)


def _check_out(out: Path, meta: StoreMeta, overwrite: bool) -> None:
    if out.exists():
        if not out.is_dir():
            raise StoreError(f"{out} is a file, not a directory; choose a directory for the store")
        if any(out.iterdir()):
            manifest = read_manifest_file(out)
            if manifest is None:
                raise StoreError(f"{out} is not empty and holds no clipgeo store; choose an empty or new directory")
            check_same_model(StoreMeta.from_dict(manifest["meta"]), meta, out)
            if not overwrite:
                raise StoreError(f"{out} already holds a store of {meta.model_id}; pass overwrite=True to replace it")


def _write_atomically(out: Path, meta: StoreMeta, fill) -> Path:
    """Build the store in a temporary directory with ``fill(writer) -> (sink, summary)``, then move it to ``out``
    (a store already there is replaced whole, and kept if the new one cannot be moved in)."""
    with atomic_dir(out, replace=True) as tmp:
        writer = StoreWriter(tmp, meta)
        with ShardPool(writer) as pool:
            sink = _ShardSink(writer, pool)
            summary = fill(sink)
        manifest = writer.finalize(summary)
        # what depends on every row is known now: the manifest (the store's authority on its meta) gets it
        manifest["meta"] = _final_meta(meta, sink).to_dict()
        write_text(tmp / MANIFEST, json.dumps(manifest, indent=1, default=str) + "\n")
    return out


def _final_meta(meta: StoreMeta, sink: _ShardSink) -> StoreMeta:
    import dataclasses

    return dataclasses.replace(meta, fingerprint=sink.digest.hexdigest(), normalized=bool(sink.unit))


def _store_dtype(sources: list[MatrixSource], store_dtype: str | None) -> str:
    if store_dtype is not None:
        return store_dtype
    return "float16" if sources and all(s.dtype == np.float16 for s in sources) else "float32"


def import_embeddings(
    out: str | os.PathLike,
    *,
    image: Any = None,
    text: Any = None,
    pairs: Any = None,
    captions: Any = None,
    image_paths: Any = None,
    model_name: str = "unknown",
    pretrained: str | None = None,
    source: str | None = None,
    store_dtype: str | None = None,
    overwrite: bool = False,
    shard_rows: int = 65536,
) -> Path:
    """Write image and/or text embeddings (arrays or file specs) as a complete store, chunk by chunk.

    Row ``i`` of ``image`` pairs with row ``i`` of ``text`` unless ``pairs`` maps text rows to image rows
    (see :func:`clipgeo.store.load_pairs`).  The store is written into a temporary sibling directory and
    renamed into place, so a failure leaves ``out`` as it was.  ``store_dtype`` defaults to float16 when
    both inputs are float16, else float32.  The embeddings are read and written ``shard_rows`` rows at a
    time (memory stays at one shard whatever the number of rows; a NaN / inf row stops the import with
    nothing written); captions and image paths are counted first, then read a shard at a time too (a .json
    list is read whole); the pair map is read whole (8 bytes a text row).
    """
    out = Path(out)
    if image is None and text is None:
        raise InputError("nothing to import; pass image=FILE and/or text=FILE (or arrays)")
    if int(shard_rows) < 1:
        raise InputError(f"shard_rows must be at least 1, got {shard_rows}")
    srcs: dict[str, MatrixSource] = {}
    labels = []
    for name, spec in (("image", image), ("text", text)):
        if spec is not None:
            srcs[name] = open_matrix(spec, f"{name} embeddings")
            labels.append(f"{name}={'<array>' if isinstance(spec, np.ndarray) else spec}")
    dims = {m: s.shape[1] for m, s in srcs.items()}
    if len(set(dims.values())) > 1:
        raise InputError(f"image embeddings have dimension {dims['image']} but text embeddings {dims['text']}; "
                         "both modalities must come from the same model")
    dim = next(iter(dims.values()))
    if dim == 0:
        raise InputError(f"{next(iter(srcs.values())).what} has 0 columns; expected rows × dim with dim ≥ 1")
    n_img = srcs["image"].shape[0] if "image" in srcs else 0
    n_txt = srcs["text"].shape[0] if "text" in srcs else 0
    for s in srcs.values():
        if s.shape[0] == 0:
            raise InputError(f"{s.what} is empty (0 rows); give at least one embedding row")

    if "image" in srcs and "text" in srcs:
        if pairs is not None:
            index = np.asarray(pairs, np.int64) if isinstance(pairs, np.ndarray) else load_pairs(pairs, n_img, n_txt)
        elif n_img == n_txt:
            index = np.arange(n_txt)
        else:
            raise InputError(f"{n_img} image rows and {n_txt} text rows cannot pair row by row; "
                             "pass pairs=FILE mapping text rows to image rows (or an index array)")
        if len(index) != n_txt or (len(index) and (index.min() < -1 or index.max() >= n_img)):
            raise InputError(f"pairs must give one image row in [-1, {n_img}) per text row")
    else:
        index = np.full(n_txt, -1, dtype=np.int64)
    # counted now (a wrong count is refused before anything is written), read a shard at a time below
    caption_chunks = StringChunks(captions, "captions", n_txt) if captions is not None and "text" in srcs else None
    path_chunks = StringChunks(image_paths, "image paths", n_img) if image_paths is not None and "image" in srcs else None

    meta = StoreMeta(
        model=model_name, dim=dim, pretrained=pretrained, store_dtype=_store_dtype(list(srcs.values()), store_dtype),
        source=source or ", ".join(labels),
        **provenance({"import": {"image": "<array>" if isinstance(image, np.ndarray) else (None if image is None else str(image)),
                                 "text": "<array>" if isinstance(text, np.ndarray) else (None if text is None else str(text)),
                                 "pairs": None if pairs is None or isinstance(pairs, np.ndarray) else str(pairs)}}),
    )
    _check_out(out, meta, overwrite)

    def fill(sink: _ShardSink) -> dict[str, Any]:
        for name, src in srcs.items():
            for start, block in src.chunks(shard_rows):
                stop = start + len(block)
                ids = [str(i) for i in range(start, stop)]
                if name == "image":
                    cols = {"path": path_chunks.take(len(block)) if path_chunks is not None else [""] * len(block)}
                else:
                    link = index[start:stop]
                    cols = {"image_id": [str(i) if i >= 0 else None for i in link],
                            "caption": caption_chunks.take(len(block)) if caption_chunks is not None else [""] * len(block)}
                sink.write(name, block, start, src.what, ids, cols)
        sink.digest.update(np.ascontiguousarray(index).tobytes())
        return {"n_image": n_img, "n_text": n_txt, "n_pairs": int((index >= 0).sum())}

    return _write_atomically(out, meta, fill)


# -- clip-retrieval / embedding-reader folders ------------------------------------------------------

_SHARD = re.compile(r"_(\d+)\.(npy|parquet)$")


def _numbered(folder: Path, prefix: str, suffix: str) -> dict[int, Path]:
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = _SHARD.search(p.name)
            if p.name.startswith(prefix) and p.name.endswith(suffix) and m:
                out[int(m.group(1))] = p
    return out


def import_clip_retrieval(
    out: str | os.PathLike,
    folder: str | os.PathLike,
    *,
    model_name: str = "unknown",
    pretrained: str | None = None,
    store_dtype: str | None = None,
    overwrite: bool = False,
    shard_rows: int = 65536,
) -> Path:
    """Convert clip-retrieval / embedding-reader output into a store, shard by shard.

    Layout: ``img_emb/img_emb_{k}.npy`` and ``text_emb/text_emb_{k}.npy`` (row i of shard k of one is the
    pair of row i of shard k of the other), and optionally ``metadata/metadata_{k}.parquet`` (``caption``,
    ``url`` or ``image_path`` columns).  Ids are the global row numbers.  LAION's published embeddings are
    unit-norm float16: the store is then marked ``normalized`` and ``clipgeo info`` warns.

    Raises
    ------
    InputError
        Missing folders, different shard numbers between the modalities (or the metadata), shards whose
        row counts differ between image and text, or a dimension that changes between shards.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder='{folder}' is not a directory; give the folder holding img_emb/ and text_emb/")
    img = _numbered(folder / "img_emb", "img_emb_", ".npy")
    txt = _numbered(folder / "text_emb", "text_emb_", ".npy")
    meta_files = _numbered(folder / "metadata", "metadata_", ".parquet")
    if not img and not txt:
        raise InputError(f"{folder} has no img_emb/img_emb_*.npy nor text_emb/text_emb_*.npy; is it clip-retrieval output?")
    if img and txt and set(img) != set(txt):
        only = sorted(set(img) ^ set(txt))
        raise InputError(f"{folder}: img_emb/ has {len(img)} shard(s) and text_emb/ {len(txt)}, differing at shard "
                         f"{only[0]}; both must hold the same shards")
    keys = sorted(img or txt)
    if meta_files and set(meta_files) != set(keys):
        only = sorted(set(meta_files) ^ set(keys))
        raise InputError(f"{folder}: metadata/ has {len(meta_files)} shard(s) but the embeddings {len(keys)}, "
                         f"differing at shard {only[0]}; give one metadata file per embedding shard")
    sources = {"image": {k: open_matrix(img[k], "image embeddings") for k in keys} if img else {},
               "text": {k: open_matrix(txt[k], "text embeddings") for k in keys} if txt else {}}
    dim = None
    for shards in sources.values():
        for s in shards.values():
            if dim is None:
                dim = s.shape[1]
            elif s.shape[1] != dim:
                raise InputError(f"{s.what} has dimension {s.shape[1]} but the other shards {dim}; "
                                 "every shard must come from the same model")
    if img and txt:
        for k in keys:
            a, b = sources["image"][k].shape[0], sources["text"][k].shape[0]
            if a != b:
                raise InputError(f"{folder}: shard {k} has {a} image rows but {b} text rows; the pairs of a shard "
                                 "must line up row by row")
    labels = {}
    if meta_files:
        import pyarrow.parquet as pq

        for k in keys:
            rows = pq.ParquetFile(meta_files[k]).metadata.num_rows
            n = (sources["image"] or sources["text"])[k].shape[0]
            if rows != n:
                raise InputError(f"{meta_files[k]} has {rows} rows but its embedding shard {n}; one metadata row per embedding")
            labels[k] = meta_files[k]
    all_sources = [s for shards in sources.values() for s in shards.values()]
    meta = StoreMeta(model=model_name, dim=int(dim), pretrained=pretrained,
                     store_dtype=_store_dtype(all_sources, store_dtype), source=f"clip-retrieval folder {folder}",
                     **provenance({"import": {"clip_retrieval": str(folder), "shards": len(keys)}}))
    _check_out(Path(out), meta, overwrite)

    def metadata(k: int, column_options: tuple[str, ...]) -> list | None:
        if k not in labels:
            return None
        import pyarrow.parquet as pq

        names = pq.read_schema(labels[k]).names
        col = next((c for c in column_options if c in names), None)
        if col is None:
            return None
        values = pq.read_table(labels[k], columns=[col]).column(col).to_pylist()
        return ["" if v is None else str(v) for v in values]

    def fill(sink: _ShardSink) -> dict[str, Any]:
        offset = 0
        for k in keys:
            captions = metadata(k, ("caption", "text", "TEXT"))
            paths = metadata(k, ("image_path", "url", "URL"))
            n = 0
            for m in ("image", "text"):
                src = sources[m].get(k)
                if src is None:
                    continue
                for start, block in src.chunks(shard_rows):
                    stop = start + len(block)
                    ids = [str(offset + i) for i in range(start, stop)]
                    if m == "image":
                        cols = {"path": paths[start:stop] if paths else [""] * len(block)}
                    else:
                        cols = {"image_id": ids if img else [None] * len(block),
                                "caption": captions[start:stop] if captions else [""] * len(block)}
                    sink.write(m, block, offset + start, src.what, ids, cols)
                n = src.shape[0]
            offset += n
        n_img, n_txt = sink.rows["image"], sink.rows["text"]
        return {"n_image": n_img, "n_text": n_txt, "n_pairs": n_txt if img and txt else 0}

    return _write_atomically(Path(out), meta, fill)
