"""Figures quote the paper's values from clipgeo.report.PAPER, never as literals of their own."""

from __future__ import annotations

import importlib
import json
from dataclasses import replace

from clipgeo.report import PAPER
from clipgeo.store import StoreMeta, write_store
from clipgeo.synthetic import double_ellipsoid


def test_conformity_figure_quotes_the_papers_r_from_the_table(tmp_path, monkeypatch):
    from clipgeo.plotting import render_figures

    img, txt, _ = double_ellipsoid(n=40, dim=16, separating_features=(3, 11), seed=4, unit_norm=True)
    store = tmp_path / "unit"
    write_store(store, StoreMeta(model="synthetic-test", dim=16, source="test"), image=img, text=txt)
    monkeypatch.setitem(PAPER, "conformity", replace(PAPER["conformity"], paper="0.4242", value=0.4242))
    run = render_figures(store, tmp_path / "o", only=["conformity_estimate"], dpi=20)
    assert set(run.written) == {"conformity_estimate"}
    notes = json.loads((tmp_path / "o" / "conformity_estimate.json").read_text())["notes"]
    assert any("test the paper's r = 0.4242" in n for n in notes)  # the unit-norm note
    assert any(n.startswith("paper: r = 0.4242 ") for n in notes)
    assert not any("0.9998" in n for n in notes)


def _study_inputs():
    setting = "fixed 0.01 / plain / random init"
    row = {"setting": setting, "l2_gap": 0.5, "l2_gap_start": 1.3, "offset_ratio_image": 0.9, "offset_ratio_text": 1.1,
           "best_feature_accuracy": 0.97, "relative_thickness_image": 0.2, "relative_thickness_text": 0.3,
           "conformity_spread_image": 0.05, "conformity_spread_text": 0.04, "r1": 0.3, "chance": 0.01}  # fmt: skip
    summary = {k: v for k, v in row.items() if k != "l2_gap_start"}
    return [row], [summary]


def test_study_figure_draws_the_papers_values_from_the_table(tmp_path, monkeypatch):
    import clipgeo.plotting._study as study_plot

    try:
        with monkeypatch.context() as patch:
            patch.setitem(PAPER, "modality_gap", replace(PAPER["modality_gap"], value=0.61))
            patch.setitem(PAPER, "best_feature", replace(PAPER["best_feature"], value=0.9))
            patched = importlib.reload(study_plot)  # the panels are built when the module is imported
            rows, summary = _study_inputs()
            written = patched.plot_study(rows, summary, tmp_path, reproducing=[])
            data = json.loads(written[-1].read_text())
            labels = {title: label for title, _, _, label in patched.STUDY_PANELS}
    finally:
        importlib.reload(study_plot)
    references = [panel["reference"] for panel in data["panels"]]
    assert references[0] == 0.61 and references[2] == 0.9
    assert labels["l2 modality gap (hollow: at step 0)"] == "real ViT-B/32 0.61"
    assert labels["best single feature (balanced acc.)"] == "real 90 %"
    assert "gap 0.61, offset ≈ 1, a feature separating 90 %" in data["caption"]
    # and with the table as it is, the figure says what the paper says
    assert study_plot.STUDY_PANELS[0][2] == PAPER["modality_gap"].value
