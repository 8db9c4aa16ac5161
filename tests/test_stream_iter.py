"""cg.iter_store: shards as numpy batches, local paths and fsspec URLs (file://, memory://)."""

from __future__ import annotations

import numpy as np
import pytest

from clipgeo.errors import InputError, StoreError
from clipgeo.store import StoreMeta, read_store, write_store
from clipgeo.store._iter import iter_store, open_store


@pytest.fixture
def store(tmp_path, rng):
    img = rng.normal(size=(250, 8)).astype(np.float32)
    txt = rng.normal(size=(250, 8)).astype(np.float32)
    path = tmp_path / "store"
    write_store(path, StoreMeta(model="m", dim=8), image=img, text=txt, captions=[f"c{i}" for i in range(250)],
                text_image_ids=[str(i) for i in range(250)], shard_rows=100)
    return path


def _collect(batches):
    out = {"image": [], "text": []}
    for b in batches:
        out[b.modality].append(b)
    return out


def test_iter_store_matches_read_store_batch_by_batch(store):
    es = read_store(store)
    got = _collect(iter_store(store, columns=("embedding", "id", "caption"), batch_rows=30))
    for m, full in (("image", es.image), ("text", es.text)):
        batches = got[m]
        assert all(len(b) <= 30 for b in batches)
        np.testing.assert_array_equal(np.concatenate([b.embedding for b in batches]), full)
        offsets = [b.offset for b in batches]
        assert offsets == sorted(offsets) and offsets[0] == 0
        for b in batches:  # a batch never spans two shards: shards hold 100 rows
            assert b.offset // 100 == (b.offset + len(b) - 1) // 100 == b.shard
    captions = np.concatenate([b.columns["caption"] for b in got["text"]])
    assert list(captions[:3]) == ["c0", "c1", "c2"]
    assert all(c is None for b in got["image"] for c in b.columns["caption"])  # images have no caption column


def test_iter_store_file_and_memory_urls(store):
    import fsspec

    local = np.concatenate([b.embedding for b in iter_store(store, modality="text")])
    via_file = np.concatenate([b.embedding for b in iter_store(f"file://{store}", modality="text", batch_rows=64)])
    np.testing.assert_array_equal(via_file, local)
    mem = fsspec.filesystem("memory")
    for path in store.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            mem.pipe(f"/cg-iter/{path.relative_to(store)}", path.read_bytes())
    via_memory = np.concatenate([b.embedding for b in iter_store("memory://cg-iter", modality="text", batch_rows=77)])
    np.testing.assert_array_equal(via_memory, local)
    assert open_store("memory://cg-iter").rows("image") == 250


def test_iter_store_bad_input(store, tmp_path):
    with pytest.raises(InputError, match="unknown store column"):
        next(iter_store(store, columns=("embedding", "nope")))
    with pytest.raises(InputError, match="batch_rows"):
        next(iter_store(store, batch_rows=0))
    with pytest.raises(StoreError, match="no store"):
        next(iter_store(tmp_path / "missing"))
    (store / "text" / "part-000001.parquet").unlink()
    it = iter_store(store, modality="text")
    next(it)  # shard 0 is fine
    with pytest.raises(StoreError, match="part-000001.parquet is missing"):
        list(it)


def test_truncated_shard_is_a_one_line_error(store):
    shard = store / "image" / "part-000000.parquet"
    shard.write_bytes(shard.read_bytes()[:200])
    with pytest.raises(StoreError, match="not readable Parquet") as info:
        list(iter_store(store, modality="image"))
    assert "\n" not in str(info.value)
