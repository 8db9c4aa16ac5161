"""`clipgeo import` / `clipgeo info`: every input format and every bad input, through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipgeo.errors import InputError
from clipgeo.store import import_embeddings, load_matrix, read_store
from tests.conftest import assert_clean_error, run_cli


@pytest.fixture
def emb(rng):
    return rng.normal(size=(12, 6)).astype(np.float32) + 2, rng.normal(size=(12, 6)).astype(np.float32) - 1


def _save(path, arr, fmt):
    import pandas as pd

    if fmt == "npy":
        np.save(path, arr)
    elif fmt == "npz":
        np.savez(path, emb=arr, other=arr[:2])
        return f"{path}:emb"
    elif fmt == "pt":
        import torch

        torch.save(torch.from_numpy(arr), path)
    elif fmt == "parquet-list":
        pd.DataFrame({"embedding": list(arr)}).to_parquet(path)
    elif fmt == "parquet-wide":
        pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])]).to_parquet(path)
    elif fmt == "csv":
        pd.DataFrame(arr, columns=[f"f{i}" for i in range(arr.shape[1])]).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "fmt,suffix",
    [("npy", ".npy"), ("npz", ".npz"), ("pt", ".pt"), ("parquet-list", ".parquet"), ("parquet-wide", ".parquet"), ("csv", ".csv")],
)
def test_every_format_round_trips(tmp_path, emb, fmt, suffix):
    img, txt = emb
    ispec = _save(tmp_path / f"img{suffix}", img, fmt)
    tspec = _save(tmp_path / f"txt{suffix}", txt, fmt)
    import_embeddings(tmp_path / "s", image=ispec, text=tspec, model_name="ext")
    es = read_store(tmp_path / "s")
    np.testing.assert_allclose(es.image, img, rtol=1e-6)
    np.testing.assert_allclose(es.text, txt, rtol=1e-6)
    np.testing.assert_array_equal(es.text_image_index, np.arange(12))
    assert es.meta.model == "ext" and not es.meta.normalized


def test_pairs_file_one_and_two_columns(tmp_path, rng):
    img = rng.normal(size=(3, 4))
    txt = rng.normal(size=(5, 4))
    np.save(tmp_path / "i.npy", img)
    np.save(tmp_path / "t.npy", txt)
    np.save(tmp_path / "p1.npy", np.array([0, 0, 1, -1, 2]))
    np.savetxt(tmp_path / "p2.csv", np.array([[0, 2], [4, 1]]), delimiter=",", fmt="%d", header="text,image", comments="")
    import_embeddings(tmp_path / "a", image=tmp_path / "i.npy", text=tmp_path / "t.npy", pairs=tmp_path / "p1.npy")
    np.testing.assert_array_equal(read_store(tmp_path / "a").text_image_index, [0, 0, 1, -1, 2])
    import_embeddings(tmp_path / "b", image=tmp_path / "i.npy", text=tmp_path / "t.npy", pairs=tmp_path / "p2.csv")
    np.testing.assert_array_equal(read_store(tmp_path / "b").text_image_index, [2, -1, -1, -1, 1])


def test_float16_input_kept_and_unit_rows_flagged(tmp_path, rng):
    x = rng.normal(size=(10, 8))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    np.save(tmp_path / "u.npy", x)
    import_embeddings(tmp_path / "s", image=tmp_path / "u.npy", text=tmp_path / "u.npy")
    es = read_store(tmp_path / "s")
    assert es.meta.store_dtype == "float16" and es.meta.normalized


def test_3d_slice_key(tmp_path, rng):
    stacked = rng.normal(size=(2, 7, 5))
    np.save(tmp_path / "f.npy", stacked)
    np.testing.assert_array_equal(load_matrix(f"{tmp_path / 'f.npy'}:1"), stacked[1])
    with pytest.raises(InputError, match="3-D.*FILE:0"):
        import_embeddings(tmp_path / "s", image=tmp_path / "f.npy")


def test_cli_import_and_info_json(tmp_path, emb):
    img, txt = emb
    np.save(tmp_path / "i.npy", img)
    np.save(tmp_path / "t.npy", txt)
    (tmp_path / "caps.txt").write_text("\n".join(f"caption {i}" for i in range(12)))
    proc = run_cli("import", "--image", tmp_path / "i.npy", "--text", tmp_path / "t.npy", "--captions", tmp_path / "caps.txt",
                   "--out", tmp_path / "s", "--model-name", "ViT-X")
    assert proc.returncode == 0, proc.stderr
    assert "12 image rows" in proc.stdout
    info = run_cli("info", tmp_path / "s", "--json")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert (data["n_image"], data["n_text"], data["dim"], data["model"]) == (12, 12, 6, "ViT-X")
    norms = np.linalg.norm(img.astype(np.float64), axis=1)
    assert data["norms"]["image"]["mean"] == pytest.approx(norms.mean(), rel=1e-6)
    assert data["provenance"]["versions"]["clipgeo"]
    assert "unit-norm" not in info.stderr
    text = run_cli("info", tmp_path / "s")
    assert "ViT-X" in text.stdout and "12 image" in text.stdout


def test_cli_info_warns_on_unit_rows(tmp_path, rng):
    x = rng.normal(size=(10, 8))
    np.save(tmp_path / "u.npy", x / np.linalg.norm(x, axis=1, keepdims=True))
    assert run_cli("import", "--image", tmp_path / "u.npy", "--text", tmp_path / "u.npy", "--out", tmp_path / "s").returncode == 0
    info = run_cli("info", tmp_path / "s")
    assert info.returncode == 0 and "warning:" in info.stderr and "unit-norm" in info.stderr


def _bad(tmp_path, name, arr):
    np.save(tmp_path / name, arr)
    return tmp_path / name


def test_cli_bad_inputs(tmp_path, rng):
    good = _bad(tmp_path, "good.npy", rng.normal(size=(5, 4)))
    nan = rng.normal(size=(5, 4))
    nan[[1, 3], 0] = np.nan
    cases = [
        (["--image", tmp_path / "missing.npy", "--text", good], ["does not exist"]),
        (["--image", tmp_path / "x.txt", "--text", good], ["unknown format", ".npy"]),
        (["--image", _bad(tmp_path, "nan.npy", nan), "--text", good], ["2 row", "rows 1, 3"]),
        (["--image", _bad(tmp_path, "inf.npy", np.full((5, 4), np.inf)), "--text", good], ["nan or inf"]),
        (["--image", _bad(tmp_path, "one.npy", np.ones(4)), "--text", good], ["1-d", "reshape"]),
        (["--image", _bad(tmp_path, "three.npy", np.ones((2, 5, 4))), "--text", good], ["3-d", "FILE:0"]),
        (["--image", _bad(tmp_path, "d8.npy", np.ones((5, 8))), "--text", good], ["dimension 8", "4"]),
        (["--image", _bad(tmp_path, "empty.npy", np.ones((0, 4))), "--text", good], ["empty"]),
        (["--image", good, "--text", good, "--pairs", _bad(tmp_path, "p.npy", np.array([0, 1, 2, 3, 9]))], ["image row 9", "out of range"]),
        (["--image", good, "--text", _bad(tmp_path, "t7.npy", np.ones((7, 4)))], ["--pairs"]),
    ]
    (tmp_path / "x.txt").write_text("1 2 3")
    for args, needles in cases:
        proc = run_cli("import", *args, "--out", tmp_path / "out")
        assert_clean_error(proc, *needles)
        assert not (tmp_path / "out").exists(), args  # nothing half-written
    unknown = tmp_path / "e.bin"
    unknown.write_bytes(b"\0" * 8)
    assert_clean_error(run_cli("import", "--image", unknown, "--out", tmp_path / "out"), "unknown format")


def test_cli_refuses_other_model_in_out(tmp_path, rng):
    a = _bad(tmp_path, "a.npy", rng.normal(size=(5, 4)))
    b = _bad(tmp_path, "b.npy", rng.normal(size=(5, 6)))
    assert run_cli("import", "--image", a, "--text", a, "--out", tmp_path / "s", "--model-name", "A").returncode == 0
    before = read_store(tmp_path / "s").image.copy()
    assert_clean_error(run_cli("import", "--image", b, "--text", b, "--out", tmp_path / "s", "--model-name", "B"), "A", "B")
    assert_clean_error(run_cli("import", "--image", a, "--text", a, "--out", tmp_path / "s", "--model-name", "A"), "--overwrite")
    np.testing.assert_array_equal(read_store(tmp_path / "s").image, before)  # the old store is untouched
    ok = run_cli("import", "--image", a, "--text", a, "--out", tmp_path / "s", "--model-name", "A", "--overwrite")
    assert ok.returncode == 0, ok.stderr
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "f").write_text("x")
    assert_clean_error(run_cli("import", "--image", a, "--out", tmp_path / "junk"), "not empty")


def test_cli_info_on_missing_store(tmp_path):
    assert_clean_error(run_cli("info", tmp_path / "nope"), "no store")


def test_real_embeddings_import(tmp_path, realdata):
    d = realdata / "hm_products1126_clip512"
    import_embeddings(tmp_path / "hm", image=d / "image_embeddings.npy", text=d / "text_embeddings.npy",
                      captions=d / "metadata2.csv", image_paths=f"{d / 'metadata2.csv'}:image_path", model_name="hm")
    es = read_store(tmp_path / "hm")
    assert (es.n_image, es.n_text, es.dim) == (1126, 1126, 512) and es.meta.normalized
    u = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    gap = np.linalg.norm(u(es.image.astype(np.float64)).mean(0) - u(es.text.astype(np.float64)).mean(0))
    assert gap == pytest.approx(0.8768, abs=5e-4)
    assert es.captions[0].startswith("Black performance t-shirt")
