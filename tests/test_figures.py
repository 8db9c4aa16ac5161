"""`clipgeo figures` and clipgeo.plotting: every SPEC §10 figure, its JSON numbers, determinism, bad inputs.

The synthetic store is a double ellipsoid with two planted modality-label
features, so some numbers have known answers; the others are checked against
the analyzer results they must come from (never recomputed) and against NumPy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clipgeo.plotting import FIGURES, FigureSkipped, draw_figure, list_figures, read_report, render_figures
from clipgeo.report import analyze
from clipgeo.store import StoreMeta, import_embeddings, read_store, write_store
from clipgeo.synthetic import double_ellipsoid, embedding_set, thin_shell_curve
from tests.conftest import assert_clean_error, run_cli

DPI = 30  # small PNGs keep the tests fast; the layout is the same at any dpi
N, DIM = 150, 16
PLANTED = (3, 11)
SPEC_FIGURES = {
    "thin_shell_theory", "ellipse_2d", "separating_features", "best_pair", "separability_ranking",
    "first_features", "norms", "feature_variance", "mahalanobis_shell", "off_diagonal_dominance",
    "covariance", "offset", "conformity_estimate", "conformity_hist", "conformity_extremes",
    "centroid_shift", "cosine_gradient", "pca_projection",
}  # fmt: skip
# SPEC §12 (issue 13): the analyses beyond the paper
SPEC_FIGURES |= {
    "pair_conformity", "pair_conformity_disagreements", "retrieval_by_conformity", "commonness", "gap_metrics",
    "spectrum", "whitening",
}  # fmt: skip


def _write(root: Path, img=None, txt=None, *, model="synthetic-test", captions=True, paths=True) -> Path:
    n_img = 0 if img is None else len(img)
    n_txt = 0 if txt is None else len(txt)
    dim = (img if img is not None else txt).shape[1]
    write_store(
        root,
        StoreMeta(model=model, dim=dim, source="clipgeo.synthetic.double_ellipsoid(test)"),
        image=img,
        text=txt,
        captions=[f"caption number {i}" for i in range(n_txt)] if captions and n_txt else None,
        image_paths=[f"images/img_{i:03d}.jpg" for i in range(n_img)] if paths and n_img else None,
        text_image_ids=[str(i) for i in range(n_txt)] if n_img and n_txt else None,
    )
    return root


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    img, txt, truth = double_ellipsoid(n=N, dim=DIM, separating_features=PLANTED, seed=0)
    root = _write(tmp_path_factory.mktemp("store") / "syn", img, txt)
    return root, truth


@pytest.fixture(scope="module")
def report(synthetic):
    """The analyzer results the figures of the store must show (same defaults as render_figures)."""
    return analyze(read_store(synthetic[0]))


@pytest.fixture(scope="module")
def drawn(synthetic, tmp_path_factory):
    """All figures of the synthetic store, drawn through the library from the store directory."""
    out = tmp_path_factory.mktemp("figs_store")
    run = render_figures(synthetic[0], out, dpi=DPI)
    return out, run


def sidecar(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


# -- the registry ---------------------------------------------------------------------------------


def test_registry_has_every_spec_figure_with_one_line_descriptions():
    assert set(FIGURES) == SPEC_FIGURES
    assert len(FIGURES) >= 15
    for name, text in list_figures():
        assert text and "\n" not in text and len(text) < 120, name
        assert FIGURES[name].spec.startswith("§")


# -- drawing from a store -------------------------------------------------------------------------


def test_store_source_writes_every_figure_with_json(drawn):
    out, run = drawn
    assert run.skipped == {}
    assert set(run.written) == SPEC_FIGURES
    for name in SPEC_FIGURES:
        png = out / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        data = sidecar(out, name)
        assert data["figure"] == name and data["files"][0] == f"{name}.png"
        assert data["title"] and "synthetic-test" in data["caption"], name
        assert "double_ellipsoid" in data["caption"], name  # the data set is named
        assert data["provenance"]["store"]["model"] == "synthetic-test"
        assert data["provenance"]["versions"]["matplotlib"]


def test_planted_modality_label_features_come_first(drawn, synthetic):
    out, _ = drawn
    truth = synthetic[1]
    top = sidecar(out, "separating_features")
    assert {f["feature"] for f in top["features"][:2]} == set(truth.separating_features)
    assert all(f["threshold_accuracy"] == 1.0 for f in top["features"][:2])
    assert top["n_perfect"] >= 2
    pair = sidecar(out, "best_pair")
    assert pair["accuracy"] == 1.0
    # the LDA line puts every plotted image point on the image side
    w, b = np.array(pair["w"]), pair["b"]
    for m, sign in (("image", 1), ("text", -1)):
        pts = np.c_[pair["points"][m]["x"], pair["points"][m]["y"]]
        assert np.all(sign * (pts @ w + b) > 0), m


def test_json_numbers_equal_the_analyzer_results(drawn, report):
    out, _ = drawn
    exact = dict(rtol=1e-12, atol=0)  # for assert_allclose
    close = dict(rel=1e-12, abs=0)  # for pytest.approx

    norms = sidecar(out, "norms")
    for m in ("image", "text"):
        res = report.thin_shell[m]
        assert norms["stats"][m]["sqrt_trace_cov"] == pytest.approx(res.sqrt_trace_cov, **close)
        assert norms["stats"][m]["mean_centered_norm"] == pytest.approx(res.mean_centered_norm, **close)
        edges = np.array(norms["centered_norm"]["edges"])
        np.testing.assert_array_equal(norms["centered_norm"]["counts"][m], np.histogram(res.centered_norms, edges)[0])
        assert sum(norms["norm"]["counts"][m]) == N

    sep = sidecar(out, "separability_ranking")
    np.testing.assert_array_equal(sep["ranking"], report.separability.ranking)
    np.testing.assert_allclose(sep["threshold_accuracy_by_rank"], report.separability.threshold_accuracy[report.separability.ranking], **exact)

    first = sidecar(out, "first_features")
    assert [p["feature"] for p in first["features"]] == list(range(10))

    maha = sidecar(out, "mahalanobis_shell")["modalities"]
    odd = sidecar(out, "off_diagonal_dominance")
    cov = sidecar(out, "covariance")["covariance"]
    offset = sidecar(out, "offset")["modalities"]
    for m in ("image", "text"):
        assert maha[m]["cv"] == pytest.approx(report.mahalanobis_shell[m].cv, **close)
        assert maha[m]["euclidean_cv"] == pytest.approx(report.mahalanobis_shell[m].euclidean_cv, **close)
        np.testing.assert_allclose(odd["per_feature"][m], report.off_diagonal_dominance[m].per_feature, **exact)
        np.testing.assert_allclose(cov[m], report.off_diagonal_dominance[m].covariance, **exact)
        np.testing.assert_allclose(offset[m]["abs_mean"], np.abs(report.ellipsoid_offset[m].mean), **exact)
        assert offset[m]["ratio"] == pytest.approx(report.ellipsoid_offset[m].ratio, **close)

    conf = sidecar(out, "conformity_estimate")["modalities"]
    hist = sidecar(out, "conformity_hist")
    extremes = sidecar(out, "conformity_extremes")["modalities"]
    for m in ("image", "text"):
        res = report.conformity[m]
        rows = np.array(conf[m]["estimate_raw"]["rows"])
        np.testing.assert_allclose(conf[m]["conformity"], res.values[rows], **exact)
        np.testing.assert_allclose(conf[m]["estimate_raw"]["values"], res.estimate[rows], **exact)  # both estimates
        np.testing.assert_allclose(conf[m]["estimate_unit"]["values"], res.unit_estimate[rows], **exact)
        assert conf[m]["estimate_raw"]["pearson"] == pytest.approx(res.pearson, **close)
        assert conf[m]["estimate_unit"]["pearson"] == pytest.approx(res.unit_pearson, **close)
        np.testing.assert_array_equal(hist["counts"][m], np.histogram(res.values, np.array(hist["edges"]))[0])
        top, bottom = res.extremes(5)
        assert [e["row"] for e in extremes[m]["top"]] == list(top)
        assert [e["row"] for e in extremes[m]["bottom"]] == list(bottom)
    assert extremes["text"]["top"][0]["label"].startswith("caption number")
    assert extremes["image"]["top"][0]["label"].startswith("img_")

    shift = sidecar(out, "centroid_shift")
    cs = report.centroid_shift
    for key in ("alpha", "loss", "conformity_kl", "conformity_kl_estimate"):
        np.testing.assert_allclose(shift[key], getattr(cs, key), **exact)
    for key in ("loss", "alignment", "uniformity", "wang_isola_alignment", "wang_isola_uniformity_image"):
        np.testing.assert_allclose(shift["change"][key], cs.change(key), **exact)  # each term as its change from α = 0
    assert shift["argmin_loss"] == cs.loss_argmin and shift["argmin_at_edge"] == cs.at_edge("loss")
    assert shift["repetitions"] == cs.repetitions and shift["pairs_used"] == cs.pairs_used
    grad = sidecar(out, "cosine_gradient")
    np.testing.assert_allclose(grad["delta_cos_own"], report.cosine_gradient.delta_cos_own, **exact)
    np.testing.assert_allclose(grad["mean_norm"], report.cosine_gradient.mean_norm, **exact)
    np.testing.assert_allclose(grad["grad_norm"], report.cosine_gradient.grad_norm, **exact)
    np.testing.assert_allclose(grad["norm"], report.cosine_gradient.norm, **exact)
    pca = sidecar(out, "pca_projection")
    rows = np.array(pca["modalities"]["image"]["rows"])
    np.testing.assert_allclose(pca["modalities"]["image"]["pc1"], report.projection.image[rows, 0], **exact)
    np.testing.assert_allclose(pca["explained_variance_ratio"], report.projection.explained_variance_ratio, **exact)

    theory = sidecar(out, "thin_shell_theory")["series"]["gaussian"]
    table = thin_shell_curve(seed=0).query("distribution == 'gaussian'")
    np.testing.assert_allclose(theory["mean_norm"], table["mean_norm"], **exact)


def test_json_numbers_match_numpy_on_the_raw_rows(drawn, synthetic):
    out, _ = drawn
    es = read_store(synthetic[0], dtype=np.float64)
    norms = sidecar(out, "norms")["stats"]
    offset = sidecar(out, "offset")["modalities"]
    for m, x in (("image", es.image), ("text", es.text)):
        assert norms[m]["sqrt_trace_cov"] == pytest.approx(np.sqrt(np.trace(np.cov(x, rowvar=False))), rel=1e-10)
        assert offset[m]["ratio"] == pytest.approx(np.linalg.norm(x.mean(0)) / np.linalg.norm(x.std(0, ddof=1)), rel=1e-10)
    cov = np.array(sidecar(out, "covariance")["covariance"]["image"])
    np.testing.assert_allclose(cov, np.cov(es.image, rowvar=False), rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_png_svg_pdf_are_byte_identical_across_runs(drawn, synthetic, tmp_path):
    out, _ = drawn
    again = render_figures(synthetic[0], tmp_path / "a", dpi=DPI)
    for name in again.written:
        assert (tmp_path / "a" / f"{name}.png").read_bytes() == (out / f"{name}.png").read_bytes(), name
    few = ["ellipse_2d", "covariance", "conformity_extremes"]
    for sub in ("b", "c"):
        render_figures(synthetic[0], tmp_path / sub, only=few, formats="svg,pdf", dpi=DPI)
    for name in few:
        for fmt in ("svg", "pdf"):
            first = (tmp_path / "b" / f"{name}.{fmt}").read_bytes()
            assert first == (tmp_path / "c" / f"{name}.{fmt}").read_bytes(), (name, fmt)
            assert b"CreationDate" not in first or fmt == "svg"


def test_draw_figure_returns_a_figure_and_its_numbers(report):
    from matplotlib.figure import Figure

    fig, data = draw_figure("norms", report)
    assert isinstance(fig, Figure)
    assert data["stats"]["image"]["std_norm"] == report.thin_shell["image"].std_norm
    _, txt, _ = double_ellipsoid(n=40, dim=DIM, separating_features=PLANTED, seed=1)
    text_only = analyze(embedding_set(None, txt))
    with pytest.raises(FigureSkipped, match="image and text"):
        draw_figure("pca_projection", text_only)


# -- drawing from a `clipgeo analyze` output ------------------------------------------------------


@pytest.mark.slow
def test_report_dir_gives_the_same_numbers_as_the_store(drawn, synthetic, tmp_path):
    out, _ = drawn
    rep = tmp_path / "rep"
    proc = run_cli("analyze", synthetic[0], "--out", rep, "--no-html")
    assert proc.returncode == 0, proc.stderr
    figs = tmp_path / "figs"
    proc = run_cli("figures", rep, "--out", figs, "--dpi", DPI)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" not in proc.stdout
    assert {p.stem for p in figs.glob("*.png")} == SPEC_FIGURES

    def same(a, b, where):
        if isinstance(a, dict):
            assert set(a) == set(b), where
            for k in a:
                same(a[k], b[k], f"{where}.{k}")
        elif isinstance(a, list) and a and all(isinstance(x, (int, float)) for x in a):
            # the tables keep 9 significant digits; bin edges near 0 inherit the error of the range
            x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
            np.testing.assert_allclose(y, x, rtol=1e-7, atol=1e-7 * np.abs(x).max(), err_msg=where)
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                same(x, y, f"{where}[{i}]")
        elif isinstance(a, float):
            assert b == pytest.approx(a, rel=1e-7, abs=1e-12), where
        else:
            assert a == b, where

    for name in SPEC_FIGURES:
        a, b = sidecar(out, name), sidecar(figs, name)
        a.pop("provenance"), b.pop("provenance")
        same(a, b, name)


def test_read_report_rebuilds_the_analyzer_results(report, tmp_path):
    report.write(tmp_path / "rep")
    back = read_report(tmp_path / "rep").report
    np.testing.assert_array_equal(back.separability.ranking, report.separability.ranking)
    assert back.separability.best_pair == report.separability.best_pair
    for m in ("image", "text"):
        np.testing.assert_allclose(back.thin_shell[m].centered_norms, report.thin_shell[m].centered_norms, rtol=1e-8)
        np.testing.assert_allclose(back.off_diagonal_dominance[m].covariance, report.off_diagonal_dominance[m].covariance)
        np.testing.assert_allclose(back.conformity[m].values, report.conformity[m].values, rtol=1e-8)
        assert back.mahalanobis_shell[m].cv == report.mahalanobis_shell[m].cv
    np.testing.assert_allclose(back.centroid_shift.loss, report.centroid_shift.loss, rtol=1e-8)
    assert back.rows["text"]["captions"][7] == "caption number 7"


# -- the CLI --------------------------------------------------------------------------------------


def test_list_prints_every_name_with_its_description():
    proc = run_cli("figures", "--list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(FIGURES)
    assert all(len(line.split(None, 1)) == 2 for line in lines)


@pytest.mark.slow
def test_only_and_format_select_figures_and_files(synthetic, tmp_path):
    out = tmp_path / "f"
    proc = run_cli("figures", synthetic[0], "--out", out, "--only", "norms,offset", "--only", "ellipse_2d",
                   "--format", "png,svg", "--dpi", DPI)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = {"norms", "offset", "ellipse_2d"}
    assert {p.name for p in out.iterdir()} == {f"{n}.{ext}" for n in names for ext in ("png", "svg", "json")}
    assert "wrote 3 figure(s)" in proc.stdout


def test_bad_inputs_give_one_line_errors(synthetic, tmp_path):
    store = synthetic[0]
    assert_clean_error(run_cli("figures", tmp_path / "missing", "--out", tmp_path / "o"), "does not exist")
    assert_clean_error(run_cli("figures", store, "--out", tmp_path / "o", "--only", "nonsense"), "unknown figure", "--list")
    assert_clean_error(run_cli("figures", store, "--out", tmp_path / "o", "--format", "gif"), "unknown figure format")
    assert_clean_error(run_cli("figures", store), "--out")
    (tmp_path / "plain").mkdir()
    assert_clean_error(run_cli("figures", tmp_path / "plain", "--out", tmp_path / "o"), "neither a store")
    write_store(tmp_path / "empty", StoreMeta(model="m", dim=4), image=np.zeros((0, 4), np.float32))
    assert_clean_error(run_cli("figures", tmp_path / "empty", "--out", tmp_path / "o"), "no image and no text rows")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_text_only_store_skips_two_modality_figures(tmp_path):
    _, txt, _ = double_ellipsoid(n=40, dim=DIM, separating_features=PLANTED, seed=2)
    store = _write(tmp_path / "txt", None, txt)
    proc = run_cli("figures", store, "--out", tmp_path / "o", "--only", "best_pair,pca_projection")
    assert_clean_error(proc, "none of the requested figures", "image and text")
    proc = run_cli("figures", store, "--out", tmp_path / "o", "--dpi", DPI,
                   "--only", "norms,pca_projection,centroid_shift,conformity_extremes")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    skipped = [line for line in proc.stdout.splitlines() if "skipped" in line and ":" in line]
    assert len(skipped) == 2 and all("0 image and 40 text rows" in line for line in skipped)
    assert {p.stem for p in (tmp_path / "o").glob("*.png")} == {"norms", "conformity_extremes"}
    assert set(sidecar(tmp_path / "o", "norms")["stats"]) == {"text"}


def test_figures_that_lack_data_are_skipped_with_the_reason(tmp_path):
    img, txt, _ = double_ellipsoid(n=40, dim=DIM, separating_features=PLANTED, seed=3)
    store = _write(tmp_path / "bare", img, txt, captions=False, paths=False)
    run = render_figures(store, tmp_path / "o", only=["conformity_extremes", "norms"], dpi=DPI)
    assert set(run.written) == {"norms"}
    assert "no captions or image paths" in run.skipped["conformity_extremes"]


def test_unit_norm_rows_are_drawn_with_a_note(tmp_path):
    img, txt, _ = double_ellipsoid(n=40, dim=DIM, separating_features=PLANTED, seed=4, unit_norm=True)
    store = _write(tmp_path / "unit", img, txt)
    run = render_figures(store, tmp_path / "o", only=["norms", "conformity_estimate"], dpi=DPI)
    assert set(run.written) == {"norms", "conformity_estimate"}
    assert any("unit-norm" in n for n in sidecar(tmp_path / "o", "norms")["notes"])
    assert any("exactly linear" in n for n in sidecar(tmp_path / "o", "conformity_estimate")["notes"])


# -- real embeddings ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.realdata
def test_every_figure_from_an_imported_real_store(realdata, tmp_path):
    folder = realdata / "flickr8k_100x5_clip_vitb32"
    store = import_embeddings(
        tmp_path / "flickr",
        image=folder / "image_embeddings.npy",
        text=folder / "text_embeddings.npy",
        captions=f"{folder / 'metadata.csv'}:caption",
        image_paths=f"{folder / 'metadata.csv'}:image_path",
        model_name="ViT-B-32",
        pretrained="openai",
    )
    run = render_figures(store, tmp_path / "o", dpi=DPI)
    assert run.skipped == {} and set(run.written) == SPEC_FIGURES
    cov = sidecar(tmp_path / "o", "covariance")
    assert cov["covariance"]["image"] == {"npz": "covariance.image", "shape": [512, 512]}  # too big for JSON
    arrays = np.load(tmp_path / "o" / "covariance.npz")
    x = read_store(store, dtype=np.float64).image
    np.testing.assert_allclose(arrays["covariance.image"], np.cov(x, rowvar=False), rtol=1e-7, atol=1e-12)
    norms = sidecar(tmp_path / "o", "norms")
    assert "ViT-B-32/openai" in norms["caption"] and "flickr8k_100x5_clip_vitb32" in norms["caption"]
    assert any("unit-norm" in n for n in norms["notes"])  # these embeddings were saved normalised
    extremes = sidecar(tmp_path / "o", "conformity_extremes")["modalities"]
    assert all(e["label"] for e in extremes["text"]["top"])
