"""Issue 12 at the command line: named features, one-point α grids, captions without pairing, thumbnails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipgeo.plotting import render_figures
from clipgeo.report import AnalyzeConfig, analyze
from clipgeo.store import StoreMeta, read_store, write_store
from clipgeo.synthetic import double_ellipsoid
from tests.conftest import assert_clean_error, run_cli

DPI = 30
DIM = 16


def _store(root: Path, n: int = 60, *, paired: bool = True, paths: list[str] | None = None, seed: int = 0) -> Path:
    img, txt, _ = double_ellipsoid(n=n, dim=DIM, separating_features=(3, 11), seed=seed)
    write_store(
        root,
        StoreMeta(model="synthetic-test", dim=DIM, source="clipgeo.synthetic.double_ellipsoid(test)"),
        image=img,
        text=txt,
        captions=[f"caption number {i}" for i in range(n)],
        image_paths=paths,
        text_image_ids=[str(i) for i in range(n)] if paired else None,
    )
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("exp") / "s")


def test_named_features_are_drawn_from_a_store(store, tmp_path):
    proc = run_cli("figures", store, "--out", tmp_path / "o", "--only", "separating_features", "--features", "5, 2",
                   "--dpi", DPI)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "o" / "separating_features.json").read_text())
    assert data["shown"] == [5, 2] and [p["feature"] for p in data["features"]] == [5, 2]
    assert data["named"] == [5, 2] and data["title"].startswith("Named features")


def test_named_features_through_the_api_and_a_report_directory(store, tmp_path):
    report = analyze(read_store(store), linear_cv=False, bootstrap=0, features=(7,))
    assert 7 in report.top_feature_values["image"]
    report.write(tmp_path / "r")
    run = render_figures(tmp_path / "r", tmp_path / "o", only="separating_features", features=[7], dpi=DPI)
    assert set(run.written) == {"separating_features"}
    # a report directory without the values of a feature: say how to get them, draw nothing
    proc = run_cli("figures", tmp_path / "r", "--out", tmp_path / "o2", "--features", "12")
    assert_clean_error(proc, "no values of feature", "--features 12")
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize(
    "value, needle",
    [("16", "feature 16 does not exist: the embeddings have d = 16"), ("9.5", "whole numbers"), ("-1", "0-based")],
)
def test_bad_features_are_one_line_errors(store, tmp_path, value, needle):
    proc = run_cli("figures", store, "--out", tmp_path / "o", "--features", value)
    assert_clean_error(proc, needle)
    assert not (tmp_path / "o").exists()


def test_bad_features_in_analyze(store, tmp_path):
    assert_clean_error(
        run_cli("analyze", store, "--out", tmp_path / "r", "--features", "x"), "--features", "whole numbers"
    )
    assert_clean_error(run_cli("analyze", store, "--out", tmp_path / "r", "--features", "99"), "feature 99", "d = 16")
    assert not (tmp_path / "r").exists()


def test_one_point_alpha_grid_is_a_one_line_error(store, tmp_path):
    for grid in ("0.5", "0.5,0.5"):
        proc = run_cli("analyze", store, "--out", tmp_path / "r", "--alphas", grid, "--no-html")
        assert_clean_error(proc, "one point", "at least 2")
    assert not (tmp_path / "r").exists()
    with pytest.raises(Exception, match="one point"):
        AnalyzeConfig(alphas=(0.0,))


def test_captions_without_pairing(tmp_path):
    store = _store(tmp_path / "unpaired", paired=False)
    es = read_store(store)
    assert es.n_pairs == 0 and len(es.captions) == 60
    report = analyze(es, linear_cv=False, bootstrap=0)
    assert (
        report.centroid_shift is None and "none of its 60 text rows names an image" in report.skipped["centroid_shift"]
    )
    proc = run_cli("figures", store, "--out", tmp_path / "o", "--only", "centroid_shift,cosine_gradient")
    assert_clean_error(proc, "none of the requested figures", "no matched image-text pairs")
    assert not (tmp_path / "o").exists()


@pytest.mark.realdata
def test_extremes_show_thumbnails_when_the_images_exist(realdata, tmp_path):
    photos = sorted((realdata / "coco_mini" / "val2017").glob("*.jpg"))[:30]
    assert len(photos) == 30
    paths = [str(p) for p in photos]
    store = _store(tmp_path / "photos", n=30, paths=paths)
    run = render_figures(store, tmp_path / "o", only="conformity_extremes", dpi=DPI)
    data = json.loads((tmp_path / "o" / "conformity_extremes.json").read_text())
    assert run.written and data["thumbnails"] == 10  # 5 highest + 5 lowest image rows
    assert all(e["thumbnail"] for e in data["modalities"]["image"]["top"])
    # paths that do not exist: the captions stand in
    store = _store(tmp_path / "nophotos", n=30, paths=[f"/nowhere/{i}.jpg" for i in range(30)])
    render_figures(store, tmp_path / "o2", only="conformity_extremes", dpi=DPI)
    data = json.loads((tmp_path / "o2" / "conformity_extremes.json").read_text())
    assert data["thumbnails"] == 0 and data["modalities"]["image"]["top"][0]["label"]


def test_extremes_list_an_image_stored_once_per_caption_once(tmp_path):
    img, txt, _ = double_ellipsoid(n=20, dim=DIM, separating_features=(3, 11), seed=4)
    stored = np.repeat(img, 3, axis=0)  # each image once per caption, three captions each
    write_store(
        tmp_path / "rep",
        StoreMeta(model="synthetic-test", dim=DIM),
        image=stored,
        text=np.repeat(txt, 3, axis=0),
        captions=[f"caption {i}" for i in range(60)],
        image_paths=[f"/nowhere/img{i // 3}.jpg" for i in range(60)],  # one file, stored three times
        text_image_ids=[str(i) for i in range(60)],
    )
    render_figures(tmp_path / "rep", tmp_path / "o", only="conformity_extremes", dpi=DPI)
    data = json.loads((tmp_path / "o" / "conformity_extremes.json").read_text())
    shown = [e["row"] for e in data["modalities"]["image"]["top"]]
    assert len({row // 3 for row in shown}) == len(shown) == 5


def test_report_json_carries_the_keys_the_checks_read(store, tmp_path):
    report = analyze(read_store(store), linear_cv=False, bootstrap=0)
    report.write(tmp_path / "r")
    data = json.loads((tmp_path / "r" / "report.json").read_text())
    cs = data["centroid_shift"]
    for key in ("alpha", "loss", "alignment", "uniformity", "wang_isola_alignment", "wang_isola_uniformity_image",
                "conformity_kl", "conformity_kl_estimate", "argmin_loss", "argmin_at_edge", "pairs_used",
                "repetitions", "batches"):  # fmt: skip
        assert key in cs, key
    assert cs["pairs_used"] == 60 and cs["repetitions"] == 5 and cs["batches"] == 1
    for m in ("image", "text"):
        shell = data["mahalanobis_shell"][m]
        assert {"cv", "cv_in_sample", "euclidean_cv", "thinner_than_euclidean"} <= set(shell)
        assert shell["thinner_than_euclidean"] == (shell["cv"] < shell["euclidean_cv"])  # the held-out verdict
    sep = data["separability"]
    assert {"best_pair", "best_pair_ties", "modality_label_features"} <= set(sep)
    assert {3, 11} <= set(sep["modality_label_features"])
    text = (tmp_path / "r" / "report.md").read_text()
    assert "held-out d_M" in text and "in-sample cv" in text and "estimate_unit" in text
