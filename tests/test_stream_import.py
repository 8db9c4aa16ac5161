"""Import without loading it whole: chunked readers, per-chunk checks, clip-retrieval folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipgeo.errors import InputError
from clipgeo.store import read_store
from clipgeo.store._chunked import open_matrix
from clipgeo.store._formats import StringChunks, load_strings
from clipgeo.store._import import import_clip_retrieval, import_embeddings
from tests.conftest import assert_clean_error, run_cli


def _chunks(src, rows):
    parts = list(src.chunks(rows))
    assert all(len(b) <= rows for _, b in parts)
    assert [s for s, _ in parts] == list(range(0, src.shape[0], rows))
    return np.concatenate([b for _, b in parts])


@pytest.mark.parametrize("fmt", ["npy", "npy3", "npz", "pt", "parquet", "parquet_cols", "csv", "fortran"])
def test_chunked_readers_give_the_whole_matrix(tmp_path, rng, fmt):
    x = rng.normal(size=(103, 6)).astype(np.float32)
    if fmt == "npy":
        np.save(tmp_path / "x.npy", x)
        spec = tmp_path / "x.npy"
    elif fmt == "npy3":
        np.save(tmp_path / "x.npy", np.stack([x * 0, x]))
        spec = f"{tmp_path / 'x.npy'}:1"
    elif fmt == "fortran":
        np.save(tmp_path / "x.npy", np.asfortranarray(x))
        spec = tmp_path / "x.npy"
    elif fmt == "npz":
        np.savez_compressed(tmp_path / "x.npz", emb=x, other=x[:2])
        spec = f"{tmp_path / 'x.npz'}:emb"
    elif fmt == "pt":
        import torch

        torch.save({"emb": torch.from_numpy(x)}, tmp_path / "x.pt")
        spec = f"{tmp_path / 'x.pt'}:emb"
    elif fmt == "parquet":
        import pandas as pd

        pd.DataFrame({"embedding": list(x), "id": range(len(x))}).to_parquet(tmp_path / "x.parquet")
        spec = tmp_path / "x.parquet"
    elif fmt == "parquet_cols":
        import pandas as pd

        pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).to_parquet(tmp_path / "x.parquet")
        spec = tmp_path / "x.parquet"
    else:
        import pandas as pd

        pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).to_csv(tmp_path / "x.csv", index=False)
        spec = tmp_path / "x.csv"
    src = open_matrix(spec, "image embeddings")
    assert src.shape == (103, 6)
    np.testing.assert_allclose(_chunks(src, 10), x, rtol=1e-6 if fmt == "csv" else 0)


def test_truncated_npy_is_named(tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.normal(size=(50, 4)))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError, match="truncated"):
        _chunks(open_matrix(tmp_path / "x.npy", "image embeddings"), 16)


def test_streaming_import_equals_the_arrays_and_stays_atomic(tmp_path, rng):
    img = rng.normal(size=(230, 8)).astype(np.float16)
    txt = rng.normal(size=(230, 8)).astype(np.float16)
    np.save(tmp_path / "img.npy", img)
    np.save(tmp_path / "txt.npy", txt)
    out = import_embeddings(tmp_path / "store", image=tmp_path / "img.npy", text=tmp_path / "txt.npy", shard_rows=64)
    es = read_store(out)
    np.testing.assert_array_equal(es.image, img.astype(np.float32))
    np.testing.assert_array_equal(es.text, txt.astype(np.float32))
    np.testing.assert_array_equal(es.text_image_index, np.arange(230))
    assert es.meta.store_dtype == "float16" and es.meta.fingerprint and not es.meta.normalized
    # a NaN in a late chunk: one-line error with the row, and nothing left behind
    bad = txt.copy()
    bad[200, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(InputError, match=r"1 row\(s\) with NaN or inf \(rows 200\)") as info:
        import_embeddings(tmp_path / "store2", image=tmp_path / "img.npy", text=tmp_path / "bad.npy", shard_rows=64)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "store2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".store2")]


def _clip_retrieval(root, rng, shards=(40, 25, 31), dim=8, unit=True, metadata=True):
    import pandas as pd

    for sub in ("img_emb", "text_emb", "metadata"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for k, n in enumerate(shards):
        for name, sub in (("img_emb", "img_emb"), ("text_emb", "text_emb")):
            x = rng.normal(size=(n, dim))
            if unit:
                x /= np.linalg.norm(x, axis=1, keepdims=True)
            np.save(root / sub / f"{name}_{k}.npy", x.astype(np.float16))
        if metadata:
            pd.DataFrame({"caption": [f"cap {k}-{i}" for i in range(n)], "url": [f"http://x/{k}/{i}.jpg" for i in range(n)],
                          "key": [f"{k}{i:04d}" for i in range(n)]}).to_parquet(root / "metadata" / f"metadata_{k}.parquet")
    return root


def _string_file(tmp_path, fmt, values):
    import pandas as pd

    path = tmp_path / f"strings.{fmt}"
    if fmt == "txt":
        path.write_text("\n".join(values) + "\n", encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(values))
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "caption": v}) + "\n" for i, v in enumerate(values)))
    elif fmt == "csv":
        pd.DataFrame({"id": range(len(values)), "caption": values}).to_csv(path, index=False)
    else:
        pd.DataFrame({"id": range(len(values)), "caption": values}).to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["txt", "json", "jsonl", "csv", "parquet"])
def test_strings_are_handed_out_a_chunk_at_a_time_in_file_order(tmp_path, fmt):
    values = [f"caption {i}, with a comma" if i % 7 else "" for i in range(1003)]
    path = _string_file(tmp_path, fmt, values)
    chunks = StringChunks(path, "captions", len(values), chunk=100)
    got = []
    for k in (1, 99, 250, 653):
        got += chunks.take(k)
    assert got == values
    assert load_strings(path, "captions", len(values)) == values
    with pytest.raises(InputError, match="has 1003 entries but there are 1004 rows"):
        StringChunks(path, "captions", 1004)


def test_txt_strings_split_as_str_splitlines(tmp_path):
    text = "a\r\nb\rc\x85d\u2028e\n\nf"
    (tmp_path / "c.txt").write_bytes(text.encode("utf-8"))
    expected = text.splitlines()
    assert StringChunks(tmp_path / "c.txt", "captions", len(expected), chunk=2).take(len(expected)) == expected


def test_captions_are_read_in_chunks_not_whole(tmp_path):
    import tracemalloc

    n = 40_000
    path = _string_file(tmp_path, "txt", [f"a caption of some length, number {i}" for i in range(n)])
    chunks = StringChunks(path, "captions", n, chunk=1000)
    tracemalloc.start()
    try:
        for _ in range(n // 1000):
            chunks.take(1000)
        chunked = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    tracemalloc.start()
    try:
        whole = load_strings(path, "captions", n)
        whole_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(whole) == n
    assert chunked < whole_peak / 10  # a chunk of 1,000 at a time, not the 40,000


def test_captions_file_with_the_wrong_count_is_refused_before_anything_is_written(tmp_path, rng):
    x = rng.normal(size=(30, 4))
    path = _string_file(tmp_path, "txt", [f"c{i}" for i in range(29)])
    with pytest.raises(InputError, match="has 29 entries but there are 30 rows"):
        import_embeddings(tmp_path / "s", image=x, text=x, captions=path)
    assert not (tmp_path / "s").exists()
    good = _string_file(tmp_path, "csv", [f"c{i}" for i in range(30)])
    import_embeddings(tmp_path / "s", image=x, text=x, captions=good, image_paths=[f"p{i}.jpg" for i in range(30)],
                      shard_rows=7)
    es = read_store(tmp_path / "s")
    assert list(es.captions) == [f"c{i}" for i in range(30)] and es.image_paths[29] == "p29.jpg"


def test_captions_file_that_shrinks_during_the_import_leaves_nothing(tmp_path, rng, monkeypatch):
    from clipgeo.store import _formats

    x = rng.normal(size=(30, 4))
    path = _string_file(tmp_path, "txt", [f"c{i}" for i in range(30)])
    real = _formats._string_batches
    calls = []

    def shrinking(path_, *args):  # counted whole, then read back shorter: the file changed in between
        calls.append(1)
        if len(calls) > 1:
            path_.write_text("c0\nc1\n")
        return real(path_, *args)

    monkeypatch.setattr(_formats, "_string_batches", shrinking)
    with pytest.raises(InputError, match="changed while it was read"):
        import_embeddings(tmp_path / "s", image=x, text=x, captions=path, shard_rows=7)
    assert not (tmp_path / "s").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["strings.txt"]


def test_clip_retrieval_folder(tmp_path, rng):
    folder = _clip_retrieval(tmp_path / "cr", rng)
    out = import_clip_retrieval(tmp_path / "store", folder, model_name="ViT-B-32", shard_rows=16)
    es = read_store(out)
    assert es.n_image == es.n_text == es.n_pairs == 96
    first = np.load(folder / "img_emb" / "img_emb_1.npy")
    np.testing.assert_array_equal(es.image[40:65], first.astype(np.float32))
    np.testing.assert_array_equal(es.text_image_index, np.arange(96))
    assert es.captions[40] == "cap 1-0" and es.image_paths[41] == "http://x/1/1.jpg"
    assert es.meta.normalized and es.meta.store_dtype == "float16"


def test_clip_retrieval_mismatches_are_one_line_errors(tmp_path, rng):
    folder = _clip_retrieval(tmp_path / "a", rng)
    (folder / "text_emb" / "text_emb_2.npy").unlink()
    with pytest.raises(InputError, match="img_emb/ has 3 shard"):
        import_clip_retrieval(tmp_path / "s1", folder)
    folder = _clip_retrieval(tmp_path / "b", rng)
    np.save(folder / "text_emb" / "text_emb_1.npy", rng.normal(size=(25, 9)).astype(np.float16))
    with pytest.raises(InputError, match="dimension 9"):
        import_clip_retrieval(tmp_path / "s2", folder)
    folder = _clip_retrieval(tmp_path / "c", rng)
    np.save(folder / "text_emb" / "text_emb_1.npy", rng.normal(size=(24, 8)).astype(np.float16))
    with pytest.raises(InputError, match="shard 1 has 25 image rows but 24 text rows"):
        import_clip_retrieval(tmp_path / "s3", folder)
    assert not any((tmp_path / s).exists() for s in ("s1", "s2", "s3"))


def test_cli_clip_retrieval(tmp_path, rng):
    folder = _clip_retrieval(tmp_path / "cr", rng, shards=(10, 12))
    proc = run_cli("import", "--clip-retrieval", folder, "--out", tmp_path / "store", "--model-name", "ViT-B-32")
    assert proc.returncode == 0, proc.stderr
    assert "22 image rows" in proc.stdout and "unit" in proc.stderr.lower()
    (folder / "metadata" / "metadata_1.parquet").unlink()
    proc = run_cli("import", "--clip-retrieval", folder, "--out", tmp_path / "store2")
    assert_clean_error(proc, "metadata/ has 1 shard")


def test_simulate_streams_large_stores(tmp_path, monkeypatch):
    import json

    import clipgeo.simulate as sim
    from clipgeo.synthetic import double_ellipsoid

    monkeypatch.setattr(sim, "STREAM_ABOVE", 100)
    path, truth = sim.simulate_store(tmp_path / "s", n=3000, dim=16, seed=3, store_dtype="float16")
    es = read_store(path)
    assert es.n_pairs == 3000 and es.meta.store_dtype == "float16"
    assert json.loads((path / "ground_truth.json").read_text()) == truth
    _, _, population = double_ellipsoid(2, 16, seed=3)
    # the rows come from the same population: sample means within 5 standard errors of the truth
    se = np.sqrt(np.diag(population.cov_image) / 3000)
    assert np.all(np.abs(es.image.mean(axis=0) - population.mean_image) < 5 * se + 1e-2)
    assert truth["separating_features"] == [int(k) for k in population.separating_features]
