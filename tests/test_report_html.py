"""report.html: one self-contained page per analysis (or side by side), its verdicts, `clipgeo report`, a real browser.

The analysis is of a planted double ellipsoid (two modality-label features), so the verdicts have known
answers; every number the page shows is checked against report.json, the figures against PNG decoding, and
the page in headless Chromium (skipped when no browser is installed).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from clipgeo.errors import InputError
from clipgeo.report import _html as H
from clipgeo.report import analyze, write_html
from clipgeo.store import StoreMeta, read_store, write_store
from clipgeo.synthetic import double_ellipsoid
from tests.browser import check_page, find_chromium, screenshot
from tests.conftest import assert_clean_error, run_cli

N, DIM = 120, 12
PLANTED = (3, 7)
FIGS = ["norms", "pca_projection"]  # two figures keep the tests fast; the page code does not care how many


def _store(root: Path, img, txt, model: str, captions=None) -> Path:
    write_store(
        root,
        StoreMeta(model=model, dim=img.shape[1], pretrained="none", precision="fp32", source="synthetic test"),
        image=img,
        text=txt,
        captions=captions or [f"caption {i}" for i in range(len(txt))],
        image_paths=[f"images/{i:03d}.png" for i in range(len(img))],
        text_image_ids=[str(i) for i in range(len(txt))],
    )
    return root


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    """A planted double ellipsoid analysed (with bootstrap intervals) into a directory, and its Report."""
    root = tmp_path_factory.mktemp("html")
    img, txt, _ = double_ellipsoid(n=N, dim=DIM, separating_features=PLANTED, seed=0)
    captions = [f"caption {i}" for i in range(N)]
    captions[0] = "a <script>alert(1)</script> & <b>bold</b> caption"  # shown in report.md's extremes/disagreements
    store = _store(root / "store", img, txt, "planted", captions)
    report = analyze(read_store(store), bootstrap=20, linear_cv=False)
    report.write(root / "analysis")
    return root / "analysis", report


@pytest.fixture(scope="module")
def page(analysis, tmp_path_factory):
    out = tmp_path_factory.mktemp("page")
    run = write_html(analysis[0], out, figures=FIGS)
    return run, run.path.read_text(encoding="utf-8")


def _section_ids(html: str) -> list[str]:
    return re.findall(r'<section class="claim" id="([^"]+)">', html)


def _section(html: str, key: str) -> str:
    start = html.index(f'<section class="claim" id="{key}">')
    return html[start : html.index("</section>", start)]


# -- the page --------------------------------------------------------------------------------------------------


def test_page_is_self_contained(page):
    run, html = page
    assert run.path.name == "report.html"
    from markupsafe import escape

    assert f'content="{escape(H.CSP)}"' in html and "default-src 'none'" in H.CSP  # the browser may load nothing
    assert "<script" not in html and "<link" not in html and "<iframe" not in html
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources), sources
    assert not re.search(r"https?://", " ".join(sources))


def test_sections_follow_the_claims_of_the_paper(page):
    ids = _section_ids(page[1])
    known = [s.key for s in H.SECTIONS if s.key in ids]
    assert known[:9] == [
        "modality_gap", "separability", "thin_shell", "mahalanobis_shell", "off_diagonal_dominance",
        "ellipsoid_offset", "conformity", "centroid_shift", "cosine_gradient",
    ]  # fmt: skip
    assert [i for i in ids if i in known] == known  # the page keeps SECTIONS' order
    assert ids[-2:] == ["skipped", "provenance-details"]
    for key in known[:9]:  # every claim: a verdict badge and a collapsed table
        body = _section(page[1], key)
        assert 'class="badge ' in body and "<details>" in body, key


def test_verdicts_measured_on_the_planted_data(analysis, page):
    data = json.loads((analysis[0] / "report.json").read_text())
    gap = H.verdict_modality_gap(data)[0]
    # the planted modalities sit apart: a matched pair is less alike than two rows of one modality
    assert data["modality_gap"]["mean_matched_cosine"] < min(data["modality_gap"]["image_cone"], data["modality_gap"]["text_cone"])
    assert gap.status == "holds"
    sep = H.verdict_separability(data)[0]
    listed = re.search(r"≥ 95 % \(([\d, ]+)\)", sep.text).group(1)
    assert sep.status == "holds" and {int(k) for k in listed.split(",")} == set(PLANTED)  # exactly the planted two
    assert "CV" not in sep.text  # linear_cv=False: not run, so not shown
    body = _section(page[1], "separability")
    assert "holds here" in body and listed in body


def test_numbers_with_their_bootstrap_intervals(analysis, page):
    data = json.loads((analysis[0] / "report.json").read_text())
    iv = data["bootstrap"]["intervals"]["modality_gap.l2_centroid_distance"]
    shown = f"{H.fmt(iv['value'])} [{H.fmt(iv['low'])}, {H.fmt(iv['high'])}]"
    assert iv["low"] <= iv["value"] <= iv["high"]
    assert shown in _section(page[1], "modality_gap")
    boot = _section(page[1], "bootstrap")
    for name in data["bootstrap"]["intervals"]:  # the headline table lists every interval
        assert f"<code>{name}</code>" in boot, name
    ts = data["thin_shell"]["image"]
    assert H.fmt(ts["sqrt_trace_cov"]) in _section(page[1], "thin_shell")


def test_header_provenance_and_no_warnings(analysis, page):
    html = page[1]
    head = html[html.index("<header>") : html.index("</header>")]
    for needle in ("planted/none", "pretrained tag none", "fp32", f"{N} image, {N} text, {N} pairs; d = {DIM}", str(analysis[0])):
        assert needle in head, needle
    assert 'id="warnings"' not in html


def test_figures_are_embedded_pngs(page):
    run, html = page
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert len(uris) == len(FIGS) == run.figures[next(iter(run.figures))]
    for uri in uris:
        png = base64.b64decode(uri)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and H._png_width(png) > 100
    assert 'id="fig-pca_projection-1"' in _section(html, "modality_gap")
    assert 'id="fig-norms-1"' in _section(html, "thin_shell")


def test_a_figures_folder_is_embedded_as_it_is(analysis, tmp_path):
    from clipgeo.plotting import render_figures

    figs = tmp_path / "figs"
    render_figures(analysis[0], figs, only=["norms"], dpi=30)
    run = write_html(analysis[0], tmp_path / "o", figures_dirs=[figs], figures=["norms"], draw=False)
    html = run.path.read_text()
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert [base64.b64decode(e) for e in embedded] == [(figs / "norms.png").read_bytes()]


def test_markdown_is_rendered_and_escaped(page):
    html = page[1]
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html
    assert "<strong>Here</strong>" in _section(html, "modality_gap")  # report.md's **Here** lines, as HTML


def test_unknown_keys_and_report_md_sections_get_their_own(analysis, tmp_path):
    """What the other analyses add later appears without a code change: a new report.json key, a new report.md section."""
    copy = tmp_path / "analysis"
    shutil.copytree(analysis[0], copy)
    data = json.loads((copy / "report.json").read_text())
    data["novel_measure"] = {"score": 0.123456789, "per_modality": {"image": {"n": 7}}}
    data["headlines"]["novel_measure.score"] = 0.123456789
    data["bootstrap"]["intervals"]["novel_measure.score"] = {"value": 0.123456789, "low": 0.1, "high": 0.15, "n_boot": 20}
    (copy / "report.json").write_text(json.dumps(data))
    md = (copy / "report.md").read_text()
    (copy / "report.md").write_text(md + "\n### Novel measure\n- **Here**: novel score 0.1235.\n\n## Something else entirely\n\nfree text\n")
    html = write_html(copy, figures=FIGS, draw=False).path.read_text()
    ids = _section_ids(html)
    assert ids.index("novel_measure") > ids.index("bootstrap")  # after the known sections
    body = _section(html, "novel_measure")
    assert "<strong>0.1235</strong> [0.1, 0.15]" in body and "novel score 0.1235" in body
    assert "<code>novel_measure.per_modality.image.n</code></td><td>7</td>" in body
    assert "md-something-else-entirely" in ids and "free text" in _section(html, "md-something-else-entirely")


@pytest.mark.parametrize(
    ("fn", "data", "status"),
    [
        (H.verdict_thin_shell, {"thin_shell": {"image": {"relative_thickness": 0.05}}}, ["holds"]),
        (H.verdict_thin_shell, {"thin_shell": {"image": {"relative_thickness": 0.2}}}, ["partly"]),
        (H.verdict_thin_shell, {"thin_shell": {"image": {"relative_thickness": 0.5}}}, ["fails"]),
        (H.verdict_thin_shell, {"thin_shell": {"text": {"relative_thickness": 0.01}}, "unit_norm": {"text": True}}, ["na"]),
        (H.verdict_mahalanobis, {"mahalanobis_shell": {"image": {"thinner_than_euclidean": True}, "text": {"thinner_than_euclidean": False}}}, ["holds", "fails"]),
        (H.verdict_odd, {"off_diagonal_dominance": {"image": {"median": 1.5}, "text": {"median": 0.7}}}, ["holds", "fails"]),
        (H.verdict_offset, {"ellipsoid_offset": {"image": {"ratio": 0.94}, "text": {"ratio": 0.2}}}, ["holds", "fails"]),
        (H.verdict_conformity, {"conformity": {"image": {"pearson": 0.9998}, "text": {"pearson": 0.95}}}, ["holds", "partly"]),
        (H.verdict_conformity, {"conformity": {"image": {"pearson": 0.5}}}, ["fails"]),
        (H.verdict_conformity, {"conformity": {"text": {"pearson": 1.0}}, "unit_norm": {"text": True}}, ["na"]),
        (H.verdict_centroid_shift, {"centroid_shift": {"alpha": [-0.2, -0.1, 0.0, 0.1, 0.2], "argmin_loss": 0.0, "argmin_conformity_kl": 0.0}}, ["holds"]),
        (H.verdict_centroid_shift, {"centroid_shift": {"alpha": [-0.2, -0.1, 0.0, 0.1, 0.2], "argmin_loss": 0.2, "argmin_conformity_kl": 0.0}}, ["partly"]),
        (H.verdict_centroid_shift, {"centroid_shift": {"alpha": [-0.2, -0.1, 0.0, 0.1, 0.2], "argmin_loss": 0.1, "argmin_conformity_kl": -0.2}}, ["fails"]),
        (H.verdict_cosine_gradient, {"cosine_gradient": {"loglog_slope": -0.95, "max_relative_error": 1e-12}}, ["holds"]),
        (H.verdict_cosine_gradient, {"cosine_gradient": {"loglog_slope": 0.3, "max_relative_error": 1e-12}}, ["fails"]),
        (H.verdict_separability, {"separability": {"n_modality_label_features": 0, "linear_cv_accuracy": 0.99, "features": [{"feature": 1, "threshold_accuracy": 0.8}]}}, ["partly"]),
        (H.verdict_separability, {"separability": {"n_modality_label_features": 0, "linear_cv_accuracy": 0.6, "features": [{"feature": 1, "threshold_accuracy": 0.6}]}}, ["fails"]),
        (H.verdict_modality_gap, {"modality_gap": {"l2_centroid_distance": 0.05, "mean_matched_cosine": 0.6, "image_cone": 0.5, "text_cone": 0.4}}, ["fails"]),
        (H.verdict_modality_gap, {"modality_gap": {"l2_centroid_distance": 0.8, "mean_matched_cosine": None, "image_cone": 0.5, "text_cone": 0.4}}, ["measured"]),
    ],
)  # fmt: skip
def test_verdict_rules(fn, data, status):
    assert [v.status for v in fn(data)] == status


def test_verdicts_of_absent_analyses_are_empty():
    for spec in H.SECTIONS:
        if spec.verdict is not None:
            assert spec.verdict({}) == [], spec.key


# -- side by side --------------------------------------------------------------------------------------------


def test_side_by_side_of_different_dimensions_warns(analysis, tmp_path):
    rng = np.random.default_rng(1)
    small = _store(tmp_path / "s", rng.normal(size=(60, 6)).astype(np.float32), rng.normal(size=(60, 6)).astype(np.float32), "noise")
    analyze(read_store(small), bootstrap=0, linear_cv=False).write(tmp_path / "noise")
    run = write_html([analysis[0], tmp_path / "noise"], tmp_path / "both", labels=["planted", "noise"], figures=["pca_projection"])
    html = run.path.read_text()
    assert any("different dimensions" in w and "d = 12" in w and "d = 6" in w for w in run.warnings)
    assert 'id="warnings"' in html and "different dimensions" in html
    assert run.figures == {"planted": 1, "noise": 1}
    gap = _section(html, "modality_gap")
    assert gap.count('<h3 class="label">') == 2 and "planted" in gap and "noise" in gap
    # the noise has no gap: the summary shows one verdict per analysis, and they differ
    summary = html[html.index('<section id="summary">') :]
    row = summary[summary.index('href="#modality_gap"') : summary.index("</tr>", summary.index('href="#modality_gap"'))]
    assert "holds here" in row and "does not hold here" in row
    assert "bootstrap" in html  # the noise analysis skipped it: listed, not an error
    assert "turned off (bootstrap = 0)" in html


def test_bad_input_is_one_line_and_writes_nothing(analysis, tmp_path):
    a = analysis[0]
    with pytest.raises(InputError, match="is not an analysis"):
        write_html(tmp_path)
    with pytest.raises(InputError, match="inside the analysis directory"):
        write_html(a, a / "sub")
    with pytest.raises(InputError, match="give out=DIR"):
        write_html([a, a])
    with pytest.raises(InputError, match="2 labels for 1 analyses"):
        write_html(a, tmp_path / "x", labels=["a", "b"])
    with pytest.raises(InputError, match="inside the analysis directory"):
        write_html([a, a], a)
    assert not (a / "sub").exists() and not (tmp_path / "x").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        write_html(a, tmp_path / "file")


def test_a_failure_leaves_the_old_page(analysis, tmp_path, monkeypatch):
    out = tmp_path / "o"
    first = write_html(analysis[0], out, figures=["norms"]).path
    before = first.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("template failed")

    monkeypatch.setattr(H, "render_html", broken)
    with pytest.raises(RuntimeError):
        write_html(analysis[0], out, figures=["norms"])
    assert first.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["report.html"]


# -- the commands --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_clipgeo_report_command(analysis, tmp_path):
    a = analysis[0]
    proc = run_cli("report", a, a, "--out", tmp_path / "both", "--label", "one", "--label", "two", "--only", "norms")
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tmp_path / 'both' / 'report.html'}" in proc.stdout and "one: 1, two: 1" in proc.stdout
    html = (tmp_path / "both" / "report.html").read_text()
    assert "clipgeo report: one vs two" in html
    assert_clean_error(run_cli("report", tmp_path / "nothing"), "does not exist")
    assert_clean_error(run_cli("report", tmp_path), "not an analysis")
    assert_clean_error(run_cli("report", a, "--out", a / "inner"), "inside the analysis directory")
    assert_clean_error(run_cli("report", a, a), "--out")
    assert_clean_error(run_cli("report", a, "--only", "nope", "--out", tmp_path / "z"), "unknown figure")
    assert not (a / "inner").exists() and not (tmp_path / "z").exists()


@pytest.mark.slow
def test_analyze_writes_the_page_by_default(analysis, tmp_path):
    """`clipgeo analyze` writes report.html beside report.md (every figure drawn), `--no-html` does not."""
    store = analysis[0].parent / "store"
    proc = run_cli("analyze", store, "--out", tmp_path / "a", "--bootstrap", "0", "--no-linear-cv", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "a" / "report.html"
    assert page.is_file() and str(page) in proc.stdout
    from clipgeo.plotting import FIGURES

    html = page.read_text()
    drawn = set(re.findall(r'<figure id="fig-([a-z0-9_]+)-1">', html))
    skipped = set(re.findall(r"figure <code>([a-z0-9_]+)</code>:", html))
    assert drawn | skipped == set(FIGURES) and len(drawn) >= 18
    proc = run_cli("analyze", store, "--out", tmp_path / "b", "--bootstrap", "0", "--no-linear-cv", "--no-html")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "b" / "report.html").exists()
    # a rewrite of the analysis removes the page of the previous one
    proc = run_cli("analyze", store, "--out", tmp_path / "a", "--bootstrap", "0", "--no-linear-cv", "--no-html")
    assert proc.returncode == 0 and not page.exists()


# -- a real browser ------------------------------------------------------------------------------------------

browser = pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (apt-get install chromium)")


@browser
@pytest.mark.browser
@pytest.mark.slow
def test_the_page_in_headless_chromium(analysis, tmp_path):
    """Every figure loads (naturalWidth > 0), nothing errs or loads from outside, the key numbers are on screen."""
    a, report = analysis
    names = ["pca_projection", "norms", "conformity_hist", "centroid_shift"]
    run = write_html([a, a], tmp_path / "sbs", labels=["trained", "untrained"], figures=names)
    seen = check_page(run.path)
    assert len(seen.images) == 2 * len(names)
    assert not seen.broken_images, seen.broken_images
    assert all(img["naturalWidth"] > 100 and img["naturalHeight"] > 100 for img in seen.images)
    assert seen.errors == [] and seen.console == [], (seen.errors, seen.console)
    assert [r for r in seen.resources if not r.startswith("data:")] == []
    gap = report.modality_gap.l2_centroid_distance
    for needle in (H.fmt(gap), "trained", "untrained", "holds here", "Linear separability", f"d = {DIM}"):
        assert needle in seen.text, needle
    shot = screenshot(run.path, tmp_path / "shot.png", width=1200, height=1600)
    png = shot.read_bytes()
    assert H._png_width(png) == 1200


@browser
@pytest.mark.browser
def test_the_browser_check_catches_a_broken_page(tmp_path):
    """The probe is not vacuous: a broken image and a blocked load are both reported."""
    from markupsafe import escape

    page = tmp_path / "bad.html"
    page.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{escape(H.CSP)}"></head><body>'
        '<img src="data:image/png;base64,AAAA" alt="broken"><img src="missing.png" alt="outside"><p>text 42</p>'
        "</body></html>"
    )
    seen = check_page(page)
    assert {img["alt"] for img in seen.broken_images} == {"broken", "outside"}
    assert any("Content Security Policy" in line for line in seen.console)
    assert "text 42" in seen.text


def test_a_new_figure_joins_the_section_its_name_starts_with(analysis):
    """A figure registered later (``spectrum_by_layer``) goes where its name says; one of no known stem to the end."""
    a = H.load_analysis(analysis[0], figures=["norms"], draw=False)
    png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(24)).decode()
    for name in ("spectrum_by_layer", "pair_conformity_extra", "unheard_of"):
        a.figures[name] = H.FigureImage(name=name, uri=png)
    sections = {s.key: s for s in H._build_sections([a])}
    assert [f.name for f in sections["spectrum"].columns[0].figures] == ["spectrum_by_layer"]
    assert [f.name for f in sections["pair_conformity"].columns[0].figures] == ["pair_conformity_extra"]
    assert [f.name for f in sections["other_figures"].columns[0].figures] == ["unheard_of"]
    assert list(sections)[-1] == "other_figures"


def test_report_write_with_html(analysis, tmp_path, monkeypatch):
    real = H.write_html
    monkeypatch.setattr(H, "write_html", lambda *a, **k: real(*a, figures=["norms"], **k))  # one figure: fast
    files = analysis[1].write(tmp_path / "w", html=True)
    page = files["report.html"]
    assert page == tmp_path / "w" / "report.html" and 'id="fig-norms-1"' in page.read_text()
    assert "report.html" in json.loads((tmp_path / "w" / "report.json").read_text())["files"]
    analysis[1].write(tmp_path / "w")  # rewritten without the page: the old page goes
    assert not page.exists()


def test_a_figures_folder_of_another_analysis_is_refused(analysis, tmp_path):
    from clipgeo.plotting import render_figures

    rng = np.random.default_rng(2)
    other = _store(tmp_path / "s", rng.normal(size=(40, DIM)).astype(np.float32) + 1, rng.normal(size=(40, DIM)).astype(np.float32), "other")
    render_figures(other, tmp_path / "figs", only=["norms"], dpi=20)
    with pytest.raises(InputError, match="drawn from other/none, not planted/none"):
        write_html(analysis[0], tmp_path / "o", figures_dirs=[tmp_path / "figs"], figures=["norms"])
    assert not (tmp_path / "o").exists()
