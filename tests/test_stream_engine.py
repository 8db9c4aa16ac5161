"""Streaming analysis on Dask: the same report as in memory, the join on image_id, faults."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from clipgeo.errors import ClipgeoError, StoreError
from clipgeo.report import analyze
from clipgeo.store import StoreMeta, read_store, write_store
from clipgeo.stream import _tasks
from clipgeo.stream._analyze import analyze_store
from clipgeo.stream._engine import StreamConfig, dask_client

#: report.json keys whose numbers come from the histograms (compared within the stated bound)
HISTOGRAM_KEYS = ("threshold_accuracy", "auc")


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, processes=False) as c:
        yield c


def _store(path, rng, n_img=300, captions=3, dim=10, shard_rows=70, text_shard_rows=200, shuffle=True):
    """Images with several captions each; text rows in shuffled order so text shards point at many image shards."""
    mean = 2.0 * rng.normal(size=dim)
    img = (mean + rng.normal(size=(n_img, dim))).astype(np.float32)
    owner = np.repeat(np.arange(n_img), captions)
    if shuffle:
        owner = rng.permutation(owner)
    txt = (img[owner] * 0.5 + rng.normal(size=(len(owner), dim)) - mean).astype(np.float32)
    txt[:, 0] += 6.0  # a separating feature
    write_store(path, StoreMeta(model="synthetic", dim=dim), image=img, text=txt,
                image_ids=[f"img{i}" for i in range(n_img)], captions=[f"caption {j}" for j in range(len(owner))],
                text_image_ids=[f"img{i}" for i in owner], image_paths=[f"p{i}.jpg" for i in range(n_img)],
                shard_rows=shard_rows)
    return path


def _flatten(d, prefix=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = d
    return out


def _by_feature(report):
    return {f["feature"]: f for f in report["separability"]["features"]}


def _assert_reports_agree(mem, strm, *, sample_keys_equal: bool):
    """Every moment-based number to rel 1e-9; histogram ones within their bound; sample ones exactly when the
    sample is the whole store."""
    bound = strm["streaming"]["histogram"]
    sample_based = ("mahalanobis_shell", "centroid_shift", "alignment_uniformity", "cosine_gradient", "best_pair",
                    "linear_cv_accuracy", "bootstrap", "pair_conformity", "retrieval_by_conformity", "commonness",
                    "whitening", "/pca/", "n_perfect", "modality_label_features")
    skip = ("timings", "provenance", "files", "separability/features", "streaming")
    a, b = _flatten(mem), _flatten(strm)
    assert set(a) - {k for k in a if any(s in k for s in skip)} <= set(b)
    for key, value in a.items():
        if any(s in key for s in skip):
            continue
        if not sample_keys_equal and any(s in key for s in sample_based):
            continue
        other = b[key]
        if isinstance(value, float) and isinstance(other, (int, float)):
            assert other == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert other == value, key
    fm, fs = _by_feature(mem), _by_feature(strm)
    assert set(fm) == set(fs)
    for k, f in fm.items():
        assert fs[k]["dprime"] == pytest.approx(f["dprime"], rel=1e-9)
        assert -1e-12 <= f["threshold_accuracy"] - fs[k]["threshold_accuracy"] <= bound["threshold_accuracy_max_error"] + 1e-12
        assert abs(f["auc"] - fs[k]["auc"]) <= bound["auc_max_error"] + 1e-12


def test_streaming_equals_in_memory_when_the_sample_is_the_store(tmp_path, rng, client):
    store = _store(tmp_path / "s", rng)
    mem = json.loads(json.dumps(analyze(read_store(store), conformity="mean", linear_cv=False).to_dict()))
    report = analyze_store(store, tmp_path / "out", client=client, linear_cv=False,
                           stream=StreamConfig(sample_size=10**6, batch_rows=64))
    strm = json.loads((tmp_path / "out" / "report.json").read_text())
    assert strm["n_pairs"] == 900 and strm["streaming"]["sample"]["pairs"] == 900
    _assert_reports_agree(mem, strm, sample_keys_equal=True)
    assert report.streaming["histogram"]["bins"] == StreamConfig().bins
    features = (tmp_path / "out" / "features.csv").read_text().splitlines()[0]
    assert "threshold_accuracy_bound" in features and "auc_bound" in features


def test_streaming_with_a_sample_keeps_every_moment_exact(tmp_path, rng, client):
    store = _store(tmp_path / "s", rng, n_img=400, captions=2)
    mem = json.loads(json.dumps(analyze(read_store(store), conformity="mean", linear_cv=False).to_dict()))
    analyze_store(store, tmp_path / "out", client=client, linear_cv=False, stream=StreamConfig(sample_size=150))
    strm = json.loads((tmp_path / "out" / "report.json").read_text())
    assert strm["streaming"]["sample"]["pairs"] == 150
    _assert_reports_agree(mem, strm, sample_keys_equal=False)
    rows = (tmp_path / "out" / "rows_text.csv").read_text().splitlines()
    assert len(rows) == 1 + 150  # the sampled rows, with their global row index
    # the extremes are exact over every row, with their captions
    for m in ("image", "text"):
        for which in ("top", "bottom"):
            got, want = strm["conformity_extremes"][m][which], mem["conformity_extremes"][m][which]
            assert [g["row"] for g in got] == [w["row"] for w in want]
            assert [g.get("caption", g.get("path")) for g in got] == [w.get("caption", w.get("path")) for w in want]
            assert [g["conformity"] for g in got] == pytest.approx([w["conformity"] for w in want], rel=1e-12)


def test_streamed_extremes_list_a_duplicated_caption_once_as_in_memory(tmp_path, rng, client):
    """The most (and least) conformal captions are often repeated verbatim: listed once, in both paths."""
    dim, n = 6, 240
    img = rng.normal(size=(n, dim)).astype(np.float32) + 1.0
    txt = rng.normal(size=(n, dim)).astype(np.float32) + 2.0  # a cone around the all-ones direction
    captions = [f"caption {j}" for j in range(n)]
    common = txt.mean(axis=0)  # the most conformal row, repeated 12 times with one caption, across batches
    far = -4.0 * np.ones(dim, np.float32)  # the least conformal row, repeated 9 times
    for j in range(0, 120, 10):
        txt[j], captions[j] = common, "a photo of a thing"
    for j in range(5, 230, 25):
        txt[j], captions[j] = far, "an odd caption"
    txt[7], captions[7] = far, ""  # no caption: never a duplicate
    write_store(tmp_path / "s", StoreMeta(model="synthetic", dim=dim), image=img, text=txt,
                image_ids=[f"img{i}" for i in range(n)], captions=captions,
                text_image_ids=[f"img{i}" for i in range(n)], shard_rows=50)
    mem = json.loads(json.dumps(analyze(read_store(tmp_path / "s"), conformity="mean", linear_cv=False,
                                        bootstrap=0).to_dict()))
    analyze_store(tmp_path / "s", tmp_path / "out", client=client, linear_cv=False, bootstrap=0,
                  stream=StreamConfig(sample_size=60, batch_rows=16))
    strm = json.loads((tmp_path / "out" / "report.json").read_text())
    for which in ("top", "bottom"):
        got, want = strm["conformity_extremes"]["text"][which], mem["conformity_extremes"]["text"][which]
        assert [g["row"] for g in got] == [w["row"] for w in want]
        assert [g.get("caption") for g in got] == [w.get("caption") for w in want]
    top = [g.get("caption") for g in strm["conformity_extremes"]["text"]["top"]]
    bottom = [g.get("caption") for g in strm["conformity_extremes"]["text"]["bottom"]]
    assert top[0] == "a photo of a thing" and top.count("a photo of a thing") == 1
    assert bottom.count("an odd caption") == 1 and any(g.get("caption") is None
                                                       for g in strm["conformity_extremes"]["text"]["bottom"])


def test_streaming_is_independent_of_the_task_split(tmp_path, rng, client):
    store = _store(tmp_path / "s", rng, n_img=200, captions=2)
    a = analyze_store(store, client=client, linear_cv=False, stream=StreamConfig(sample_size=120, tasks_per_worker=1))
    b = analyze_store(store, client=client, linear_cv=False, stream=StreamConfig(sample_size=120, tasks_per_worker=7,
                                                                                batch_rows=33))
    da, db = _flatten(a.to_dict()), _flatten(b.to_dict())
    for key, value in da.items():
        if "timings" in key or "workers" in key or "seconds" in key:
            continue
        if isinstance(value, float):
            assert db[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        else:
            assert db[key] == value, key


def test_row_for_row_pairs_are_read_in_step_with_the_same_report(tmp_path, rng, client, monkeypatch):
    """One caption per image, in image order (what import / extract / simulate write): each image shard is read
    in step with its text shard; the report is in-memory's, and the one of the general path (shards held whole)."""
    store = _store(tmp_path / "s", rng, n_img=330, captions=1, shuffle=False, shard_rows=70)
    mem = json.loads(json.dumps(analyze(read_store(store), conformity="mean", linear_cv=False).to_dict()))
    calls = []
    original = _tasks._fused_pass
    monkeypatch.setattr(_tasks, "_fused_pass", lambda *a: calls.append(a[1]) or original(*a))
    analyze_store(store, tmp_path / "out", client=client, linear_cv=False,
                  stream=StreamConfig(sample_size=10**6, batch_rows=32))
    assert len(calls) == 5  # 330 rows in shards of 70: every unit read in step
    strm = json.loads((tmp_path / "out" / "report.json").read_text())
    _assert_reports_agree(mem, strm, sample_keys_equal=True)

    monkeypatch.setattr(_tasks, "_row_for_row", lambda unit, matched: False)
    analyze_store(store, tmp_path / "general", client=client, linear_cv=False,
                  stream=StreamConfig(sample_size=10**6, batch_rows=32))
    general = json.loads((tmp_path / "general" / "report.json").read_text())
    assert len(calls) == 5
    a, b = _flatten(strm), _flatten(general)
    for key, value in a.items():
        if any(t in key for t in ("timings", "provenance", "seconds", "/files")):
            continue
        if isinstance(value, float):
            assert b[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
        else:
            assert b[key] == value, key


def _batches(modality, sizes, offset=0):
    import pyarrow as pa

    from clipgeo.store._iter import StoreBatch

    out = []
    for n in sizes:
        rows = np.arange(offset, offset + n)
        out.append(StoreBatch(modality, 0, offset, rows[:, None].astype(np.float32), {"id": pa.array([str(r) for r in rows])}))
        offset += n
    return out


def test_sample_pieces_are_joined_in_row_order(rng):
    rows = rng.permutation(50)
    cuts = [0, 7, 7, 30, 50]  # one empty piece
    pieces = [_tasks.RowSample(rows[a:b].astype(np.uint64) * 3, {
        "row": rows[a:b], "x": np.stack([rows[a:b], -rows[a:b]], axis=1).astype(np.float16),
        "caption": np.array([f"c{r}" for r in rows[a:b]], dtype=object)}) for a, b in itertools.pairwise(cuts)]
    joined = _tasks.RowSample.concat_sorted(pieces, "row")
    assert joined.arrays["row"].tolist() == list(range(50))
    assert joined.keys.tolist() == [3 * r for r in range(50)]
    np.testing.assert_array_equal(joined.arrays["x"], np.stack([np.arange(50), -np.arange(50)], axis=1))
    assert joined.arrays["x"].dtype == np.float16 and joined.arrays["caption"][49] == "c49"
    assert all(not p.arrays for p in pieces if len(p.keys))  # each piece's arrays were handed over
    assert len(_tasks.RowSample.concat_sorted([], "row")) == 0


def test_in_step_reading_aligns_batches_cut_differently():
    pairs = list(_tasks._in_step(_batches("image", [5, 5, 3]), _batches("text", [4, 0, 4, 4, 1]), "s"))
    assert [len(a) for a, _ in pairs] == [4, 1, 3, 2, 2, 1]
    for a, b in pairs:
        assert len(a) == len(b) and a.offset == b.offset
        np.testing.assert_array_equal(a.embedding, b.embedding)
        assert a.columns["id"].equals(b.columns["id"])
    assert np.concatenate([a.embedding[:, 0] for a, _ in pairs]).tolist() == list(range(13))
    with pytest.raises(StoreError, match="changed during the analysis"):
        list(_tasks._in_step(_batches("image", [5, 5]), _batches("text", [4, 4]), "s"))


@pytest.mark.parametrize("in_step", [False, True], ids=["shards-held", "read-in-step"])
def test_shard_removed_mid_run_is_a_one_line_error_and_nothing_is_written(tmp_path, rng, client, monkeypatch, in_step):
    store = _store(tmp_path / "s", rng, n_img=150, captions=1, shuffle=not in_step)
    original = _tasks.second_pass

    def vanish(store_, units, *args):  # the store changes after the first pass
        victim = tmp_path / "s" / "image" / "part-000001.parquet"
        victim.unlink(missing_ok=True)
        return original(store_, units, *args)

    monkeypatch.setattr(_tasks, "second_pass", vanish)
    with pytest.raises(StoreError, match="part-000001.parquet is missing") as info:
        analyze_store(store, tmp_path / "out", client=client, linear_cv=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("in_step", [False, True], ids=["shards-held", "read-in-step"])
def test_shard_truncated_mid_run(tmp_path, rng, client, monkeypatch, in_step):
    store = _store(tmp_path / "s", rng, n_img=150, captions=1, shuffle=not in_step)
    original = _tasks.second_pass
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text("{}")  # a previous report stays as it was

    def truncate(store_, units, *args):
        victim = tmp_path / "s" / "text" / "part-000000.parquet"
        victim.write_bytes(victim.read_bytes()[:100])
        return original(store_, units, *args)

    monkeypatch.setattr(_tasks, "second_pass", truncate)
    with pytest.raises(StoreError, match="changed or is damaged"):
        analyze_store(store, tmp_path / "out", client=client, linear_cv=False)
    assert (tmp_path / "out" / "report.json").read_text() == "{}"


def test_text_pointing_at_a_missing_image_id(tmp_path, rng, client):
    img = rng.normal(size=(5, 4))
    write_store(tmp_path / "s", StoreMeta(model="m", dim=4), image=img, text=img, text_image_ids=["0", "1", "2", "3", "9"])
    with pytest.raises(StoreError, match="image id that is not in the store"):
        analyze_store(tmp_path / "s", client=client)


def test_unreachable_scheduler_is_a_one_line_error():
    import socket

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClipgeoError, match="cannot reach the Dask scheduler") as info:
        with dask_client(f"tcp://127.0.0.1:{port}", timeout=1):
            pass
    assert "\n" not in str(info.value)


def test_unpaired_and_single_modality_stores(tmp_path, rng, client):
    img = (rng.normal(size=(120, 6)) + 1).astype(np.float32)
    txt = rng.normal(size=(90, 6)).astype(np.float32)
    write_store(tmp_path / "unpaired", StoreMeta(model="m", dim=6), image=img, text=txt, shard_rows=50)
    mem = json.loads(json.dumps(analyze(read_store(tmp_path / "unpaired"), conformity="mean", linear_cv=False,
                                        bootstrap=0).to_dict()))
    rep = analyze_store(tmp_path / "unpaired", client=client, linear_cv=False, bootstrap=0,
                        stream=StreamConfig(sample_size=10**6))
    strm = json.loads(json.dumps({**rep.to_dict(), **rep.extra_json}))
    assert strm["n_pairs"] == 0 and strm["streaming"]["sample"]["kind"] == "rows"
    assert set(strm["skipped"]) == set(mem["skipped"])
    _assert_reports_agree(mem, strm, sample_keys_equal=True)

    write_store(tmp_path / "text-only", StoreMeta(model="m", dim=6), text=txt, shard_rows=40)
    rep = analyze_store(tmp_path / "text-only", client=client, linear_cv=False, bootstrap=0)
    only = analyze(read_store(tmp_path / "text-only"), conformity="mean", linear_cv=False, bootstrap=0)
    assert rep.modality_gap is None and set(rep.thin_shell) == {"text"}
    assert rep.thin_shell["text"].mean_centered_norm == pytest.approx(only.thin_shell["text"].mean_centered_norm, rel=1e-12)
    assert rep.conformity["text"].pearson == pytest.approx(only.conformity["text"].pearson, rel=1e-9)


def test_streaming_is_chosen_when_the_store_would_not_fit(tmp_path, rng, monkeypatch):
    from clipgeo.stream import _analyze

    store = _store(tmp_path / "s", rng, n_img=50, captions=1)
    stream, why = _analyze.streaming_needed(store)
    assert not stream and "fits in memory" in why
    monkeypatch.setattr(_analyze, "MEMORY_SHARE", 1e-12)  # as if the machine had almost no memory
    stream, why = _analyze.streaming_needed(store)
    assert stream and "--in-memory to force" in why
    assert _analyze.streaming_needed("memory://somewhere")[0]
