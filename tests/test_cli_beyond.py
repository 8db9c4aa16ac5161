"""`clipgeo analyze --bootstrap`, `clipgeo whiten` and `clipgeo compare-stores` in a subprocess (SPEC §12)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import clipgeo as cg
from clipgeo.store import StoreMeta, write_store
from tests.conftest import assert_clean_error, run_cli

FAST = ("--alphas", "-0.2:0.2:0.1", "--no-linear-cv", "--threads", "1")


def _store(root, n, d, seed, model="synthetic"):
    img, txt, _ = cg.double_ellipsoid(n, d, separating_features=[1, 3], separation=4, seed=seed)
    write_store(
        root,
        StoreMeta(model=model, dim=d),
        image=img,
        text=txt,
        text_image_ids=[str(i) for i in range(n)],
        captions=[f"a photo of thing {i % 9}" for i in range(n)],
    )
    return root


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """Two analysed stores of dimension 24 and one of dimension 16 (bootstrap 20 draws)."""
    base = tmp_path_factory.mktemp("beyond")
    out = {}
    for name, n, d, seed in (("a", 200, 24, 1), ("b", 240, 24, 2), ("c", 150, 16, 3)):
        store = _store(base / f"store_{name}", n, d, seed, model=f"model-{name}")
        if name == "a":  # the command itself once; the others through the library (same code, no start-up)
            proc = run_cli("analyze", store, "--out", base / name, "--bootstrap", "20", "--no-html", *FAST)
            assert proc.returncode == 0, proc.stderr
        else:
            es = cg.read_store(store)
            cg.analyze(es, bootstrap=20, alphas=[-0.2, 0.0, 0.2], linear_cv=False).write(base / name)
        out[name] = base / name
    out["store_a"] = base / "store_a"
    out["store_c"] = base / "store_c"
    return out


def test_analyze_writes_the_spec12_keys_and_intervals(analysed):
    data = json.loads((analysed["a"] / "report.json").read_text())
    assert {"l2m", "l2i", "rmg"} <= set(data["gap_metrics"])
    assert {"pearson", "spearman"} <= set(data["pair_conformity"])
    for m in ("image", "text"):
        assert {"effective_rank", "participation_ratio", "dims_90", "dims_99"} <= set(data["spectrum"][m])
        assert "dagostino_pass_rate" in data["whitening"][m]
        iv = data["ellipsoid_offset"][m]["bootstrap"]["ratio"]
        assert iv["low"] <= iv["value"] <= iv["high"] and iv["n_boot"] == 20
    assert data["retrieval_by_conformity"]["by_decile"]["i2t"] and data["commonness"]["n_captions"] == 200
    assert data["modality_gap"]["bootstrap"]["l2_centroid_distance"]["value"] == pytest.approx(
        data["modality_gap"]["l2_centroid_distance"]
    )
    md = (analysed["a"] / "report.md").read_text()
    assert "## Headline numbers with 95 % bootstrap intervals" in md and "RMG" in md
    gap = data["modality_gap"]["bootstrap"]["l2_centroid_distance"]
    assert f"{gap['value']:.4f} [{gap['low']:.4f}, {gap['high']:.4f}]" in md
    assert (analysed["a"] / "pairs.csv").is_file() and (analysed["a"] / "bootstrap.csv").is_file()


@pytest.mark.slow
def test_bootstrap_zero_turns_it_off_and_bad_values_are_one_line_errors(analysed, tmp_path):
    proc = run_cli("analyze", analysed["store_a"], "--out", tmp_path / "o", "--bootstrap", "0", "--no-html", *FAST)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "o" / "report.json").read_text())
    assert data["bootstrap"] is None and "bootstrap" in data["skipped"] and "bootstrap" not in data["modality_gap"]
    assert not (tmp_path / "o" / "bootstrap.csv").exists()
    for bad in ("-1", "1"):
        assert_clean_error(
            run_cli("analyze", analysed["store_a"], "--out", tmp_path / "x", "--bootstrap", bad), "--bootstrap"
        )
    assert not (tmp_path / "x").exists()


def test_figures_of_the_new_analyses_are_drawn_from_the_report(analysed, tmp_path):
    names = "pair_conformity,pair_conformity_disagreements,retrieval_by_conformity,commonness,gap_metrics,spectrum,whitening"
    proc = run_cli("figures", analysed["a"], "--out", tmp_path / "f", "--only", names)
    assert proc.returncode == 0, proc.stderr
    gm = json.loads((tmp_path / "f" / "gap_metrics.json").read_text())
    data = json.loads((analysed["a"] / "report.json").read_text())
    assert gm["values"][2] == pytest.approx(data["gap_metrics"]["rmg"])
    assert gm["low"][2] == pytest.approx(data["gap_metrics"]["bootstrap"]["rmg"]["low"])
    for name in names.split(","):
        assert (tmp_path / "f" / f"{name}.png").is_file()


@pytest.mark.slow
def test_compare_stores_table_figure_and_dimension_flag(analysed, tmp_path):
    proc = run_cli("compare-stores", analysed["a"], analysed["b"], analysed["c"], "--out", tmp_path / "cmp")
    assert proc.returncode == 0, proc.stderr
    assert "⚠ differs" in proc.stdout and "different dimensions" in proc.stderr
    frame = pd.read_csv(tmp_path / "cmp" / "compare_stores.csv")
    assert set(frame["store"]) == {"a", "b", "c"} and frame["dim_differs"].all()
    row = frame[(frame.store == "a") & (frame.headline == "gap_metrics.rmg")].iloc[0]
    data = json.loads((analysed["a"] / "report.json").read_text())
    assert row["value"] == pytest.approx(data["gap_metrics"]["rmg"])
    assert row["low"] == pytest.approx(data["gap_metrics"]["bootstrap"]["rmg"]["low"])
    md = (tmp_path / "cmp" / "compare_stores.md").read_text()
    assert md.startswith("| headline | a | b | c |") and "model-b" in md
    assert (tmp_path / "cmp" / "compare_stores.png").is_file()
    same = run_cli("compare-stores", analysed["a"], analysed["b"], "--out", tmp_path / "cmp2")
    assert same.returncode == 0 and "differs" not in same.stdout


def test_compare_stores_rejects_a_non_report_directory(analysed, tmp_path):
    assert_clean_error(run_cli("compare-stores", analysed["a"], tmp_path, "--out", tmp_path / "o"), "report.json")
    assert_clean_error(
        run_cli("compare-stores", analysed["a"], analysed["store_a"], "--out", tmp_path / "o"), "run `clipgeo analyze`"
    )
    assert not (tmp_path / "o").exists()


def test_whiten_fits_saves_and_scores(analysed, tmp_path):
    out = tmp_path / "W.npz"
    proc = run_cli("whiten", analysed["store_a"], "--out", out, "--score", analysed["store_a"])
    assert proc.returncode == 0, proc.stderr
    w = cg.Whitener.from_arrays(np.load(out))
    scores = pd.read_csv(tmp_path / "W.store_a.scores.csv")
    es = cg.read_store(analysed["store_a"])
    np.testing.assert_allclose(scores["log_likelihood"], w.log_likelihood(es.image), rtol=1e-6)
    assert "D'Agostino" in proc.stdout


def test_whiten_refuses_another_dimension(analysed, tmp_path):
    proc = run_cli("whiten", analysed["store_a"], "--out", tmp_path / "W.npz", "--score", analysed["store_c"])
    assert_clean_error(proc, "16-dimensional", "24-dimensional")
    assert not (tmp_path / "W.npz").exists()


def test_disagreeing_pairs_show_thumbnails_when_the_images_exist(tmp_path):
    from PIL import Image

    from clipgeo.plotting import draw_figure

    img, txt, _ = cg.double_ellipsoid(60, 12, separating_features=[1], separation=4, seed=5)
    paths = []
    for i in range(60):
        path = tmp_path / f"img_{i}.png"
        Image.new("RGB", (8, 8), (4 * i, 0, 0)).save(path)
        paths.append(str(path))
    store = tmp_path / "store"
    write_store(store, StoreMeta(model="synthetic", dim=12), image=img, text=txt, image_paths=paths,
                text_image_ids=[str(i) for i in range(60)], captions=[f"caption {i}" for i in range(60)])  # fmt: skip
    report = cg.analyze(cg.read_store(store), bootstrap=0, linear_cv=False, alphas=[0.0, 0.5])
    _, data = draw_figure("pair_conformity_disagreements", report)
    worst = report.beyond.pair_conformity.most_disagreeing(5)
    assert [p["text_row"] for p in data["pairs"]] == report.beyond.pair_conformity.text_row[worst].tolist()
    assert all(p["thumbnail"] and p["caption"].startswith("caption ") for p in data["pairs"])
