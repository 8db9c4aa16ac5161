"""The Parquet embedding store: round trips, pairing, atomicity, consistency, mixing."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from clipgeo.errors import InputError, StoreError
from clipgeo.store import (
    StoreMeta,
    StoreWriter,
    import_embeddings,
    read_manifest,
    read_store,
    status,
    summary,
    write_store,
)


def meta(dim=8, model="m", dtype="float32", **kw):
    return StoreMeta(model=model, dim=dim, store_dtype=dtype, **kw)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip(tmp_path, rng, dtype):
    img = rng.normal(size=(50, 8)).astype(np.float32) * 3 + 1
    txt = rng.normal(size=(70, 8)).astype(np.float32)
    link = [str(i % 50) for i in range(70)]
    write_store(tmp_path / "s", meta(dtype=dtype), image=img, text=txt, text_image_ids=link,
                captions=[f"c{i}" for i in range(70)], image_paths=[f"p{i}.jpg" for i in range(50)], shard_rows=16)
    es = read_store(tmp_path / "s")
    assert es.image.dtype == np.float32 and es.text.dtype == np.float32
    expect_img = img.astype(dtype).astype(np.float32)
    np.testing.assert_array_equal(es.image, expect_img)  # exact: the only rounding is the stored dtype
    np.testing.assert_array_equal(es.text, txt.astype(dtype).astype(np.float32))
    assert list(es.captions[:3]) == ["c0", "c1", "c2"] and es.image_paths[49] == "p49.jpg"
    np.testing.assert_array_equal(es.text_image_index, np.arange(70) % 50)
    assert es.n_pairs == 70 and es.meta.store_dtype == dtype
    a, b = es.paired_arrays()
    np.testing.assert_array_equal(a[51], es.image[1])
    manifest = read_manifest(tmp_path / "s")
    assert [s["rows"] for s in manifest["shards"] if s["modality"] == "image"] == [16, 16, 16, 2]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_embedding_column_is_non_null_and_older_nullable_shards_still_read(tmp_path, rng, dtype):
    """Shards declare the vectors non-null (no definition levels to decode); a shard written with the older
    nullable column reads the same, in memory and streamed."""
    import pyarrow as pa

    from clipgeo.store import iter_store

    img = rng.normal(size=(40, 8)).astype(np.float32)
    write_store(tmp_path / "s", meta(dtype=dtype), image=img, shard_rows=16)
    path = sorted((tmp_path / "s" / "image").glob("part-*.parquet"))[0]
    handle = pq.ParquetFile(path)
    field = handle.schema_arrow.field("embedding")
    assert not field.nullable and not field.type.value_field.nullable
    column = [handle.schema.column(i) for i in range(handle.metadata.num_columns)
              if handle.schema.column(i).path.startswith("embedding")][0]
    assert column.max_definition_level == 1  # only the list's own level: no null list, no null value

    before = read_store(tmp_path / "s").image
    table = pq.read_table(path)
    old = pa.Table.from_arrays(  # the same rows, as earlier versions wrote them: nullable list and values
        [table.column(n) if n != "embedding" else
         pa.FixedSizeListArray.from_arrays(table.column(n).combine_chunks().flatten(), 8) for n in table.column_names],
        names=table.column_names).replace_schema_metadata(table.schema.metadata)
    pq.write_table(old, path)
    assert pq.ParquetFile(path).schema_arrow.field("embedding").nullable
    np.testing.assert_array_equal(read_store(tmp_path / "s").image, before)
    streamed = np.concatenate([b.embedding for b in iter_store(tmp_path / "s", modality="image", batch_rows=7)])
    np.testing.assert_array_equal(streamed.astype(np.float32), before)


def test_read_as_float64_and_not_normalised(tmp_path, rng):
    img = rng.normal(size=(5, 4)) * 10
    write_store(tmp_path / "s", meta(dim=4), image=img)
    es = read_store(tmp_path / "s", dtype=np.float64)
    assert es.image.dtype == np.float64
    # the reference is computed the same way (float32 rounding of the store, then float64 norms)
    np.testing.assert_allclose(np.linalg.norm(es.image, axis=1), np.linalg.norm(img.astype(np.float32).astype(np.float64), axis=1), rtol=1e-12)
    assert es.n_text == 0 and es.text.shape == (0, 4)


def test_image_only_and_text_only_rows(tmp_path, rng):
    img = rng.normal(size=(3, 4))
    txt = rng.normal(size=(4, 4))
    write_store(tmp_path / "s", meta(dim=4), image=img, text=txt, text_image_ids=["0", None, "0", "2"])
    es = read_store(tmp_path / "s")
    np.testing.assert_array_equal(es.text_image_index, [0, -1, 0, 2])
    image_rows, text_rows = es.pairs()
    np.testing.assert_array_equal(text_rows, [0, 2, 3])
    np.testing.assert_array_equal(image_rows, [0, 0, 2])
    assert es.n_pairs == 3  # image row 1 is image-only, text row 1 text-only


def test_pandas_and_datasets_read_the_files(tmp_path, rng):
    pd = pytest.importorskip("pandas")
    datasets = pytest.importorskip("datasets")
    img = rng.normal(size=(20, 6)).astype(np.float16)
    write_store(tmp_path / "s", meta(dim=6, dtype="float16"), image=img, text=img, captions=["a"] * 20)
    frame = pd.read_parquet(tmp_path / "s" / "text")
    assert list(frame.columns) == ["id", "image_id", "caption", "embedding"]
    np.testing.assert_array_equal(np.stack(frame["embedding"].to_numpy()), img)
    ds = datasets.Dataset.from_parquet(str(tmp_path / "s" / "image" / "*.parquet"))
    assert len(ds) == 20
    np.testing.assert_array_equal(np.asarray(ds["embedding"], dtype=np.float16), img)


def test_provenance_in_every_shard(tmp_path, rng):
    write_store(tmp_path / "s", meta(dim=4, model="ViT-B-32", pretrained="openai"), image=rng.normal(size=(3, 4)))
    shard = pq.ParquetFile(tmp_path / "s" / "image" / "part-000000.parquet")
    stored = json.loads(shard.schema_arrow.metadata[b"clipgeo"])
    assert stored["model_id"] == "ViT-B-32/openai" and stored["dim"] == 4


def test_interrupted_shard_write_leaves_nothing(tmp_path, rng, monkeypatch):
    writer = StoreWriter(tmp_path / "s", meta(dim=4))
    writer.write_shard("image", 0, rng.normal(size=(5, 4)), ids=list("abcde"), columns={"path": [""] * 5})

    def crash(table, where, **kw):
        with open(where, "wb") as handle:  # half a file, then the process "dies"
            handle.write(b"PAR1 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr("clipgeo.store._writer.pq.write_table", crash)
    with pytest.raises(KeyboardInterrupt):
        writer.write_shard("image", 1, rng.normal(size=(5, 4)), ids=list("fghij"), columns={"path": [""] * 5})
    files = sorted(p.name for p in (tmp_path / "s" / "image").iterdir())
    assert files == ["part-000000.parquet"]  # no partial shard, no temporary left
    assert writer.committed("image") == {0}
    with pytest.raises(StoreError, match="incomplete"):
        read_store(tmp_path / "s")
    es = read_store(tmp_path / "s", allow_incomplete=True)
    assert es.n_image == 5


def _kill_mid_write(root):
    writer = StoreWriter(root, meta(dim=4), resume=True)
    rng = np.random.default_rng(1)
    for k in range(1000):
        writer.write_shard("image", k, rng.normal(size=(200, 4)), ids=[f"{k}-{i}" for i in range(200)])


def test_sigkill_during_writes_leaves_a_readable_prefix(tmp_path):
    root = tmp_path / "s"
    proc = mp.get_context("fork").Process(target=_kill_mid_write, args=(root,))
    proc.start()
    import time

    deadline = time.time() + 30
    while time.time() < deadline:
        if (root / "manifest.json").exists() and len(json.loads((root / "manifest.json").read_text())["shards"]) >= 3:
            break
        time.sleep(0.01)
    os.kill(proc.pid, 9)
    proc.join()
    es = read_store(root, allow_incomplete=True)  # every listed shard is whole and consistent
    manifest = read_manifest(root, allow_incomplete=True)
    assert es.n_image == 200 * len(manifest["shards"]) >= 600
    assert len(set(es.image_ids)) == es.n_image


def _write_disjoint(root, rank):
    writer = StoreWriter(root, meta(dim=4), resume=True)
    for k in range(rank, 20, 2):
        writer.write_shard("image", k, np.full((3, 4), float(k)), ids=[f"{k}-{i}" for i in range(3)])


def test_two_processes_share_one_manifest(tmp_path):
    root = tmp_path / "s"
    StoreWriter(root, meta(dim=4))
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_write_disjoint, args=(root, r)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    StoreWriter(root, meta(dim=4), resume=True).finalize()
    es = read_store(root)
    assert es.n_image == 60
    np.testing.assert_array_equal(es.image[::3, 0], np.arange(20))  # read back in shard order


def test_mixed_models_refused_on_write(tmp_path, rng):
    write_store(tmp_path / "s", meta(dim=4, model="ViT-B-32"), image=rng.normal(size=(3, 4)))
    with pytest.raises(StoreError, match="ViT-B-32.*RN50"):
        StoreWriter(tmp_path / "s", meta(dim=4, model="RN50"), resume=True)
    with pytest.raises(StoreError, match="dim 4.*dim 8"):
        StoreWriter(tmp_path / "s", meta(dim=8, model="ViT-B-32"), resume=True)


def test_mixed_models_refused_on_read(tmp_path, rng):
    write_store(tmp_path / "a", meta(dim=4, model="A"), image=rng.normal(size=(3, 4)))
    write_store(tmp_path / "b", meta(dim=4, model="B"), image=rng.normal(size=(3, 4)))
    # a shard of model B copied into store A under A's name
    os.replace(tmp_path / "b" / "image" / "part-000000.parquet", tmp_path / "a" / "image" / "part-000000.parquet")
    with pytest.raises(StoreError, match="holds A .*B"):
        read_store(tmp_path / "a")


def test_inconsistent_store_detected(tmp_path, rng):
    write_store(tmp_path / "s", meta(dim=4), image=rng.normal(size=(10, 4)), shard_rows=5)
    manifest_path = tmp_path / "s" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["shards"][0]["rows"] = 6
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="6"):
        read_store(tmp_path / "s")
    manifest["shards"][0]["rows"] = 5
    manifest_path.write_text(json.dumps(manifest))
    (tmp_path / "s" / "image" / "part-000001.parquet").unlink()
    with pytest.raises(StoreError, match="missing"):
        read_store(tmp_path / "s")
    (tmp_path / "s" / "image" / "part-000000.parquet").write_bytes(b"garbage")
    with pytest.raises(StoreError, match="not a readable Parquet"):
        read_store(tmp_path / "s")


def test_missing_and_non_store_directories(tmp_path):
    with pytest.raises(StoreError, match="no store"):
        read_store(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(StoreError, match="no manifest.json"):
        read_store(tmp_path / "d")
    (tmp_path / "d" / "x.txt").write_text("hi")
    with pytest.raises(StoreError, match="not empty"):
        StoreWriter(tmp_path / "d", meta())


def test_writer_rejects_bad_rows(tmp_path):
    writer = StoreWriter(tmp_path / "s", meta(dim=4))
    bad = np.ones((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(InputError, match="1 row.*rows 1"):
        writer.write_shard("image", 0, bad, ids=["a", "b", "c"])
    with pytest.raises(InputError, match="dimension 5"):
        writer.write_shard("image", 0, np.ones((3, 5)), ids=["a", "b", "c"])
    writer16 = StoreWriter(tmp_path / "t", meta(dim=4, dtype="float16"))
    with pytest.raises(StoreError, match="overflows float16"):
        writer16.write_shard("image", 0, np.full((1, 4), 1e6), ids=["a"])


def test_fingerprint_mismatch_refused_on_resume(tmp_path):
    StoreWriter(tmp_path / "s", meta(fingerprint="aaa"))
    StoreWriter(tmp_path / "s", meta(fingerprint="aaa"), resume=True)
    with pytest.raises(StoreError, match="different data"):
        StoreWriter(tmp_path / "s", meta(fingerprint="bbb"), resume=True)
    with pytest.raises(StoreError, match="already holds"):
        StoreWriter(tmp_path / "s", meta(fingerprint="aaa"))


def test_status_and_summary_from_the_manifest(tmp_path, rng):
    assert status(tmp_path / "none").state == "missing" and not status(tmp_path / "none").exists
    (tmp_path / "file").write_text("x")
    assert status(tmp_path / "file").state == "missing"
    (tmp_path / "empty").mkdir()
    assert "no manifest.json" in status(tmp_path / "empty").reason
    with pytest.raises(StoreError, match="no store"):
        summary(tmp_path / "none")

    writer = StoreWriter(tmp_path / "s", meta(dim=4, pretrained="openai", precision="fp16"))
    writer.write_shard("image", 0, rng.normal(size=(3, 4)), ids=["a", "b", "c"],
                       skipped=[{"id": "x", "reason": "unreadable"}, {"id": "y", "reason": "unreadable"}])
    writer.write_shard("text", 0, rng.normal(size=(2, 4)), ids=["0", "1"],
                       columns={"image_id": ["a", None], "caption": ["p", "q"], "truncated": [True, False]})
    st = status(tmp_path / "s")
    assert (st.state, st.complete, st.exists) == ("incomplete", False, True) and "2 shard(s)" in st.reason
    partial = summary(tmp_path / "s")
    assert partial.status == "incomplete" and not partial.complete and partial.rows == {"image": 3, "text": 2}
    writer.finalize({"world_size": 2, "pairs": 1})
    assert status(tmp_path / "s").complete and status(tmp_path / "s").reason == ""
    s = summary(tmp_path / "s")
    assert s.complete and s.dim == 4 and s.model == "m" and s.model_id == "m/openai"
    assert (s.pretrained, s.precision, s.store_dtype, s.normalized) == ("openai", "fp16", "float32", False)
    assert s.shards == {"image": 1, "text": 1}
    assert s.skipped == {"image": {"unreadable": 2}, "text": {}}
    assert s.truncated_captions == 1 and s.world_size == 2 and s.run == {"world_size": 2, "pairs": 1}
    d = s.to_dict()
    assert d["complete"] is True and d["rows"] == {"image": 3, "text": 2}
    json.dumps(d)
    with pytest.raises(AttributeError):
        s.dim = 5  # frozen


def test_import_puts_the_old_store_back_when_the_new_one_fails(tmp_path, rng, monkeypatch):
    out = tmp_path / "s"
    first = rng.normal(size=(5, 4))
    import_embeddings(out, image=first, model_name="A")

    real_replace = os.replace

    def replace(src, dst):  # the last rename (the new store into place) fails; every other one works
        if os.fspath(dst) == os.fspath(out) and os.fspath(src).endswith(".tmp"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        import_embeddings(out, image=rng.normal(size=(5, 4)), model_name="A", overwrite=True)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_store(out).image, first.astype(np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no temporary directory left behind


def test_library_messages_name_parameters_not_flags(tmp_path, rng):
    with pytest.raises(InputError, match="pass image=FILE and/or text=FILE"):
        import_embeddings(tmp_path / "s")
    with pytest.raises(InputError, match="pass pairs=FILE"):
        import_embeddings(tmp_path / "s", image=rng.normal(size=(3, 4)), text=rng.normal(size=(4, 4)))
    import_embeddings(tmp_path / "s", image=rng.normal(size=(3, 4)))
    with pytest.raises(StoreError, match="pass overwrite=True") as info:
        import_embeddings(tmp_path / "s", image=rng.normal(size=(3, 4)))
    assert "--" not in str(info.value)


def test_summarize_store_streams_the_same_summary_as_the_set_in_memory(tmp_path, rng):
    """``clipgeo info`` reads batch by batch: same counts, norm moments, skip reasons as summarize(read_store)."""
    from clipgeo.store import summarize, summarize_store

    meta = StoreMeta(model="m", dim=4, store_dtype="float32")
    writer = StoreWriter(tmp_path / "s", meta)
    img = rng.normal(size=(7, 4)) * 3 + 1
    writer.write_shard("image", 0, img[:5], ids=[str(i) for i in range(5)], columns={"path": [""] * 5},
                       skipped=[{"id": "x", "reason": "unreadable image"}])
    writer.write_shard("image", 1, img[5:], ids=["5", "6"], columns={"path": [""] * 2})
    txt = rng.normal(size=(4, 4))
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)  # unit rows: a warning
    writer.write_shard("text", 0, txt, ids=list("abcd"),
                       columns={"image_id": ["0", None, "6", "2"], "caption": ["w"] * 4})
    writer.finalize()
    streamed = summarize_store(tmp_path / "s", batch_rows=3)  # batches smaller than a shard
    whole = summarize(read_store(tmp_path / "s"))
    assert streamed["n_pairs"] == whole["n_pairs"] == 3
    assert streamed["skipped"] == whole["skipped"] == {"unreadable image": 1}
    assert streamed["warnings"] == whole["warnings"] and len(whole["warnings"]) == 1
    for m in ("image", "text"):
        for key in ("mean", "std", "min", "max"):
            assert streamed["norms"][m][key] == pytest.approx(whole["norms"][m][key], rel=1e-6)
        assert streamed["norms"][m]["unit_norm"] == whole["norms"][m]["unit_norm"]
    norms = np.linalg.norm(img.astype(np.float32).astype(np.float64), axis=1)
    assert streamed["norms"]["image"]["std"] == pytest.approx(norms.std(ddof=1), rel=1e-9)
    assert {k: v for k, v in streamed.items() if k != "norms"} == {k: v for k, v in whole.items() if k != "norms"}
