"""The per-shard work of a streamed analysis: plain functions of (store, shards) -> mergeable statistics.

Each function here reads a few shards through :mod:`clipgeo.store._iter` and
returns an accumulator of :mod:`clipgeo.stream._moments`; none of them knows
about Dask (the engine, :mod:`clipgeo.stream._engine`, ships them to workers)
and each can run anywhere the store is readable.  Memory per call: a batch of
rows in float64, plus -- for a text shard with matched pairs -- the embeddings
of that text shard and of one image shard at a time, in the store dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._order import first_distinct
from ..errors import StoreError
from ..store._iter import ShardInfo, StoreShards
from ._histogram import FeatureHistograms
from ._moments import CentredMoments, ModalityMoments, PairSums, Scratch, widen
from ._sample import keep, row_keys, smallest_keys

EMBEDDING = "embedding"


# -- pass 1 ----------------------------------------------------------------------------------------


def first_pass(store: StoreShards, shards: list[ShardInfo], batch_rows: int, unit_covariance: bool = False) -> ModalityMoments:
    """:class:`ModalityMoments` of the given shards (all of one modality)."""
    total = ModalityMoments.empty(store.meta.dim, unit_covariance=unit_covariance)
    scratch = Scratch()  # one float64 batch array for the whole task
    for shard in shards:
        for batch in store.read(shard, (EMBEDDING,), batch_rows=batch_rows):
            total = total.merge(ModalityMoments.from_batch(batch.embedding, unit_covariance=unit_covariance,
                                                           scratch=scratch))
    return total


# -- the image_id join (ids only: no embedding is read) ---------------------------------------------


def _hash(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return pd.util.hash_array(np.asarray(values, dtype=object).astype(str).astype(object), categorize=False).astype(np.uint64)


def id_buckets(store: StoreShards, shards: list[ShardInfo], n_buckets: int) -> list[tuple[np.ndarray, ...]]:
    """Hash-partition the join keys of some shards: image ``id``, or text ``image_id`` (unpaired rows dropped).

    Returns
    -------
    list of n_buckets tuples (hash uint64, shard int64, row int64)
        ``row`` is the row inside its shard.
    """
    column = "id" if shards and shards[0].modality == "image" else "image_id"
    hashes, shard_ix, rows = [], [], []
    for shard in shards:
        start = 0
        for batch in store.read(shard, (column,), batch_rows=1 << 20):
            values = batch.columns[column]
            n = len(values)
            local = np.arange(start, start + n, dtype=np.int64)
            start += n
            if column == "image_id":
                has = np.array([v is not None for v in values], dtype=bool)
                values, local = values[has], local[has]
            hashes.append(_hash(values))
            shard_ix.append(np.full(len(local), shard.index, dtype=np.int64))
            rows.append(local)
    h = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    s = np.concatenate(shard_ix) if shard_ix else np.empty(0, np.int64)
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    bucket = (h % np.uint64(n_buckets)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(n_buckets + 1))
    return [tuple(a[order[bounds[b]:bounds[b + 1]]] for a in (h, s, r)) for b in range(n_buckets)]


def join_bucket(store_url: str, image_parts: list[tuple], text_parts: list[tuple]) -> dict[int, np.ndarray]:
    """Match one bucket's text rows to image rows on the hashed id.

    Returns
    -------
    dict of text shard index -> int64 array of shape (k, 3)
        Columns: text row (in its shard), image shard index, image row (in its shard).
    """
    ih = np.concatenate([p[0] for p in image_parts]) if image_parts else np.empty(0, np.uint64)
    ishard = np.concatenate([p[1] for p in image_parts]) if image_parts else np.empty(0, np.int64)
    irow = np.concatenate([p[2] for p in image_parts]) if image_parts else np.empty(0, np.int64)
    order = np.argsort(ih, kind="stable")
    ih, ishard, irow = ih[order], ishard[order], irow[order]
    if len(ih) > 1 and (ih[1:] == ih[:-1]).any():
        k = int(np.flatnonzero(ih[1:] == ih[:-1])[0])
        raise StoreError(f"store {store_url} has duplicate image ids (image shard {ishard[k]} row {irow[k]} and "
                         f"shard {ishard[k + 1]} row {irow[k + 1]}); ids must be unique per modality")
    out: dict[int, list[np.ndarray]] = {}
    for th, tshard, trow in text_parts:
        if not len(th):
            continue
        pos = np.searchsorted(ih, th)
        found = (pos < len(ih)) & (ih[np.minimum(pos, max(len(ih) - 1, 0))] == th) if len(ih) else np.zeros(len(th), bool)
        if not found.all():
            k = int(np.flatnonzero(~found)[0])
            raise StoreError(f"store {store_url}: text shard {tshard[k]} row {trow[k]} points at an image id that is not "
                             "in the store; write the store again with matching ids")
        for j in np.unique(tshard):
            sel = tshard == j
            out.setdefault(int(j), []).append(np.stack([trow[sel], ishard[pos[sel]], irow[pos[sel]]], axis=1))
    return {j: np.concatenate(v) for j, v in out.items()}


def pairs_of_text_shard(parts: list[dict[int, np.ndarray]], text_shard: int) -> np.ndarray:
    """The matched pairs of one text shard, (k, 3) sorted by text row (see :func:`join_bucket`)."""
    pieces = [p[text_shard] for p in parts if text_shard in p]
    if not pieces:
        return np.empty((0, 3), dtype=np.int64)
    pairs = np.concatenate(pieces)
    return pairs[np.argsort(pairs[:, 0], kind="stable")]


def pair_summary(pairs: np.ndarray, text_offset: int, seed: int, size: int) -> dict[str, Any]:
    """What the planner needs of one text shard's pairs: count, image shards used, smallest sample keys."""
    keys = row_keys(text_offset + pairs[:, 0], seed, "pair")
    return {"n": len(pairs), "image_shards": sorted({int(i) for i in np.unique(pairs[:, 1])}),
            "keys": smallest_keys(keys, size)}


