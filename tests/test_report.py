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
    assert "modality-label feature(s) (criterion: single-threshold balanced accuracy ≥ 95 %" in text
    assert "of them at 100 %" in text
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


# -- the file format: one writer, one reader ------------------------------------------------------


def _assert_same_result(a, b, where):
    """Every field of two analyzer results equal: JSON values exactly, table arrays to their 9 digits."""
    import dataclasses

    assert type(a) is type(b), where
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray) or (isinstance(x, (list, tuple)) and x and not isinstance(x[0], str)):
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            assert x.shape == y.shape, (where, f.name)
            np.testing.assert_allclose(y, x, rtol=1e-8, atol=0, err_msg=f"{where}.{f.name}")
        elif isinstance(x, float):
            assert y == pytest.approx(x, rel=1e-15, abs=0, nan_ok=True), (where, f.name)
        else:
            assert x == y, (where, f.name)


def test_write_then_read_gives_back_every_number(written):
    from clipgeo.report import read_report

    report, out, _ = written
    back = read_report(out)
    for name in ("dim", "n_image", "n_text", "n_pairs", "meta", "skipped", "warnings", "unit_norm"):
        assert getattr(back, name) == getattr(report, name), name
    assert back.config == report.config
    for name in ("modality_gap", "separability", "centroid_shift", "alignment_uniformity", "cosine_gradient", "projection"):
        _assert_same_result(getattr(report, name), getattr(back, name), name)
    for name in ("thin_shell", "mahalanobis_shell", "off_diagonal_dominance", "ellipsoid_offset", "conformity"):
        assert set(getattr(back, name)) == set(getattr(report, name)) == {"image", "text"}, name
        for m in ("image", "text"):
            _assert_same_result(getattr(report, name)[m], getattr(back, name)[m], f"{name}.{m}")
    for m in ("image", "text"):
        assert set(back.rows[m]) == set(report.rows[m])
        for key, values in report.rows[m].items():
            assert [str(v) for v in back.rows[m][key]] == [str(v) for v in values], (m, key)
        assert set(back.top_feature_values[m]) == set(report.top_feature_values[m])
        for k, values in report.top_feature_values[m].items():
            np.testing.assert_allclose(back.top_feature_values[m][k], values, rtol=1e-8, atol=0)
    pd.testing.assert_frame_equal(back.thin_shell_theory, report.thin_shell_theory, rtol=1e-8)
    assert back.timings == pytest.approx({k: round(v, 4) for k, v in report.timings.items()})


def test_write_computes_nothing_and_leaves_no_stale_or_temporary_files(written, tmp_path):
    import dataclasses

    report, _, _ = written
    bare = dataclasses.replace(report, thin_shell_theory=None, centroid_shift=None)
    (tmp_path / "centroid_shift.csv").write_text("stale")
    files = bare.write(tmp_path)
    assert "thin_shell_theory.csv" not in files and not (tmp_path / "thin_shell_theory.csv").exists()
    assert not (tmp_path / "centroid_shift.csv").exists()  # a previous report's table does not outlive it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)  # no temporary files left behind
    assert json.loads((tmp_path / "report.json").read_text())["files"] == sorted(files)


def test_read_report_refuses_what_is_not_a_report(tmp_path):
    from clipgeo.report import read_report

    with pytest.raises(InputError, match="no report.json"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text('{"hello": 1}')
    with pytest.raises(InputError, match="not a clipgeo report"):
        read_report(tmp_path)


def test_analyze_config_is_the_one_source_of_the_defaults(planted):
    import dataclasses

    from clipgeo.report import AnalyzeConfig

    es, _ = planted
    config = AnalyzeConfig(alphas=(-0.5, 0.0, 0.5), batch_size=256, linear_cv=False)
    by_config = cg.analyze(es, config)
    by_options = cg.analyze(es, alphas=[-0.5, 0.0, 0.5], batch_size=256, linear_cv=False)
    assert by_config.config == by_options.config == {**config.to_dict(), "alphas": [-0.5, 0.0, 0.5]}
    np.testing.assert_array_equal(by_config.centroid_shift.loss, by_options.centroid_shift.loss)
    # options replace the fields of a given config
    assert cg.analyze(es, config, seed=3).config["seed"] == 3
    defaults = {f.name: f.default for f in dataclasses.fields(AnalyzeConfig)}
    resolved = cg.analyze(es, linear_cv=False).config
    assert {k: v for k, v in resolved.items() if k not in ("alphas", "linear_cv")} == {
        k: v for k, v in defaults.items() if k not in ("alphas", "linear_cv")
    }
    assert len(resolved["alphas"]) == 21 and resolved["alphas"][10] == 0.0
    with pytest.raises(InputError, match="batch_size"):
        AnalyzeConfig(batch_size=1)
    with pytest.raises(InputError, match="alphas"):
        AnalyzeConfig(alphas=[])


def test_report_md_quotes_the_paper_values_from_the_one_table(written):
    from clipgeo.report import PAPER

    _, out, _ = written
    text = (out / "report.md").read_text()
    for key in ("offset_image", "offset_text", "conformity", "label_features"):
        assert PAPER[key].paper in text, key
    assert f"mean² {PAPER['thin_shell'].value['mean_sq']} vs variance {PAPER['thin_shell'].value['var']}" in text


def test_importing_the_config_pulls_in_no_numpy():
    import subprocess
    import sys

    code = "import sys; from clipgeo.report import AnalyzeConfig; AnalyzeConfig.__dataclass_fields__; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
