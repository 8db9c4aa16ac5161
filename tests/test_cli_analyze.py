"""`clipgeo analyze` in a subprocess, as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import clipgeo as cg
from clipgeo.store import StoreMeta, StoreWriter, import_embeddings, write_store
from tests.conftest import assert_clean_error, run_cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    img, txt, _ = cg.double_ellipsoid(300, 24, separating_features=[5, 9], separation=10, seed=21)
    root = tmp_path_factory.mktemp("cli") / "store"
    write_store(
        root,
        StoreMeta(model="synthetic", dim=24),
        image=img,
        text=txt,
        text_image_ids=[str(i) for i in range(300)],
        captions=[f"a photo of thing {i}" for i in range(300)],
    )
    return root


def test_analyze_writes_the_three_outputs(store, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("analyze", store, "--out", out, "--alphas", "-0.2:0.2:0.1", "--conformity", "mean", "--threads", "1", "--no-html")
    assert proc.returncode == 0, proc.stderr
    assert "modality gap" in proc.stdout and str(out / "report.json") in proc.stdout
    data = json.loads((out / "report.json").read_text())
    assert data["n_pairs"] == 300 and data["centroid_shift"]["alpha"] == [-0.2, -0.1, 0.0, 0.1, 0.2]
    assert data["conformity"]["image"]["method"] == "mean"
    assert {data["separability"]["features"][0]["feature"], data["separability"]["features"][1]["feature"]} == {5, 9}
    assert data["provenance"]["config"]["store"] == str(store) and data["provenance"]["config"]["threads"] == 1
    assert "clipgeo analyze" in data["provenance"]["command"]
    assert (out / "report.md").read_text().startswith("# clipgeo report: synthetic")
    assert (out / "features.csv").exists() and (out / "rows_text.csv").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--alphas", "1:0:0.1"], "--alphas"),
        (["--conformity", "approx"], "--conformity"),
        (["--temperature", "0"], "--temperature"),
        (["--batch-size", "1"], "--batch-size"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_options_give_one_error_line(store, tmp_path, args, needle):
    assert_clean_error(run_cli("analyze", store, "--out", tmp_path / "o", *args), needle)


def test_missing_and_incomplete_stores(tmp_path):
    assert_clean_error(run_cli("analyze", tmp_path / "nothing", "--out", tmp_path / "o"), "no store")
    root = tmp_path / "partial"
    writer = StoreWriter(root, StoreMeta(model="m", dim=4))
    rng = np.random.default_rng(0)
    writer.write_shard("image", 0, rng.normal(size=(10, 4)) + 1, ids=[str(i) for i in range(10)])
    assert_clean_error(run_cli("analyze", root, "--out", tmp_path / "o"), "incomplete")
    proc = run_cli("analyze", root, "--out", tmp_path / "o", "--allow-incomplete", "--no-html")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["n_text"] == 0 and "modality_gap" in data["skipped"]
    assert any("store is incomplete" in w for w in data["warnings"]) and "store is incomplete" in proc.stderr


@pytest.mark.realdata
def test_imported_real_embeddings(realdata, tmp_path):
    folder = realdata / "hm_products1126_clip512"
    root = import_embeddings(
        tmp_path / "hm", image=folder / "image_embeddings.npy", text=folder / "text_embeddings.npy", model_name="hm-clip"
    )
    out = tmp_path / "out"
    proc = run_cli("analyze", root, "--out", out, "--no-linear-cv", "--no-html")
    assert proc.returncode == 0, proc.stderr
    assert "already unit-norm" in proc.stderr  # a warning, not an error
    data = json.loads((out / "report.json").read_text())
    assert data["modality_gap"]["l2_centroid_distance"] == pytest.approx(0.8768, abs=5e-5)
    assert data["modality_gap"]["mean_matched_cosine"] == pytest.approx(0.3587, abs=5e-5)
    assert "## Warnings" in (out / "report.md").read_text()


def _command_defaults(*path: str) -> dict:
    """Option name -> default of a `clipgeo` subcommand, as Typer registered it."""
    import typer.main

    from clipgeo.cli import app

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {p.name: p.default for p in command.params}


def test_analyze_option_defaults_are_the_config_defaults():
    import dataclasses

    from clipgeo.report import AnalyzeConfig

    shown = _command_defaults("analyze")
    config = {f.name: f.default for f in dataclasses.fields(AnalyzeConfig)}
    for name in ("temperature", "batch_size", "conformity", "max_rows_conformity", "linear_cv", "seed"):
        assert shown[name] == config[name], name
