"""`clipgeo simulate` (known answers) and a shortened `clipgeo demo` run end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clipgeo.simulate import anisotropic_shell_table, simulate_store
from clipgeo.store import read_store
from tests.conftest import assert_clean_error, run_cli


def test_thin_shell_cli_writes_tables_that_follow_the_theory(tmp_path):
    proc = run_cli("simulate", "thin-shell", "--out", tmp_path, "--dims", "2,64,512", "--n-samples", "800")
    assert proc.returncode == 0, proc.stderr
    iso = pd.read_csv(tmp_path / "thin_shell_isotropic.csv")
    big = iso[iso["dim"] == 512]
    # mean norm -> sqrt(n) and the spread stays O(1) for every law (SPEC §3)
    np.testing.assert_allclose(big["mean_norm"], np.sqrt(512), rtol=0.01)
    assert (big["std_norm"] < 1.5).all()
    assert (iso.groupby("distribution")["relative_thickness"].apply(lambda s: s.iloc[-1] < s.iloc[0] / 5)).all()
    data = json.loads((tmp_path / "thin_shell.json").read_text())
    assert data["n_samples"] == 800 and data["provenance"]["config"]["dims"] == [2, 64, 512]
    assert (tmp_path / "thin_shell.png").stat().st_size > 10_000


def test_anisotropic_centred_norm_is_sqrt_trace():
    table = anisotropic_shell_table([256, 1024], 600, seed=3)
    np.testing.assert_allclose(table["mean_centered_norm"], table["sqrt_trace_cov"], rtol=0.03)
    assert table["relative_thickness"].iloc[-1] < 0.1


def test_thin_shell_bad_dims(tmp_path):
    assert_clean_error(run_cli("simulate", "thin-shell", "--out", tmp_path, "--dims", "2,x"), "--dims")
    assert_clean_error(run_cli("simulate", "thin-shell", "--out", tmp_path, "--dims", "0,4"), "--dims")


def test_double_ellipsoid_store_has_the_planted_truth(tmp_path):
    path, truth = simulate_store(tmp_path / "s", n=3000, dim=16, offset_ratio=2.0, separating_features=2, seed=1)
    es = read_store(path)
    assert (es.n_image, es.n_text, es.n_pairs, es.dim) == (3000, 3000, 3000, 16)
    img = es.image.astype(np.float64)
    ratio = np.linalg.norm(img.mean(0)) / np.linalg.norm(img.std(0, ddof=1))
    assert ratio == pytest.approx(2.0, rel=0.05) and truth["offset_ratio_image"] == pytest.approx(2.0, rel=1e-6)
    for k in truth["separating_features"]:  # each planted feature separates the modalities alone
        assert es.image[:, k].mean() - es.text[:, k].mean() > 0
    assert json.loads((path / "ground_truth.json").read_text()) == truth


def test_double_ellipsoid_cli(tmp_path):
    proc = run_cli("simulate", "double-ellipsoid", "--out", tmp_path / "s", "--n", "200", "--dim", "32", "--unit-norm")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(run_cli("info", tmp_path / "s", "--json").stdout)
    assert info["n_pairs"] == 200 and info["normalized"] is True
    assert_clean_error(run_cli("simulate", "double-ellipsoid", "--out", tmp_path / "t", "--n", "1"), "--n")


@pytest.mark.slow
def test_short_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", out, "--shapes", "300", "--eval-shapes", "80", "--epochs", "1",
                   "--realdata", tmp_path / "none", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = out / "report.md"
    assert f"report: {report}" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith(f"report.html: {out / 'report.html'}")  # the demo ends with its page
    text = report.read_text()
    assert "| Modality gap" in text and "trained tiny CLIP" in text
    for name in ("trained", "untrained"):
        data = json.loads((out / "analysis" / name / "report.json").read_text())
        assert data["n_pairs"] == 80
        assert f"{data['modality_gap']['l2_centroid_distance']:.3g}" in text
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) >= 15
    for png in pngs:  # every figure the report embeds exists
        assert f"figures/{png.name}" in text
    # an interrupted demo continues: a second run reuses every finished step
    again = run_cli("demo", "--out", out, "--shapes", "300", "--eval-shapes", "80", "--epochs", "1",
                    "--realdata", tmp_path / "none", timeout=600)
    assert again.returncode == 0 and "already trained" in again.stderr


def test_thin_shell_figure_is_reproducible_and_its_json_holds_the_tables(tmp_path):
    from clipgeo.simulate import thin_shell_study

    a = thin_shell_study(tmp_path / "a", [2, 16], n_samples=50, seed=1, dpi=40)
    b = thin_shell_study(tmp_path / "b", [2, 16], n_samples=50, seed=1, dpi=40)
    assert a["figure"].read_bytes() == b["figure"].read_bytes()
    data = json.loads(a["json"].read_text())
    iso = pd.read_csv(a["isotropic"])
    assert data["figure"] == "thin_shell" and data["files"] == ["thin_shell.png"]
    np.testing.assert_array_equal([r["mean_norm"] for r in data["isotropic"]], iso["mean_norm"])
    assert [r["dim"] for r in data["anisotropic"]] == [2, 16]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in a.values())


def test_simulate_and_demo_option_defaults_are_the_dataclass_defaults():
    import dataclasses

    import typer.main

    from clipgeo.cli import app
    from clipgeo.demo import DemoConfig
    from clipgeo.simulate import DoubleEllipsoidConfig, ThinShellConfig

    command = typer.main.get_command(app)

    def shown(cmd):
        return {p.name: p.default for p in cmd.params}

    def fields(cls):
        return {f.name: f.default for f in dataclasses.fields(cls)}

    sim = command.commands["simulate"].commands
    thin, ts = shown(sim["thin-shell"]), fields(ThinShellConfig)
    assert thin["dims"] == ",".join(map(str, ts["dims"])) and thin["n_samples"] == ts["n_samples"]
    de, cfg = shown(sim["double-ellipsoid"]), fields(DoubleEllipsoidConfig)
    assert (de["n"], de["dim"], de["gap"], de["offset"]) == (cfg["n"], cfg["dim"], cfg["separation"], cfg["offset_ratio"])
    demo, dc = shown(command.commands["demo"]), fields(DemoConfig)
    assert (demo["n_train"], demo["n_eval"], demo["epochs"], demo["seed"]) == (dc["n_train"], dc["n_eval"], dc["epochs"], dc["seed"])


def test_demo_finds_the_real_dumps_it_is_given_and_quotes_the_paper_table(tmp_path, rng):
    from clipgeo.demo import _real_section, claim_rows, real_sets
    from clipgeo.report import PAPER, analyze
    from clipgeo.synthetic import double_ellipsoid, embedding_set

    real = tmp_path / "real"
    for name, text_file in (("b_set", "caption_embeddings.npy"), ("a_set", "text_embeddings.npy")):
        (real / name).mkdir(parents=True)
        img, txt, _ = double_ellipsoid(60, 32, unit_norm=True, seed=len(name))
        np.save(real / name / "image_embeddings.npy", img)
        np.save(real / name / text_file, txt)
    (real / "not_a_dump").mkdir()
    assert [name for name, _, _ in real_sets(real)] == ["a_set", "b_set"]
    section = _real_section(real, tmp_path / "stores", log=lambda s: None)
    assert f"from {real}" in section and "| a_set | 60 |" in section and "| b_set | 60 |" in section
    assert PAPER["modality_gap"].paper in section and PAPER["best_feature"].paper in section

    img, txt, _ = double_ellipsoid(80, 32, seed=0)
    rows = claim_rows(analyze(embedding_set(img, txt), linear_cv=False))
    by_claim = {claim: (paper, here) for claim, paper, here in rows}
    assert by_claim[PAPER["modality_gap"].claim][0] == PAPER["modality_gap"].paper
    assert by_claim[PAPER["conformity"].claim.format(m="image")][0] == PAPER["conformity"].paper
    assert by_claim[PAPER["offset_text"].claim][0] == "1.03"


def test_demo_copies_figures_atomically(tmp_path, monkeypatch):
    import shutil

    from clipgeo import demo

    figs, dest = tmp_path / "figures", tmp_path / "dest"
    figs.mkdir()
    (figs / "a.png").write_bytes(b"new a")
    (figs / "b.png").write_bytes(b"new b")
    (figs / "note.json").write_text("{}")  # not a PNG: not copied
    curves = tmp_path / "curves.png"
    curves.write_bytes(b"curves")
    written = demo.copy_figures(figs, curves, dest)
    assert sorted(p.name for p in written) == ["a.png", "b.png", "training_curves.png"]
    assert (dest / "a.png").read_bytes() == b"new a" and (dest / "training_curves.png").read_bytes() == b"curves"

    # a copy that dies half-way leaves the previous file whole and no temporary file beside it
    real_copy = shutil.copyfile

    def dies_half_way(src, dst, *args, **kwargs):
        if str(src).endswith("b.png"):
            with open(dst, "wb") as handle:
                handle.write(b"ha")
            raise OSError("disk full")
        return real_copy(src, dst, *args, **kwargs)

    (figs / "b.png").write_bytes(b"newer b")
    monkeypatch.setattr(shutil, "copyfile", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        demo.copy_figures(figs, tmp_path / "no_curves.png", dest)
    assert (dest / "b.png").read_bytes() == b"new b"
    assert sorted(p.name for p in dest.iterdir()) == ["a.png", "b.png", "training_curves.png"]
