"""analyze() and Report.write(): the keys, the tables the figures read, skipped analyses, report.md."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import clipgeo as cg
from clipgeo.errors import InputError
from clipgeo.synthetic import embedding_set

ISSUE_KEYS = {
    "modality_gap": {"l2_centroid_distance", "raw_centroid_distance"},
    "separability": {"features", "best_pair", "linear_cv_accuracy"},
    "centroid_shift": {"alpha", "loss", "alignment", "uniformity", "conformity_kl", "temperature"},
}
PER_MODALITY_KEYS = {
    "thin_shell": {"mean_norm", "std_norm", "mean_centered_norm", "std_centered_norm", "sqrt_trace_cov"},
    "mahalanobis_shell": {"mean", "std", "cv", "euclidean_cv", "shrinkage"},
    "off_diagonal_dominance": {"median", "fraction_above_1", "per_feature"},
    "ellipsoid_offset": {"ratio", "mean_norm", "std_norm"},
    "conformity": {"pearson", "slope", "intercept", "mean"},
}


@pytest.fixture(scope="module")
def planted():
    img, txt, truth = cg.double_ellipsoid(600, 32, separating_features=[4, 20], separation=10, seed=11)
    captions = [f"caption number {i}" for i in range(600)]
    es = embedding_set(img, txt, captions=captions, image_paths=[f"img/{i}.jpg" for i in range(600)])
    return es, truth


@pytest.fixture(scope="module")
def written(planted, tmp_path_factory):
    es, _ = planted
    report = cg.analyze(es, alphas=[-0.5, 0.0, 0.5], batch_size=256)
    out = tmp_path_factory.mktemp("report")
    files = report.write(out)
    return report, out, files


def test_report_json_has_every_key_of_the_issue(written):
    _, out, _ = written
    data = json.loads((out / "report.json").read_text())
    assert {"dim", "n_image", "n_text", "n_pairs"} <= set(data)
    assert (data["dim"], data["n_image"], data["n_text"], data["n_pairs"]) == (32, 600, 600, 600)
    for key, fields in ISSUE_KEYS.items():
        assert fields <= set(data[key]), key
    for key, fields in PER_MODALITY_KEYS.items():
        for m in ("image", "text"):
            assert fields <= set(data[key][m]), (key, m)
    feats = data["separability"]["features"]
    assert len(feats) == 32 and set(feats[0]) == {"feature", "threshold_accuracy", "auc", "dprime"}
    assert {feats[0]["feature"], feats[1]["feature"]} == {4, 20}
    assert set(data["separability"]["best_pair"]["features"]) == {4, 20}
    assert data["separability"]["best_pair"]["accuracy"] == 1.0
    assert len(data["off_diagonal_dominance"]["image"]["per_feature"]) == 32
    assert data["centroid_shift"]["alpha"] == [-0.5, 0.0, 0.5] and len(data["centroid_shift"]["loss"]) == 3
    assert data["skipped"] == {}


def test_provenance_carries_store_meta_config_and_versions(written):
    _, out, _ = written
    prov = json.loads((out / "report.json").read_text())["provenance"]
    assert prov["store"]["model"] == "synthetic"
    assert prov["config"]["batch_size"] == 256 and prov["config"]["temperature"] == 0.01
    assert {"numpy", "scikit_learn", "clipgeo"} <= set(prov["versions"])


def test_tables_hold_what_the_figures_need(written, planted):
    report, out, files = written
    assert {"features.csv", "rows_image.csv", "rows_text.csv", "covariance_image.npy", "covariance_text.npy",
            "centroid_shift.csv", "cosine_gradient.csv", "thin_shell_theory.csv", "report.json", "report.md"} <= set(files)  # fmt: skip
    rows = pd.read_csv(out / "rows_image.csv")
    assert len(rows) == 600
    for col in ("norm", "centered_norm", "mahalanobis", "conformity", "conformity_estimate", "pc1", "pc2", "path", "feature_4"):
        assert col in rows, col
    np.testing.assert_allclose(rows["conformity"], report.conformity["image"].values, rtol=1e-7)
    np.testing.assert_allclose(rows["mahalanobis"], report.mahalanobis_shell["image"].distances, rtol=1e-7)
    np.testing.assert_allclose(rows["feature_4"], planted[0].image[:, 4], rtol=1e-7)
    text_rows = pd.read_csv(out / "rows_text.csv")
    assert text_rows["caption"][3] == "caption number 3" and text_rows["image_row"][3] == 3
    features = pd.read_csv(out / "features.csv")
    for col in ("feature", "rank", "threshold_accuracy", "auc", "dprime", "mean_image", "std_text", "odd_image", "var_text"):
        assert col in features, col
    assert features.loc[features["rank"] == 0, "feature"].item() in (4, 20)
    cov = np.load(out / "covariance_image.npy")
    np.testing.assert_allclose(cov, np.cov(planted[0].image.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12)
    shift = pd.read_csv(out / "centroid_shift.csv")
    np.testing.assert_allclose(shift["loss"], report.centroid_shift.loss, rtol=1e-8)


def test_report_md_states_claims_beside_the_data(written):
    _, out, _ = written
    text = (out / "report.md").read_text()
    assert "separate image from text alone (100 %)" in text
    assert "4, 20" in text or "20, 4" in text
    assert "thin shell: centred norm" in text and "sqrt(tr C)" in text
    assert "loss is lowest at α =" in text
    assert "caption number" in text  # extreme-conformity captions
    assert "## Warnings" not in text


def test_one_modality_runs_what_it_can(tmp_path, rng):
    es = embedding_set(None, rng.normal(size=(40, 6)) + 1)
    report = cg.analyze(es)
    assert set(report.thin_shell) == {"text"} and report.modality_gap is None and report.centroid_shift is None
    assert "no image rows" in report.skipped["thin_shell.image"]
    assert "modality_gap" in report.skipped and "centroid_shift" in report.skipped
    report.write(tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["modality_gap"] is None and "text" in data["conformity"] and "image" not in data["conformity"]
    assert not (tmp_path / "rows_image.csv").exists() and (tmp_path / "rows_text.csv").exists()
    assert "## Skipped" in (tmp_path / "report.md").read_text()


def test_unpaired_store_skips_the_pair_analyses(rng):
    es = embedding_set(rng.normal(size=(30, 5)) + 1, rng.normal(size=(20, 5)))
    report = cg.analyze(es, linear_cv=False)
    assert report.n_pairs == 0 and report.modality_gap is not None
    assert report.modality_gap.mean_matched_cosine is None
    assert "no matched image-text pairs" in report.skipped["centroid_shift"]
    assert report.separability.linear_cv_accuracy is None


def test_one_row_modality_is_skipped_with_the_reason(rng):
    es = embedding_set(rng.normal(size=(1, 5)), rng.normal(size=(20, 5)), text_image_index=np.zeros(20, dtype=np.int64))
    report = cg.analyze(es)
    assert "1 row" in report.skipped["conformity.image"]
    assert "separability" in report.skipped and "text" in report.conformity


def test_several_captions_per_image_pair_through_the_index(rng):
    img = rng.normal(size=(10, 6)) + 2
    txt = np.repeat(img, 3, axis=0) + 0.1 * rng.normal(size=(30, 6))
    es = embedding_set(img, txt, text_image_index=np.repeat(np.arange(10), 3))
    report = cg.analyze(es, linear_cv=False)
    assert report.n_pairs == 30 and report.centroid_shift.n_pairs == 30
    assert report.modality_gap.mean_matched_cosine > 0.99


def test_unit_norm_rows_give_a_warning_section(tmp_path, rng):
    img, txt, _ = cg.double_ellipsoid(100, 16, unit_norm=True, seed=2)
    report = cg.analyze(embedding_set(img, txt), linear_cv=False)
    assert any("already unit-norm" in w for w in report.warnings)
    report.write(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Warnings" in text and "degenerate" in text


def test_bad_options_are_refused(planted):
    es, _ = planted
    with pytest.raises(InputError, match="unknown analyze option"):
        cg.analyze(es, temprature=0.1)
    with pytest.raises(InputError, match="conformity"):
        cg.analyze(es, conformity="approx")
    with pytest.raises(InputError, match="temperature"):
        cg.analyze(es, temperature=-1)
