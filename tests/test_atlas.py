"""`clipgeo atlas`: the Parquet table for Embedding Atlas, checked with pandas and duckdb against the analyzers.

The store is a planted double ellipsoid with matched pairs (and one image with two captions), so the
feature ranking, the pairing columns and the neighbours have known answers; the per-row numbers are compared
with the analyzers called directly and with a `clipgeo analyze` directory of the same store.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

import clipgeo.analyzers as az
from clipgeo.atlas import BASE_COLUMNS, atlas_command, atlas_installed, atlas_table, nearest_neighbors, write_atlas
from clipgeo.errors import InputError
from clipgeo.report import analyze
from clipgeo.store import StoreMeta, read_store, write_store
from clipgeo.synthetic import double_ellipsoid
from tests.conftest import assert_clean_error, run_cli

N, DIM = 90, 16
PLANTED = (2, 6)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas")
    img, txt, _ = double_ellipsoid(n=N, dim=DIM, separating_features=PLANTED, seed=3)
    # one more caption of image 0, as the last text row: images may have several captions
    txt = np.concatenate([txt, txt[:1] + 0.01]).astype(np.float32)
    write_store(
        root / "store",
        StoreMeta(model="planted", dim=DIM),
        image=img,
        text=txt,
        captions=[f"caption {i}" for i in range(N)] + ["second caption of image 0"],
        image_paths=[f"images/{i:03d}.png" for i in range(N)],
        text_image_ids=[str(i) for i in range(N)] + ["0"],
    )
    return root / "store"


@pytest.fixture(scope="module")
def table(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("table") / "atlas.parquet"
    run = write_atlas(store, out, n_features=3, neighbors=6, umap=False)
    return run, pd.read_parquet(out)


def test_columns_and_rows(table):
    run, frame = table
    assert len(frame) == run.rows == 2 * N + 1
    assert list(frame.columns[: len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    assert {"x", "y", "neighbors"} <= set(frame.columns) and "umap_x" not in frame
    assert (frame["modality"] == "image").sum() == N and (frame["modality"] == "text").sum() == N + 1
    assert frame["modality"].iloc[:N].eq("image").all()  # images first, then texts, each in store order
    np.testing.assert_array_equal(frame["row"], np.r_[np.arange(N), np.arange(N + 1)])
    features = [c for c in frame if c.startswith("feature_")]
    assert len(features) == 3 and {f"feature_{k}" for k in PLANTED} <= set(features)  # the planted two rank first
    assert set(features[:2]) == {f"feature_{k}" for k in PLANTED}


def test_pairing_text_and_image_columns(table):
    frame = table[1]
    img, txt = frame.iloc[:N], frame.iloc[N:]
    assert txt["text"].iloc[5] == "caption 5" and txt["image"].iloc[5] == "images/005.png"
    assert img["image"].iloc[5] == "images/005.png" and img["text"].iloc[5] == "caption 5"
    # text row j points at its image's table row; image i at its first caption's table row
    np.testing.assert_array_equal(txt["partner"].to_numpy(), np.r_[np.arange(N), 0])
    np.testing.assert_array_equal(img["partner"].to_numpy(), N + np.arange(N))
    assert txt["text"].iloc[N] == "second caption of image 0" and txt["image"].iloc[N] == "images/000.png"


def test_values_are_the_analyzers(store, table):
    frame = table[1]
    es = read_store(store)
    for m, x in (("image", es.image), ("text", es.text)):
        part = frame[frame["modality"] == m]
        shell, conf = az.thin_shell(x), az.conformity(x, "exact", max_rows=None)
        maha = az.mahalanobis_shell(x, seed=0)
        np.testing.assert_allclose(part["norm"], shell.norms, rtol=1e-12)
        np.testing.assert_allclose(part["centered_norm"], shell.centered_norms, rtol=1e-12)
        np.testing.assert_allclose(part["mahalanobis"], maha.distances, rtol=1e-12)
        np.testing.assert_allclose(part["conformity"], conf.values, rtol=1e-12)
        np.testing.assert_allclose(part["conformity_estimate_raw"], conf.estimate, rtol=1e-12)
        np.testing.assert_allclose(part["conformity_estimate_unit"], conf.unit_estimate, rtol=1e-12)
        # a NumPy reference of the exact conformity: mean cosine to the other rows of the modality
        u = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
        cos = u @ u.T
        reference = (cos.sum(1) - np.diag(cos)) / (len(x) - 1)
        np.testing.assert_allclose(part["conformity"], reference, atol=64 * np.finfo(np.float32).eps)
        np.testing.assert_array_equal(part[f"feature_{PLANTED[0]}"], x[:, PLANTED[0]].astype(np.float64))
    pca = az.pca_projection(es.image, es.text)
    np.testing.assert_allclose(frame[["x", "y"]].to_numpy(), np.vstack([pca.image, pca.text]), rtol=1e-12)


def test_the_same_table_from_an_analysis_directory(store, table, tmp_path):
    analyze(read_store(store), bootstrap=0, linear_cv=False).write(tmp_path / "a")
    other = atlas_table(store, tmp_path / "a", n_features=3, neighbors=6, umap=False)
    frame = table[1]
    assert list(other.columns) == list(frame.columns)
    for column in ("norm", "centered_norm", "mahalanobis", "conformity", "conformity_estimate_raw", "x", "y"):
        # the analysis' CSV keeps 9 significant digits
        np.testing.assert_allclose(other[column], frame[column], rtol=2e-8, atol=1e-12, err_msg=column)


def test_neighbors_in_the_form_embedding_atlas_reads(store, table):
    frame = table[1]
    first = frame["neighbors"].iloc[0]
    assert set(first) == {"ids", "distances"} and len(first["ids"]) == 6
    ids = np.stack([np.asarray(v["ids"]) for v in frame["neighbors"]])
    dist = np.stack([np.asarray(v["distances"]) for v in frame["neighbors"]])
    assert (ids[:, 0] == np.arange(len(frame))).all() and (dist[:, 0] == 0).all()  # the row itself first
    assert (np.diff(dist, axis=1) >= 0).all()
    es = read_store(store)
    x = np.vstack([es.image, es.text]).astype(np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1 - u @ u.T
    np.fill_diagonal(d, -1)
    ref = np.argsort(d, axis=1, kind="stable")[:, :6]
    exact = np.take_along_axis(d, ref, 1)[:, 1:]
    np.testing.assert_allclose(dist[:, 1:], exact, atol=64 * np.finfo(np.float32).eps)
    # the duplicate caption (text row N, nearly text row 0) finds text row 0 first
    assert ids[2 * N, 1] == N


def test_nearest_neighbors_known_answer():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float64)
    ids, dist = nearest_neighbors(x, 3, chunk=2)
    np.testing.assert_array_equal(ids, [[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]])
    np.testing.assert_allclose(dist[0], [0, 1 - 0.9 / np.hypot(0.9, 0.1), 1], atol=1e-6)


def test_duckdb_reads_the_table(table):
    duckdb = pytest.importorskip("duckdb")
    path = str(table[0].path)
    counts = dict(duckdb.sql(f"SELECT modality, count(*) FROM read_parquet('{path}') GROUP BY modality").fetchall())
    assert counts == {"image": N, "text": N + 1}
    (mean_image,) = duckdb.sql(f"SELECT avg(conformity) FROM read_parquet('{path}') WHERE modality = 'image'").fetchall()[0]
    assert mean_image == pytest.approx(table[1]["conformity"].iloc[:N].mean(), rel=1e-12)
    (k,) = duckdb.sql(f"SELECT len(neighbors.ids) FROM read_parquet('{path}') LIMIT 1").fetchall()[0]
    assert k == 6
    meta = duckdb.sql(f"SELECT value FROM parquet_kv_metadata('{path}') WHERE key = 'clipgeo'").fetchall()[0]
    assert json.loads(meta[0])["config"]["neighbors"] == 6  # provenance travels in the file


def test_bad_input(store, tmp_path):
    with pytest.raises(InputError, match=r"\.parquet"):
        write_atlas(store, tmp_path / "table.csv")
    with pytest.raises(InputError, match="directory"):
        write_atlas(store, tmp_path)
    with pytest.raises(InputError, match="neighbors"):
        atlas_table(store, neighbors=-1)
    other = tmp_path / "other"
    write_store(other, StoreMeta(model="x", dim=DIM), image=np.ones((5, DIM), np.float32) + np.eye(5, DIM, dtype=np.float32))
    analyze(read_store(other), bootstrap=0, linear_cv=False).write(tmp_path / "a_other")
    with pytest.raises(InputError, match="image rows but the store has"):
        atlas_table(store, tmp_path / "a_other")
    assert not list(tmp_path.glob("*.parquet"))


@pytest.mark.slow
def test_cli(store, tmp_path):
    out = tmp_path / "t.parquet"
    proc = run_cli("atlas", store, "--out", out, "--features", "2", "--neighbors", "4", "--no-umap")
    assert proc.returncode == 0, proc.stderr
    assert f"{2 * N + 1} rows" in proc.stdout
    assert "embedding-atlas " + str(out) + " --x x --y y --text text --image image --neighbors neighbors" in proc.stdout
    assert len(pd.read_parquet(out).columns) == len(BASE_COLUMNS) + 2 + 2 + 1
    assert_clean_error(run_cli("atlas", tmp_path / "none", "--out", out), "no store")
    assert_clean_error(run_cli("atlas", store, "--out", tmp_path / "t.csv"), ".parquet")
    assert_clean_error(run_cli("atlas", store, "--out", out, "--neighbors", "-2"), "--neighbors")


def test_command_line():
    assert atlas_command("t.parquet", columns=["x", "y"]) == [
        "embedding-atlas", "t.parquet", "--x", "x", "--y", "y", "--text", "text", "--image", "image",
    ]  # fmt: skip
    assert atlas_command("t.parquet", host="127.0.0.1", port=5)[-4:] == ["--host", "127.0.0.1", "--port", "5"]


@pytest.mark.skipif(not __import__("clipgeo.atlas").atlas.umap_installed(), reason="umap-learn is not installed")
@pytest.mark.slow
def test_umap_columns(store):
    frame = atlas_table(store, n_features=0, neighbors=0, umap=True)
    assert {"umap_x", "umap_y"} <= set(frame) and np.isfinite(frame[["umap_x", "umap_y"]].to_numpy()).all()
    assert "neighbors" not in frame and not any(c.startswith("feature_") for c in frame)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(atlas_installed() is None, reason="embedding-atlas (clipgeo[atlas]) is not installed")
@pytest.mark.slow
def test_embedding_atlas_serves_the_table(table, tmp_path):
    """embedding-atlas opens the table headless on 127.0.0.1: its page and its metadata name our columns."""
    from clipgeo.atlas import open_atlas

    port = _free_port()
    log = open(tmp_path / "atlas.log", "w")
    proc = open_atlas(table[0].path, host="127.0.0.1", port=port, columns=table[1].columns, stdout=log, stderr=subprocess.STDOUT)
    try:
        page = metadata = None
        for _ in range(600):  # it imports a lot and compiles its PageRank on first use: wait for it, not a clock
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/metadata.json", timeout=5) as r:
                    metadata = json.loads(r.read())
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None, (tmp_path / "atlas.log").read_text()[-3000:]
        assert "<title>Embedding Atlas</title>" in page
        data = metadata["props"]["data"]
        assert data["projection"] == {"x": "x", "y": "y"} and data["neighbors"] == "neighbors"
        assert data["text"] == "text" and data["image"] == "image"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()
        log.close()


def test_thumbnails_of_readable_images(tmp_path):
    """Image rows whose files can be read get PNG thumbnails (Embedding Atlas shows them); others get none."""
    from PIL import Image

    images = tmp_path / "pics"
    images.mkdir()
    for i in range(3):
        Image.new("RGB", (40 + 10 * i, 30), (60 * i, 100, 200)).save(images / f"{i}.png")
    rng = np.random.default_rng(0)
    root = tmp_path / "store"
    write_store(
        root,
        StoreMeta(model="pics", dim=4),
        image=rng.normal(size=(4, 4)).astype(np.float32) + 2,
        text=rng.normal(size=(4, 4)).astype(np.float32) - 2,
        captions=[f"c{i}" for i in range(4)],
        image_paths=["0.png", "1.png", "2.png", "missing.png"],
        text_image_ids=[str(i) for i in range(4)],
    )
    assert "thumbnail" not in atlas_table(root, neighbors=0, umap=False)  # relative paths, no folder: none found
    frame = atlas_table(root, neighbors=0, umap=False, image_root=images, thumbnails=16)
    thumbs = frame["thumbnail"].tolist()
    assert thumbs[3] is None and all(t is None for t in thumbs[4:])
    import io

    for i in range(3):
        with Image.open(io.BytesIO(thumbs[i])) as img:
            assert img.format == "PNG" and max(img.size) == 16  # the longer side, scaled to 16
    run = write_atlas(root, tmp_path / "t.parquet", image_root=images, neighbors=0, umap=False)
    assert "--image thumbnail" in run.command_line() and pd.read_parquet(run.path)["thumbnail"].notna().sum() == 3