# -- pass 2 ----------------------------------------------------------------------------------------


@dataclass
class Extremes:
    """The k highest and k lowest conformity rows seen so far, with their id and caption / path.

    Order as the in-memory report: highest first (ties: lower row first), lowest first (ties: higher row first);
    and, as there, an exact duplicate (a caption or path already listed higher in the same order) is skipped
    -- rows without a label are never duplicates.
    """

    k: int
    values: np.ndarray = field(default_factory=lambda: np.empty(0))
    rows: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, object))
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, object))

    def _orders(self) -> tuple[np.ndarray, np.ndarray]:
        return np.lexsort((self.rows, -self.values)), np.lexsort((-self.rows, self.values))

    def _select(self) -> Extremes:
        top, bottom = (_first_distinct(o, self.labels, self.rows, self.k) for o in self._orders())
        keep_ = np.unique(np.r_[top, bottom]).astype(np.int64)
        return Extremes(self.k, self.values[keep_], self.rows[keep_], self.ids[keep_], self.labels[keep_])

    @classmethod
    def from_batch(cls, k: int, values, rows, ids, labels) -> Extremes:
        return cls(k, np.asarray(values, np.float64), np.asarray(rows, np.int64), np.asarray(ids, object),
                   np.asarray(labels, object))._select()

    def merge(self, other: Extremes) -> Extremes:
        return Extremes(self.k, np.r_[self.values, other.values], np.r_[self.rows, other.rows],
                        np.r_[self.ids, other.ids], np.r_[self.labels, other.labels])._select()

    def top(self) -> list[int]:
        return [int(i) for i in _first_distinct(self._orders()[0], self.labels, self.rows, self.k)]

    def bottom(self) -> list[int]:
        return [int(i) for i in _first_distinct(self._orders()[1], self.labels, self.rows, self.k)]


def _first_distinct(order: np.ndarray, labels: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` positions of ``order`` whose label was not seen before (no label: always new)."""
    keys = [("row", int(r)) if label is None or str(label) == "" else str(label) for label, r in zip(labels, rows, strict=True)]
    return first_distinct(order, keys, k)


@dataclass
class RowSample:
    """Sampled rows with their keys; ``arrays`` share the first axis (merge = concatenate)."""

    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def merge(self, other: RowSample) -> RowSample:
        if not len(other.keys):
            return self
        if not len(self.keys):
            return other
        return RowSample(np.r_[self.keys, other.keys], {k: np.concatenate([v, other.arrays[k]]) for k, v in self.arrays.items()})

    @classmethod
    def concat_sorted(cls, pieces: list[RowSample], by: str) -> RowSample:
        """One sample of several pieces, its rows in the order of ``arrays[by]`` (global row indices; stable),
        whatever the task split.

        Each array is written straight to its place in the result, and each piece's array is dropped once
        it is placed: memory peaks at the pieces plus one result array, not at two copies of the sample.
        The pieces are emptied.
        """
        pieces = [p for p in pieces if len(p.keys)]
        if not pieces:
            return cls()
        order = np.argsort(np.concatenate([p.arrays[by] for p in pieces]), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))  # where each row of the concatenated pieces goes
        bounds = np.cumsum([0] + [len(p.keys) for p in pieces])
        keys = np.empty(len(order), pieces[0].keys.dtype)
        arrays: dict[str, np.ndarray] = {}
        for name in ("keys", *pieces[0].arrays):
            first = pieces[0].keys if name == "keys" else pieces[0].arrays[name]
            out = keys if name == "keys" else np.empty((len(order), *first.shape[1:]), first.dtype)
            for i, p in enumerate(pieces):
                part = p.keys if name == "keys" else p.arrays.pop(name)
                out[rank[bounds[i]:bounds[i + 1]]] = part
                del part
            if name != "keys":
                arrays[name] = out
        return cls(keys, arrays)

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class SecondPass:
    """Second-pass statistics of some shards: per modality centred moments, histograms, extremes, samples."""

    centred: dict[str, CentredMoments]
    histograms: dict[str, FeatureHistograms]
    extremes: dict[str, Extremes]
    samples: dict[str, RowSample]
    pairs: PairSums
    pair_sample: RowSample

    def samples_only(self) -> tuple[RowSample, dict[str, RowSample]]:
        """The sampled rows (pairs, and rows per modality) of this part."""
        return self.pair_sample, self.samples

    def without_samples(self) -> SecondPass:
        """This part without its sampled rows (what the engine merges in a tree)."""
        return SecondPass(self.centred, self.histograms, self.extremes, {}, self.pairs, RowSample())

    def merge(self, other: SecondPass) -> SecondPass:
        def both(a: dict, b: dict) -> dict:
            out = dict(a)
            for k, v in b.items():
                out[k] = out[k].merge(v) if k in out else v
            return out

        return SecondPass(both(self.centred, other.centred), both(self.histograms, other.histograms),
                          both(self.extremes, other.extremes), both(self.samples, other.samples),
                          self.pairs.merge(other.pairs), self.pair_sample.merge(other.pair_sample))


@dataclass(frozen=True)
class Unit:
    """Shards read together in the second pass: an image shard, a text shard, or both (their pairs)."""

    image: ShardInfo | None
    text: ShardInfo | None


@dataclass(frozen=True)
class PassTwoConfig:
    batch_rows: int
    seed: int
    n_extremes: int
    lo: np.ndarray
    hi: np.ndarray
    bins: int
    modality_cutoff: dict  # modality -> uint64 cutoff or None; absent: no per-modality sample
    pair_cutoff: Any  # uint64 or None (keep all); unused without pairs


def _strings(column, index: np.ndarray) -> np.ndarray:
    """The values at ``index`` of a pyarrow string column, as an object array of str / None."""
    if not len(index):
        return np.empty(0, dtype=object)
    return column.take(np.asarray(index, dtype=np.int64)).to_numpy(zero_copy_only=False)


def _concat(columns: list):
    import pyarrow as pa

    return pa.concat_arrays(columns) if columns else pa.array([], pa.string())


def _extreme_candidates(k: int, values: np.ndarray, rows: np.ndarray, labels) -> np.ndarray:
    """Positions of a batch's k highest and k lowest rows of distinct label (the orders of :class:`Extremes`).

    Labels (a pyarrow column) are fetched only for the head of each order, 4k rows at first and twice
    as many until k distinct ones are found.
    """
    picked = []
    for order in (np.lexsort((rows, -values)), np.lexsort((-rows, values))):
        size = 4 * k
        while True:
            head = order[:size]
            chosen = _first_distinct(np.arange(len(head)), _strings(labels, head), rows[head], k)
            if len(chosen) == k or size >= len(order):
                picked.append(head[chosen])
                break
            size *= 2
    return np.unique(np.concatenate(picked)) if picked else np.empty(0, np.int64)


def _modality_batch(batch, first: ModalityMoments, cfg: PassTwoConfig, out: SecondPass, scratch: Scratch) -> None:
    """Second-pass statistics of one batch of one modality, added to ``out``."""
    m = batch.modality
    label_col = "path" if m == "image" else "caption"
    x = batch.embedding
    x64 = widen(x, scratch)  # one conversion for the histograms and the moments
    rows = np.arange(batch.offset, batch.offset + len(x), dtype=np.int64)
    # float32 of the float64 values = float32 of the stored ones (float16/32 widen exactly)
    out.histograms.setdefault(m, FeatureHistograms.empty(cfg.lo, cfg.hi, cfg.bins)).add(x64)
    part, values = CentredMoments.from_batch_with_values(x64, first, overwrite=True)  # x64 is centred: spent
    out.centred[m] = out.centred[m].merge(part) if m in out.centred else part
    ids, labels = batch.columns["id"], batch.columns[label_col]
    c = _extreme_candidates(cfg.n_extremes, values, rows, labels)
    ext = Extremes.from_batch(cfg.n_extremes, values[c], rows[c], _strings(ids, c), _strings(labels, c))
    out.extremes[m] = out.extremes[m].merge(ext) if m in out.extremes else ext
    if m in cfg.modality_cutoff:
        keys = row_keys(rows, cfg.seed, m)
        sel = np.flatnonzero(keep(keys, cfg.modality_cutoff[m]))
        if len(sel):
            piece = RowSample(keys[sel], {"x": np.array(x[sel]), "row": rows[sel], "id": _strings(ids, sel),
                                          "label": _strings(labels, sel)})
            out.samples[m] = out.samples[m].merge(piece) if m in out.samples else piece


def _columns(modality: str) -> tuple[str, ...]:
    return (EMBEDDING, "id", "path") if modality == "image" else (EMBEDDING, "id", "caption", "image_id")


def _modality_pass(store: StoreShards, shard: ShardInfo, first: ModalityMoments, cfg: PassTwoConfig, out: SecondPass,
                   keep_rows: bool, scratch: Scratch):
    """Second pass over one shard; returns (embeddings, ids, image_ids, labels) of the whole shard when
    ``keep_rows`` (the string columns as pyarrow arrays: only the rows a caller takes become Python strings)."""
    m = shard.modality
    label_col = "path" if m == "image" else "caption"
    kept, kept_ids, kept_links, kept_labels = [], [], [], []
    for batch in store.read(shard, _columns(m), batch_rows=cfg.batch_rows, arrow_columns=True):
        _modality_batch(batch, first, cfg, out, scratch)
        if keep_rows:
            kept.append(np.array(batch.embedding))
            kept_ids.append(batch.columns["id"])
            kept_labels.append(batch.columns[label_col])
            if m == "text":
                kept_links.append(batch.columns["image_id"])
    if not keep_rows:
        return None
    emb = np.concatenate(kept) if kept else np.empty((0, store.meta.dim), np.float32)
    links = _concat(kept_links) if m == "text" else None
    return emb, _concat(kept_ids), links, _concat(kept_labels)


def _row_for_row(unit: Unit, matched: np.ndarray) -> bool:
    """Is text row r of ``unit.text`` matched with image row r of ``unit.image``, for every row of both?

    What ``clipgeo import`` / ``extract`` / ``simulate`` write for one caption per image: the two shards can
    then be read in step, a batch of each at a time.
    """
    if unit.image is None or unit.text is None or not (len(matched) == unit.text.rows == unit.image.rows):
        return False
    r = np.arange(len(matched))
    return bool((matched[:, 0] == r).all() and (matched[:, 1] == unit.image.index).all() and (matched[:, 2] == r).all())


def _cut(batch, start: int, stop: int):
    """Rows ``start:stop`` of a batch (string columns as pyarrow arrays)."""
    if start == 0 and stop == len(batch):
        return batch
    return type(batch)(batch.modality, batch.shard, batch.offset + start, batch.embedding[start:stop],
                       {c: col.slice(start, stop - start) for c, col in batch.columns.items()})


def _in_step(images, texts, url: str):
    """Equally long (image batch, text batch) pairs from two shards read row for row.

    The two readers may cut their batches differently (row groups); a shard that ends before the other means
    the store changed under the analysis.
    """
    images, texts = iter(images), iter(texts)
    a = b = None
    while True:
        a = a if a is not None and len(a) else next(images, None)
        b = b if b is not None and len(b) else next(texts, None)
        if a is None or b is None:
            if a is not None or b is not None:
                raise StoreError(f"store {url} changed during the analysis (an image shard and its text shard no "
                                 "longer have the same rows); write the store again")
            return
        n = min(len(a), len(b))
        if n:
            yield _cut(a, 0, n), _cut(b, 0, n)
        a, b = _cut(a, n, len(a)), _cut(b, n, len(b))


def _pair_piece(keys: np.ndarray, image_at: np.ndarray, text_at: np.ndarray, image: tuple, text: tuple) -> RowSample:
    """Sampled pairs: image row ``image_at[k]`` with text row ``text_at[k]`` (rows of the arrays given), keys ``keys``.

    ``image`` is (embeddings, ids, paths, global row of the arrays' first row), ``text`` (embeddings, ids,
    captions, global row of the first row).
    """
    img, img_ids, paths, image_offset = image
    txt, txt_ids, captions, text_offset = text
    return RowSample(keys, {
        "image": img[image_at], "text": txt[text_at],
        "image_id": _strings(img_ids, image_at), "path": _strings(paths, image_at),
        "text_id": _strings(txt_ids, text_at), "caption": _strings(captions, text_at),
        "image_row": image_offset + image_at, "text_row": text_offset + text_at,
    })


def _fused_pass(store: StoreShards, unit: Unit, first: dict[str, ModalityMoments], cfg: PassTwoConfig,
                out: SecondPass, scratch: Scratch) -> None:
    """Second pass over an image shard and its text shard matched row for row (:func:`_row_for_row`).

    Both shards are read in step: each batch's statistics, pair sums and sampled pairs are taken at once, so
    neither shard is held whole.
    """
    images = store.read(unit.image, _columns("image"), batch_rows=cfg.batch_rows, arrow_columns=True)
    texts = store.read(unit.text, _columns("text"), batch_rows=cfg.batch_rows, arrow_columns=True)
    for ib, tb in _in_step(images, texts, store.url):
        if not _same_strings(ib.columns["id"], tb.columns["image_id"]):
            raise StoreError(f"store {store.url} changed during the analysis (image ids moved in image shard "
                             f"{unit.image.index}); re-run on a store that is not being written")
        _modality_batch(ib, first["image"], cfg, out, scratch)
        _modality_batch(tb, first["text"], cfg, out, scratch)
        out.pairs = out.pairs.merge(PairSums.from_batch(ib.embedding, tb.embedding, scratch=scratch))
        text_rows = np.arange(tb.offset, tb.offset + len(tb), dtype=np.int64)
        keys = row_keys(text_rows, cfg.seed, "pair")
        take = np.flatnonzero(keep(keys, cfg.pair_cutoff))
        if len(take):
            out.pair_sample = out.pair_sample.merge(_pair_piece(
                keys[take], take, take, (ib.embedding, ib.columns["id"], ib.columns["path"], ib.offset),
                (tb.embedding, tb.columns["id"], tb.columns["caption"], tb.offset)))


def _read_whole(store: StoreShards, shard: ShardInfo, batch_rows: int) -> tuple[Any, ...]:
    embs, ids, paths = [], [], []
    for batch in store.read(shard, (EMBEDDING, "id", "path"), batch_rows=batch_rows, arrow_columns=True):
        embs.append(np.array(batch.embedding))
        ids.append(batch.columns["id"])
        paths.append(batch.columns["path"])
    return (np.concatenate(embs) if embs else np.empty((0, store.meta.dim), np.float32), _concat(ids), None,
            _concat(paths))


def _same_strings(a, b) -> bool:
    import pyarrow as pa

    return a.cast(pa.string()).equals(b.cast(pa.string()))


def second_pass(
    store: StoreShards,
    units: list[Unit],
    first: dict[str, ModalityMoments],
    pairs: dict[int, np.ndarray],
    cfg: PassTwoConfig,
) -> SecondPass:
    """Second pass over some units (see :class:`Unit`); ``pairs[j]`` are text shard j's matches (k, 3)."""
    out = SecondPass({}, {}, {}, {}, PairSums(), RowSample())
    scratch = Scratch()  # the float64 batch arrays, reused by every batch of the task
    image_by_index = {s.index: s for s in store.shards.get("image", [])}
    for unit in units:
        matched = pairs.get(unit.text.index, np.empty((0, 3), np.int64)) if unit.text is not None else None
        if matched is not None and _row_for_row(unit, matched):
            _fused_pass(store, unit, first, cfg, out, scratch)
            continue
        fused = None
        if unit.image is not None:
            fused = _modality_pass(store, unit.image, first["image"], cfg, out, unit.text is not None, scratch)
        if unit.text is None:
            continue
        text_rows = _modality_pass(store, unit.text, first["text"], cfg, out, len(matched) > 0, scratch)
        if not len(matched):
            continue
        txt, txt_ids, links, captions = text_rows
        for i in np.unique(matched[:, 1]):
            if unit.image is not None and int(i) == unit.image.index:
                img, img_ids, _, paths = fused
            else:
                img, img_ids, _, paths = _read_whole(store, image_by_index[int(i)], cfg.batch_rows)
            sel = matched[matched[:, 1] == i]
            t_rows, i_rows = sel[:, 0], sel[:, 2]
            if len(img) and (i_rows.max() >= len(img)):
                raise StoreError(f"store {store.url} changed during the analysis: image shard {int(i)} is shorter "
                                 "than when the ids were read; write the store again")
            if not _same_strings(img_ids.take(i_rows), links.take(t_rows)):
                raise StoreError(f"store {store.url} changed during the analysis (image ids moved in image shard {int(i)}); "
                                 "re-run on a store that is not being written")
            for start in range(0, len(sel), cfg.batch_rows):
                stop = start + cfg.batch_rows
                out.pairs = out.pairs.merge(PairSums.from_batch(img[i_rows[start:stop]], txt[t_rows[start:stop]],
                                                                scratch=scratch))
            keys = row_keys(unit.text.offset + t_rows, cfg.seed, "pair")
            take = keep(keys, cfg.pair_cutoff)
            if take.any():
                out.pair_sample = out.pair_sample.merge(_pair_piece(
                    keys[take], i_rows[take], t_rows[take],
                    (img, img_ids, paths, image_by_index[int(i)].offset), (txt, txt_ids, captions, unit.text.offset)))
    return out
