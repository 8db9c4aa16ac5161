"""``report.html``: one self-contained page per analysis (or two side by side), read from what the analysis wrote.

The page is rendered from an analysis directory -- ``report.json``, ``report.md`` and the tables -- and the
figures of :mod:`clipgeo.plotting`, taken from a figures folder (``clipgeo figures --out``) when one is given
and drawn from the analysis otherwise.  Nothing is recomputed: every number on the page is one that
``report.json`` holds, and every sentence of measurement is the one ``report.md`` holds (rendered with
markdown-it).  The page loads nothing: figures are embedded as base64 PNG, the styles are inline, there is no
script, and a Content-Security-Policy forbids every load but ``data:`` images, so it opens from disk offline.

Sections follow the order of the paper's claims (:data:`SECTIONS`), each with a verdict *measured on this
data* (the rule is printed beside it), the headline numbers with their 95 % bootstrap intervals when the
analysis has a ``bootstrap`` key, the figures, and the numbers of ``report.json`` and the section's tables in a
collapsed ``<details>``.  Keys of ``report.json`` and sections of ``report.md`` that no entry of
:data:`SECTIONS` names (new analyses) get a section of their own, after the known ones.

>>> from clipgeo.report import write_html
>>> write_html("analysis/trained")                     # doctest: +SKIP  (-> analysis/trained/report.html)
>>> write_html(["analysis/trained", "analysis/untrained"], "side_by_side/", labels=["trained", "untrained"])  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ._names import REPORT_HTML

if TYPE_CHECKING:  # pragma: no cover
    from ._result import Report

#: resolution of the figures drawn for the page (a figures folder's PNGs are embedded as they are)
HTML_DPI = 100
#: rows of a CSV table shown in a section's collapsed table
PREVIEW_ROWS = 20
#: the page may load nothing but the data: images it embeds; no script runs
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

#: report.json keys that are not a measurement (rendered in the header, the warnings or the provenance)
META_KEYS = frozenset(
    {"dim", "n_image", "n_text", "n_pairs", "model", "unit_norm", "figure_features", "skipped", "warnings",
     "timings", "provenance", "files", "headlines"}
)  # fmt: skip
#: report.md sections rendered elsewhere on the page
SKIP_MARKDOWN = re.compile(r"^(warnings|skipped|provenance)\b", re.IGNORECASE)

# -- verdicts ----------------------------------------------------------------------------------------------

#: status -> (badge text, css class)
STATUS = {
    "holds": ("holds here", "holds"),
    "partly": ("partly", "partly"),
    "fails": ("does not hold here", "fails"),
    "na": ("not measurable", "na"),
    "measured": ("measured", "measured"),
}


@dataclass(frozen=True)
class Verdict:
    """What one analysis shows for one claim.

    Attributes
    ----------
    status : {"holds", "partly", "fails", "na", "measured"}
        ``measured``: the section states numbers, not a claim to check.
    text : str
        The measurement in one line (numbers of report.json, with intervals when bootstrapped).
    rule : str
        How ``status`` follows from the numbers.
    label : str
        The modality, for per-modality claims ("" otherwise).
    """

    status: str
    text: str
    rule: str = ""
    label: str = ""

    @property
    def badge(self) -> str:
        return STATUS[self.status][0]

    @property
    def css(self) -> str:
        return STATUS[self.status][1]


def fmt(value: Any, digits: int = 4) -> str:
    """A number for the page: ``digits`` significant digits, ``n/a`` for None/NaN, ints as they are."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.3e}"
    return str(value)


def pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def interval(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The bootstrap interval ``{value, low, high, n_boot}`` of headline ``name`` (dotted), or None."""
    found = ((data.get("bootstrap") or {}).get("intervals") or {}).get(name)
    if isinstance(found, dict) and found.get("low") is not None and found.get("high") is not None:
        return found
    return None


def with_interval(data: dict[str, Any], name: str, value: Any, digits: int = 4, percent: bool = False) -> str:
    """``value [low, high]`` when headline ``name`` was bootstrapped, else the value alone."""
    show = pct if percent else (lambda v: fmt(v, digits))
    iv = interval(data, name)
    text = show(value)
    return text if iv is None else f"{text} [{show(iv['low'])}, {show(iv['high'])}]"


def _get(data: dict[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _modalities(data: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    block = data.get(key) or {}
    return [(m, block[m]) for m in ("image", "text") if isinstance(block.get(m), dict)]


def _degenerate(data: dict[str, Any], m: str) -> bool:
    return bool((data.get("unit_norm") or {}).get(m))


def verdict_modality_gap(data: dict[str, Any]) -> list[Verdict]:
    gap = data.get("modality_gap")
    if not isinstance(gap, dict):
        return []
    dist = with_interval(data, "modality_gap.l2_centroid_distance", gap.get("l2_centroid_distance"))
    matched, cones = gap.get("mean_matched_cosine"), (gap.get("image_cone"), gap.get("text_cone"))
    rule = "holds when a matched image–caption pair is less alike (mean cosine) than two rows of the same modality"
    if matched is None or None in cones:
        return [
            Verdict("measured", f"l2 centroid distance of the unit rows {dist} (no matched pairs to compare)", rule)
        ]
    apart = matched < min(cones)
    text = (
        f"l2 centroid distance {dist}; matched-pair cosine {fmt(matched, 3)} vs within-modality "
        f"{fmt(cones[0], 3)} (image), {fmt(cones[1], 3)} (text)"
    )
    return [Verdict("holds" if apart else "fails", text, rule)]


def verdict_separability(data: dict[str, Any]) -> list[Verdict]:
    sep = data.get("separability")
    if not isinstance(sep, dict):
        return []
    count = sep.get("n_modality_label_features")
    features = sep.get("modality_label_features") or []
    top = (sep.get("features") or [{}])[0]
    best = top.get("threshold_accuracy")
    cv = sep.get("linear_cv_accuracy")
    shown = ", ".join(str(k) for k in features[:8]) + (" …" if len(features) > 8 else "")
    text = (
        f"{fmt(count)} feature(s) separate image from text alone at ≥ 95 %"
        + (f" ({shown})" if shown else "")
        + f"; best single feature {top.get('feature', 'n/a')}: "
        + with_interval(data, "separability.best_threshold_accuracy", best, percent=True)
        + ("" if cv is None else f"; all features, 5-fold CV: {pct(cv)}")
    )
    rule = "holds when at least one raw feature alone reaches 95 % balanced accuracy; partly when only all features together do"
    if count:
        status = "holds"
    elif cv is not None and cv >= 0.95:
        status = "partly"
    else:
        status = "fails"
    return [Verdict(status, text, rule)]


def verdict_thin_shell(data: dict[str, Any]) -> list[Verdict]:
    out = []
    rule = "holds when the centred norm's std is ≤ 10 % of its mean (relative thickness), partly when ≤ 30 %"
    for m, res in _modalities(data, "thin_shell"):
        thick = res.get("relative_thickness")
        text = (
            f"centred norm {fmt(res.get('mean_centered_norm'))} ± {fmt(res.get('std_centered_norm'), 3)} vs "
            f"sqrt(tr C) {fmt(res.get('sqrt_trace_cov'))}; relative thickness "
            + with_interval(data, f"thin_shell.{m}.relative_thickness", thick, 3)
        )
        if _degenerate(data, m):
            out.append(Verdict("na", text + " (rows are unit-norm: degenerate)", rule, m))
        elif thick is None:
            out.append(Verdict("measured", text, rule, m))
        else:
            out.append(Verdict("holds" if thick <= 0.1 else "partly" if thick <= 0.3 else "fails", text, rule, m))
    return out


def verdict_mahalanobis(data: dict[str, Any]) -> list[Verdict]:
    out = []
    rule = "holds when the held-out Mahalanobis distances spread less (cv) than the Euclidean centred norms"
    for m, res in _modalities(data, "mahalanobis_shell"):
        text = f"Mahalanobis cv {fmt(res.get('cv'), 3)} (held out) vs Euclidean cv {fmt(res.get('euclidean_cv'), 3)}"
        thinner = res.get("thinner_than_euclidean")
        if _degenerate(data, m):
            out.append(Verdict("na", text + " (rows are unit-norm: degenerate)", rule, m))
        elif thinner is None:
            out.append(Verdict("measured", text, rule, m))
        else:
            out.append(Verdict("holds" if thinner else "fails", text, rule, m))
    return out


def verdict_odd(data: dict[str, Any]) -> list[Verdict]:
    out = []
    rule = "holds when the median feature's off-diagonal covariance mass exceeds its variance (odd > 1)"
    for m, res in _modalities(data, "off_diagonal_dominance"):
        median = res.get("median")
        text = f"median odd {fmt(median, 3)}; {pct(res.get('fraction_above_1'))} of the features have odd > 1"
        if median is None:
            out.append(Verdict("measured", text, rule, m))
        else:
            out.append(Verdict("holds" if median > 1 else "fails", text, rule, m))
    return out


def verdict_offset(data: dict[str, Any]) -> list[Verdict]:
    out = []
    rule = (
        "holds when the centre's norm is at least half the spread (||m|| / ||σ|| ≥ 0.5; paper: "
        f"{_paper('offset_image')} image, {_paper('offset_text')} text)"
    )
    for m, res in _modalities(data, "ellipsoid_offset"):
        ratio = res.get("ratio")
        text = (
            "||m|| / ||σ|| = "
            + with_interval(data, f"ellipsoid_offset.{m}.ratio", ratio, 3)
            + f"; |m_k| > σ_k on {pct(res.get('fraction_mean_above_std'))} of the features"
        )
        if _degenerate(data, m):
            out.append(Verdict("na", text + " (rows are unit-norm: degenerate)", rule, m))
        elif ratio is None:
            out.append(Verdict("measured", text, rule, m))
        else:
            out.append(Verdict("holds" if ratio >= 0.5 else "fails", text, rule, m))
    return out


def verdict_conformity(data: dict[str, Any]) -> list[Verdict]:
    out = []
    rule = (
        f"holds when cos(x, raw mean) predicts the exact conformity with Pearson r ≥ 0.99 (paper {_paper('conformity')}), "
        "partly ≥ 0.9"
    )
    for m, res in _modalities(data, "conformity"):
        r = res.get("pearson")
        text = (
            "r = "
            + with_interval(data, f"conformity.{m}.pearson", r, 5)
            + "; mean conformity "
            + with_interval(data, f"conformity.{m}.mean", res.get("mean"), 4)
        )
        if _degenerate(data, m):  # the raw mean is the unit mean: the estimate is the exact identity, r ≈ 1 by construction
            out.append(Verdict("na", text + " (rows are unit-norm: the raw-mean estimate is degenerate)", rule, m))
        elif r is None:
            out.append(Verdict("measured", text, rule, m))
        else:
            out.append(Verdict("holds" if r >= 0.99 else "partly" if r >= 0.9 else "fails", text, rule, m))
    return out


def verdict_centroid_shift(data: dict[str, Any]) -> list[Verdict]:
    cs = data.get("centroid_shift")
    if not isinstance(cs, dict):
        return []
    alphas = [a for a in (cs.get("alpha") or []) if a is not None]
    step = min((abs(b - a) for a, b in zip(alphas, alphas[1:], strict=False) if b != a), default=0.1)
    ref = cs.get("reference_alpha", 0.0) or 0.0
    loss, kl = cs.get("argmin_loss"), cs.get("argmin_conformity_kl")

    def near(a: Any) -> bool:
        return a is not None and abs(a - ref) <= step / 2 + 1e-9

    text = (
        "contrastive loss lowest at α = "
        + with_interval(data, "centroid_shift.loss_argmin", loss, 2)
        + f"; conformity KL lowest at α = {fmt(kl, 2)}"
    )
    rule = "holds when both the loss and the conformity KL are lowest at α = 0 (where training put the centroid), partly when one is"
    if loss is None and kl is None:
        return [Verdict("measured", text, rule)]
    hits = near(loss) + near(kl)
    return [Verdict("holds" if hits == 2 else "partly" if hits == 1 else "fails", text, rule)]


def verdict_cosine_gradient(data: dict[str, Any]) -> list[Verdict]:
    cg = data.get("cosine_gradient")
    if not isinstance(cg, dict):
        return []
    slope, err = cg.get("loglog_slope"), cg.get("max_relative_error")
    text = f"log-log slope of the gradient against ||u||: {fmt(slope, 3)}; formula vs measured gradient: relative error {fmt(err, 2)}"
    rule = "holds when the gradient falls as the norm grows (slope < 0) and the formula matches the measured gradient to 1e-6"
    if slope is None:
        return [Verdict("measured", text, rule)]
    ok = slope < 0 and (err is None or err <= 1e-6)
    return [Verdict("holds" if ok else "fails", text, rule)]


def _measured(lines: Callable[[dict[str, Any]], list[str]]) -> Callable[[dict[str, Any]], list[Verdict]]:
    def verdicts(data: dict[str, Any]) -> list[Verdict]:
        return [Verdict("measured", line) for line in lines(data)]

    return verdicts


@_measured
def verdict_gap_metrics(data: dict[str, Any]) -> list[str]:
    gm = data.get("gap_metrics")
    if not isinstance(gm, dict):
        return []
    return [
        f"L2M {with_interval(data, 'modality_gap.l2_centroid_distance', gm.get('l2m'))}, "
        f"L2I {with_interval(data, 'gap_metrics.l2i', gm.get('l2i'))}, "
        f"RMG {with_interval(data, 'gap_metrics.rmg', gm.get('rmg'))}"
    ]


@_measured
def verdict_pair_conformity(data: dict[str, Any]) -> list[str]:
    pc = data.get("pair_conformity")
    if not isinstance(pc, dict):
        return []
    return [
        f"C_img vs C_txt over {fmt(pc.get('n_pairs'))} pairs: Pearson r "
        f"{with_interval(data, 'pair_conformity.pearson', pc.get('pearson'), 3)}, Spearman {fmt(pc.get('spearman'), 3)}"
    ]


@_measured
def verdict_retrieval(data: dict[str, Any]) -> list[str]:
    rt = data.get("retrieval_by_conformity")
    if not isinstance(rt, dict):
        return []
    return [
        f"image→text R@1 {fmt(rt.get('r1_i2t'), 3)}, text→image R@1 {fmt(rt.get('r1_t2i'), 3)}; Spearman r of "
        f"conformity with the rank: {fmt(rt.get('spearman_i2t'), 3)} (i→t), {fmt(rt.get('spearman_t2i'), 3)} (t→i)"
    ]


@_measured
def verdict_spectrum(data: dict[str, Any]) -> list[str]:
    return [
        f"{m}: effective rank {fmt(res.get('effective_rank'), 3)}, participation ratio "
        f"{fmt(res.get('participation_ratio'), 3)}; {fmt(res.get('dims_90'))} of {fmt(res.get('dim'))} dimensions hold 90 %"
        for m, res in _modalities(data, "spectrum")
    ]


@_measured
def verdict_whitening(data: dict[str, Any]) -> list[str]:
    return [
        f"{m}: D'Agostino–Pearson pass rate {pct(res.get('dagostino_pass_rate'))}; held-out mean log-likelihood "
        f"{fmt(res.get('heldout_mean_log_likelihood'), 3)}"
        for m, res in _modalities(data, "whitening")
    ]


# -- sections ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionSpec:
    """One section of the page.

    Attributes
    ----------
    key : str
        Anchor, and the report.json key the section is about.
    title : str
    claim : str
        The paper's claim ("" for analyses beyond the paper).
    paper : str
        The paper's value (ViT-B/32, COCO).
    keys : tuple of str
        report.json keys whose numbers the collapsed table shows.
    figures : tuple of str
        Figure names (:data:`clipgeo.plotting.FIGURES`), in display order.
    markdown : str
        Regular expression matching the report.md heading(s) of this section (case-insensitive).
    tables : tuple of str
        CSV files of the analysis directory previewed in the collapsed table.
    verdict : callable, optional
        ``verdict(report.json) -> list of Verdict``.
    """

    key: str
    title: str
    claim: str = ""
    paper: str = ""
    keys: tuple[str, ...] = ()
    figures: tuple[str, ...] = ()
    markdown: str = ""
    tables: tuple[str, ...] = ()
    verdict: Callable[[dict[str, Any]], list[Verdict]] | None = None

    @property
    def data_keys(self) -> tuple[str, ...]:
        return self.keys or (self.key,)


def _paper(key: str, field_: str = "paper") -> str:
    from ._paper import PAPER

    value = PAPER.get(key)
    return "" if value is None else str(getattr(value, field_)).replace("{m}", "each modality")


def _sections() -> list[SectionSpec]:
    """The sections in the order of the paper's claims (SPEC §1–9), then the analyses beyond it (§12)."""
    return [
        SectionSpec(
            "modality_gap", "1. Modality gap", _paper("modality_gap", "claim"), _paper("modality_gap"),
            keys=("modality_gap", "pca"), figures=("pca_projection",), markdown=r"modality gap$",
            verdict=verdict_modality_gap,
        ),
        SectionSpec(
            "separability", "2. Linear separability: modality-label features", _paper("label_features", "claim"),
            f"{_paper('label_features')}; linear CV {_paper('linear_cv')}",
            figures=("separating_features", "best_pair", "separability_ranking", "first_features"),
            markdown=r"separab", tables=("features.csv",), verdict=verdict_separability,
        ),
        SectionSpec(
            "thin_shell", "3. Thin shell", _paper("thin_shell", "claim"), _paper("thin_shell"),
            figures=("norms", "thin_shell_theory", "feature_variance", "ellipse_2d"), markdown=r"thin shell",
            tables=("thin_shell_theory.csv",), verdict=verdict_thin_shell,
        ),
        SectionSpec(
            "mahalanobis_shell", "4. Ellipsoidal (Mahalanobis) shell", _paper("mahalanobis_shell", "claim"),
            _paper("mahalanobis_shell"), figures=("mahalanobis_shell",), markdown=r"mahalanobis",
            verdict=verdict_mahalanobis,
        ),
        SectionSpec(
            "off_diagonal_dominance", "5. Tilted ellipsoids (off-diagonal dominance)",
            _paper("off_diagonal_dominance", "claim"), _paper("off_diagonal_dominance"),
            figures=("off_diagonal_dominance", "covariance"), markdown=r"tilted|off-diagonal", verdict=verdict_odd,
        ),
        SectionSpec(
            "ellipsoid_offset", "6. Ellipsoid offset: centres far from the origin",
            "The ellipsoids' centres sit far from the origin: ||m|| / ||σ|| is of order 1",
            f"{_paper('offset_image')} (image), {_paper('offset_text')} (text)", figures=("offset",),
            markdown=r"offset", verdict=verdict_offset,
        ),
        SectionSpec(
            "conformity", "7. Conformity", _paper("conformity", "claim"), _paper("conformity"),
            keys=("conformity", "conformity_extremes"),
            figures=("conformity_estimate", "conformity_hist", "conformity_extremes"),
            markdown=r"^(\d+\.\s*)?conformity$|^extreme conformity", verdict=verdict_conformity,
        ),
        SectionSpec(
            "centroid_shift", "8. Why off-centre: centroid shift", _paper("centroid_shift_loss", "claim"),
            f"loss {_paper('centroid_shift_loss')}, KL {_paper('centroid_shift_kl')}",
            keys=("centroid_shift", "alignment_uniformity"), figures=("centroid_shift",), markdown=r"centroid shift",
            tables=("centroid_shift.csv",), verdict=verdict_centroid_shift,
        ),
        SectionSpec(
            "cosine_gradient", "9. Cosine sensitivity vs norm",
            "||∂cos(u, w)/∂u|| = sqrt(1 − cos²) / ||u||: far from the origin a move changes the cosine less",
            "slope −1 on log-log axes", figures=("cosine_gradient",), markdown=r"cosine sensitivity|gradient",
            tables=("cosine_gradient.csv",), verdict=verdict_cosine_gradient,
        ),
        SectionSpec(
            "gap_metrics", "Gap metrics (Schrodi et al.)", figures=("gap_metrics",), markdown=r"gap metrics",
            verdict=verdict_gap_metrics,
        ),
        SectionSpec(
            "pair_conformity", "Per-pair conformity", figures=("pair_conformity",), markdown=r"per-pair conformity",
            tables=("pairs.csv",), verdict=verdict_pair_conformity,
        ),
        SectionSpec(
            "retrieval_by_conformity", "Retrieval difficulty vs conformity", figures=("retrieval_by_conformity",),
            markdown=r"retrieval", verdict=verdict_retrieval,
        ),
        SectionSpec(
            "commonness", "Commonness of captions", figures=("commonness",), markdown=r"commonness",
            tables=("commonness.csv",),
        ),
        SectionSpec(
            "spectrum", "Spectrum of the covariance", figures=("spectrum",), markdown=r"spectrum",
            tables=("spectrum.csv",), verdict=verdict_spectrum,
        ),
        SectionSpec(
            "whitening", "Whitening and likelihood", figures=("whitening",), markdown=r"whitening",
            tables=("whitening_image.csv", "whitening_text.csv"), verdict=verdict_whitening,
        ),
        SectionSpec("bootstrap", "Headline numbers with 95 % bootstrap intervals", markdown=r"headline numbers"),
    ]  # fmt: skip


SECTIONS: list[SectionSpec] = _sections()


# -- one analysis --------------------------------------------------------------------------------------------


@dataclass
class FigureImage:
    """One figure as the page embeds it."""

    name: str
    uri: str
    title: str = ""
    description: str = ""
    caption: str = ""


@dataclass
class MarkdownChunk:
    """One ``##``/``###`` section of report.md, rendered."""

    heading: str
    html: str


@dataclass
class Analysis:
    """An analysis directory as the page reads it.

    Attributes
    ----------
    root : Path
    label : str
        Column heading in side-by-side mode.
    data : dict
        report.json.
    chunks : list of MarkdownChunk
        report.md, split at its headings.
    figures : dict of str to FigureImage
    skipped_figures : dict of str to str
        Figures the data cannot give, with the reason.
    """

    root: Path
    label: str
    data: dict[str, Any]
    chunks: list[MarkdownChunk] = field(default_factory=list)
    figures: dict[str, FigureImage] = field(default_factory=dict)
    skipped_figures: dict[str, str] = field(default_factory=dict)

    @property
    def meta(self) -> dict[str, Any]:
        return dict(_get(self.data, "provenance", "store") or {})

    @property
    def model(self) -> str:
        meta = self.meta
        return str(meta.get("model_id") or self.data.get("model") or meta.get("model") or "unknown model")


def check_analysis_dir(directory: str | os.PathLike) -> dict[str, Any]:
    """report.json of a ``clipgeo analyze`` output directory, or a one-line InputError saying what it is instead."""
    from ._names import REPORT_JSON

    root = Path(directory)
    if not root.exists():
        raise InputError(f"{root} does not exist; give a `clipgeo analyze` output directory")
    if not root.is_dir():
        raise InputError(
            f"{root} is a file; give a `clipgeo analyze` output directory (the folder holding {REPORT_JSON})"
        )
    path = root / REPORT_JSON
    if not path.is_file():
        hint = " (it is a store: run `clipgeo analyze` on it first)" if (root / "manifest.json").is_file() else ""
        raise InputError(
            f"{root} is not an analysis: it has no {REPORT_JSON}{hint}; give a `clipgeo analyze` output directory"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc.__class__.__name__}); rerun `clipgeo analyze`") from None
    if not isinstance(data, dict) or "dim" not in data or "n_image" not in data:
        raise InputError(f"{path} is not a clipgeo report (no dim / n_image); rerun `clipgeo analyze`")
    return data


def _markdown_renderer() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")
    md.disable("image")  # report.md images point at files the self-contained page does not load
    return md


def split_markdown(text: str) -> list[MarkdownChunk]:
    """report.md cut at its ``##`` / ``###`` headings, each body rendered to HTML (raw HTML in it escaped)."""
    md = _markdown_renderer()
    chunks: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        head = re.match(r"^#{2,3}\s+(.*\S)\s*$", line)
        if head:
            chunks.append((head.group(1), []))
        elif chunks:
            chunks[-1][1].append(line)
    out = []
    for heading, body in chunks:
        source = "\n".join(body).strip()
        if source:
            out.append(MarkdownChunk(heading, md.render(source)))
    return out


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png_width(png: bytes) -> int:
    """Width of a PNG from its IHDR chunk (0 when ``png`` is not one)."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        return 0
    return int.from_bytes(png[16:20], "big")


#: store metadata that identifies the store a figure was drawn from
_STORE_IDENTITY = ("model_id", "fingerprint", "created")


def figures_from_folder(
    folder: str | os.PathLike, names: Sequence[str] | None = None, *, store: dict[str, Any] | None = None
) -> dict[str, FigureImage]:
    """The PNG figures of a ``clipgeo figures`` output folder (each with its JSON beside it, when present).

    Raises
    ------
    InputError
        ``store`` is given (the analysis' store metadata) and a figure's JSON says it was drawn from another
        store: the folder belongs to another analysis.
    """
    from ..plotting import FIGURES

    root = Path(folder)
    wanted = {k: store.get(k) for k in _STORE_IDENTITY if store and store.get(k)} if store else {}
    out: dict[str, FigureImage] = {}
    for name in names if names is not None else list(FIGURES):
        png = root / f"{name}.png"
        if not png.is_file():
            continue
        blob = png.read_bytes()
        if not _png_width(blob):
            continue
        side: dict[str, Any] = {}
        sidecar = root / f"{name}.json"
        if sidecar.is_file():
            try:
                side = json.loads(sidecar.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                side = {}
        drawn = (side.get("provenance") or {}).get("store") or {}
        differs = [k for k, v in wanted.items() if drawn.get(k) and drawn.get(k) != v]
        if differs:
            what = (
                f"{drawn.get('model_id')}, not {wanted.get('model_id')}"
                if "model_id" in differs
                else f"another store of {drawn.get('model_id')} (its {differs[0]} differs)"
            )
            raise InputError(
                f"{sidecar} was drawn from {what} as this analysis is; give the figures folder of this analysis"
            )
        spec = FIGURES.get(name)
        out[name] = FigureImage(
            name=name,
            uri=_data_uri(blob),
            title=str(side.get("title") or ""),
            description=str(side.get("description") or (spec.description if spec else "")),
            caption=str(side.get("caption") or ""),
        )
    return out


def draw_figures(
    source: Any, names: Sequence[str] | None = None, *, dpi: int = HTML_DPI, progress: Any = None
) -> tuple[dict[str, FigureImage], dict[str, str]]:
    """Draw figures from an analysis (directory or :class:`Report`) into memory as PNG.

    Returns
    -------
    figures : dict of str to FigureImage
    skipped : dict of str to str
        Figures the data cannot give, with the reason.
    """
    from ..plotting import FIGURES, FigureSkipped, load_source, style
    from ..plotting._render import _metadata

    inp = load_source(source)
    figures: dict[str, FigureImage] = {}
    skipped: dict[str, str] = {}
    todo = list(names) if names is not None else list(FIGURES)
    iterator = todo if progress is None else progress(todo)
    for name in iterator:
        spec = FIGURES[name]
        try:
            with style():
                fig, data = spec.func(inp)
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", dpi=dpi, metadata=_metadata("png", str(data.get("title", name))))
        except FigureSkipped as exc:
            skipped[name] = str(exc)
            continue
        figures[name] = FigureImage(
            name=name,
            uri=_data_uri(buffer.getvalue()),
            title=str(data.get("title") or ""),
            description=spec.description,
            caption=str(data.get("caption") or ""),
        )
    return figures, skipped


def load_analysis(
    directory: str | os.PathLike,
    *,
    label: str | None = None,
    report: Report | None = None,
    figures_dir: str | os.PathLike | None = None,
    figures: Sequence[str] | None = None,
    draw: bool = True,
    dpi: int = HTML_DPI,
    progress: Any = None,
) -> Analysis:
    """Read an analysis directory for the page: report.json, report.md and the figures.

    Parameters
    ----------
    directory : path
        A ``clipgeo analyze`` output directory.
    label : str, optional
        Column heading (default: the directory's name).
    report : Report, optional
        The same analysis in memory (saves reading the tables back to draw the figures).
    figures_dir : path, optional
        A ``clipgeo figures`` output folder: its PNGs are embedded; figures it lacks are drawn.
    figures : sequence of str, optional
        Only these figures (default all registered ones).
    draw : bool
        Draw the figures the folder lacks (False: leave them out).
    dpi : int
        Resolution of drawn figures.
    """
    from ._names import REPORT_MD

    root = Path(directory)
    data = check_analysis_dir(root)
    md_path = root / REPORT_MD
    chunks = split_markdown(md_path.read_text(encoding="utf-8")) if md_path.is_file() else []
    analysis = Analysis(root=root, label=label or root.resolve().name, data=data, chunks=chunks)
    from ..plotting import FIGURES
    from ..plotting._registry import resolve_names

    names = resolve_names(figures) if figures is not None else list(FIGURES)
    if figures_dir is not None:
        if not Path(figures_dir).is_dir():
            raise InputError(f"figures folder {figures_dir} does not exist; give a `clipgeo figures --out` folder")
        analysis.figures.update(figures_from_folder(figures_dir, names, store=analysis.meta))
    missing = [n for n in names if n not in analysis.figures]
    if draw and missing:
        drawn, skipped = draw_figures(report if report is not None else root, missing, dpi=dpi, progress=progress)
        analysis.figures.update(drawn)
        analysis.skipped_figures.update(skipped)
    analysis.figures = {n: analysis.figures[n] for n in names if n in analysis.figures}
    return analysis


# -- the page ------------------------------------------------------------------------------------------------


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Scalar leaves of a report.json block as ``(dotted key, value)``; short number lists kept whole.

    Lists of dicts (per-feature rows, deciles, extremes) are left out: :func:`record_tables` shows them.
    """
    out: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list):
        if all(_scalar(v) for v in value):
            out.append((prefix, value))
    else:
        out.append((prefix, value))
    return out


def show(value: Any) -> str:
    """A report.json value as table text (lists of more than 8 numbers summarised)."""
    if isinstance(value, list):
        if len(value) > 8:
            nums = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(nums) == len(value):
                return f"{len(value)} values, {fmt(min(nums))} … {fmt(max(nums))}"
            return f"{len(value)} values"
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return fmt(value)


def record_tables(value: Any, prefix: str = "") -> list[tuple[str, list[str], list[list[str]]]]:
    """Every list of dicts inside a report.json block as ``(dotted key, columns, rows)`` (first 20 rows)."""
    found: list[tuple[str, list[str], list[list[str]]]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found.extend(record_tables(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns: list[str] = []
        for item in value:
            for k, v in item.items():
                if k not in columns and (_scalar(v) or (isinstance(v, list) and len(v) <= 4)):
                    columns.append(k)
        rows = [[show(item.get(c)) for c in columns] for item in value[:PREVIEW_ROWS]]
        title = prefix + ("" if len(value) <= PREVIEW_ROWS else f" (first {PREVIEW_ROWS} of {len(value)})")
        found.append((title, columns, rows))
    return found


def csv_preview(path: Path) -> tuple[list[str], list[list[str]], int] | None:
    """``(columns, first rows, row count)`` of a CSV table, or None when it is absent or unreadable."""
    if not path.is_file():
        return None
    import pandas as pd

    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""], nrows=PREVIEW_ROWS)
        total = len(pd.read_csv(path, usecols=[0])) if len(frame) == PREVIEW_ROWS else len(frame)
    except (OSError, ValueError):
        return None
    columns = [str(c) for c in frame.columns[:16]]
    rows = [
        [show(v.item() if hasattr(v, "item") else v) for v in row]
        for row in frame[columns].head(PREVIEW_ROWS).itertuples(index=False)
    ]
    return columns, rows, total


def _headline_labels() -> dict[str, str]:
    try:
        from ._beyond import HEADLINES
    except ImportError:  # pragma: no cover - the module is part of the package
        return {}
    return {name: label for name, (label, _digits) in HEADLINES.items()}


def headline_rows(data: dict[str, Any], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The headlines of report.json under ``keys`` (dotted prefixes), each with its interval when bootstrapped."""
    labels = _headline_labels()
    values = dict(data.get("headlines") or {})
    for name, iv in ((data.get("bootstrap") or {}).get("intervals") or {}).items():
        values.setdefault(name, iv.get("value") if isinstance(iv, dict) else None)
    rows = []
    for name, value in values.items():
        if name.split(".")[0] not in keys:
            continue
        iv = interval(data, name)
        rows.append(
            {
                "name": name,
                "label": labels.get(name, name.replace("_", " ")),
                "value": fmt(value),
                "low": fmt(iv["low"]) if iv else "",
                "high": fmt(iv["high"]) if iv else "",
            }
        )
    return rows


def _stem_pattern(key: str) -> str:
    """A heading pattern for a report.json key: any of its words' first six letters (``streaming`` ~ "Streamed")."""
    words = [w for w in key.split("_") if len(w) >= 4] or [key]
    return "|".join(r"\b" + re.escape(w[:6]) for w in words)


def _slug(heading: str) -> str:
    """An anchor for a report.md section that no spec names: ``md-`` and its words, lower case."""
    return "md-" + ("-".join(re.findall(r"[a-z0-9]+", heading.lower())) or "section")


def _title_of(key: str) -> str:
    return key.replace("_", " ").replace(".", " · ").capitalize()


@dataclass
class Column:
    """What one analysis shows in one section."""

    label: str
    present: bool
    verdicts: list[Verdict]
    headlines: list[dict[str, Any]]
    chunks: list[MarkdownChunk]
    figures: list[FigureImage]
    skipped_figures: dict[str, str]
    numbers: list[tuple[str, str]]
    records: list[tuple[str, list[str], list[list[str]]]]
    previews: list[tuple[str, list[str], list[list[str]], int]]
    skipped: dict[str, str]


@dataclass
class Section:
    key: str
    title: str
    claim: str
    paper: str
    rule: str
    columns: list[Column]

    @property
    def number_rows(self) -> list[tuple[str, list[str]]]:
        """``(key, [value per analysis])`` over the union of the columns' scalar numbers."""
        keys: list[str] = []
        for col in self.columns:
            for k, _ in col.numbers:
                if k not in keys:
                    keys.append(k)
        by_col = [dict(col.numbers) for col in self.columns]
        return [(k, [d.get(k, "–") for d in by_col]) for k in keys]


def _build_sections(analyses: Sequence[Analysis]) -> list[Section]:
    specs = list(SECTIONS)
    known = {k for s in specs for k in s.data_keys}
    # report.json keys no spec names (new analyses): a section each, in the order of the first analysis
    for a in analyses:
        for key, value in a.data.items():
            if key in known or key in META_KEYS or not isinstance(value, dict):
                continue
            specs.append(SectionSpec(key, _title_of(key), figures=(key,), markdown=_stem_pattern(key)))
            known.add(key)
    assigned = {f for s in specs for f in s.figures}

    # report.md chunks: to the first spec whose pattern matches the heading, else a section of their own
    chunk_of: list[dict[str, list[MarkdownChunk]]] = []
    extra_chunks: list[str] = []
    for a in analyses:
        by_key: dict[str, list[MarkdownChunk]] = {}
        for chunk in a.chunks:
            heading = chunk.heading.strip()
            if SKIP_MARKDOWN.match(heading):
                continue
            spec = next((s for s in specs if s.markdown and re.search(s.markdown, heading, re.IGNORECASE)), None)
            key = spec.key if spec is not None else _slug(heading)
            if spec is None and heading not in extra_chunks:
                extra_chunks.append(heading)
            by_key.setdefault(key, []).append(chunk)
        chunk_of.append(by_key)
    for heading in extra_chunks:
        specs.append(SectionSpec(_slug(heading), heading))
    leftover = list(dict.fromkeys(n for a in analyses for n in [*a.figures, *a.skipped_figures] if n not in assigned))
    # a figure no spec names joins the section whose key starts its name (pair_conformity_disagreements)
    for name in list(leftover):
        owners = [i for i, s in enumerate(specs) if name.startswith(s.key + "_")]
        if owners:
            i = max(owners, key=lambda j: len(specs[j].key))
            specs[i] = dataclasses.replace(specs[i], figures=(*specs[i].figures, name))
            leftover.remove(name)
    if leftover:
        specs.append(SectionSpec("other_figures", "Other figures", figures=tuple(dict.fromkeys(leftover))))

    sections = []
    for spec in specs:
        columns = []
        for a, chunks in zip(analyses, chunk_of, strict=True):
            data = a.data
            block = {k: data[k] for k in spec.data_keys if k in data and data[k] is not None}
            verdicts = spec.verdict(data) if spec.verdict is not None else []
            figs = [a.figures[n] for n in spec.figures if n in a.figures]
            skipped_figs = {n: a.skipped_figures[n] for n in spec.figures if n in a.skipped_figures}
            numbers = [(k, show(v)) for k, v in flatten(block)]
            records = record_tables(block)
            previews = []
            for name in spec.tables:
                found = csv_preview(a.root / name)
                if found is not None:
                    previews.append((name, *found))
            skipped = {k: v for k, v in (data.get("skipped") or {}).items() if k.split(".")[0] in spec.data_keys}
            md = chunks.get(spec.key, [])
            present = bool(block or figs or md)
            columns.append(
                Column(
                    label=a.label, present=present, verdicts=verdicts, headlines=headline_rows(data, spec.data_keys)
                    if spec.key != "bootstrap" else headline_rows(data, [n.split(".")[0] for n in (data.get("headlines") or {})]),
                    chunks=md, figures=figs, skipped_figures=skipped_figs, numbers=numbers, records=records,
                    previews=previews, skipped=skipped,
                )
            )  # fmt: skip
        if not any(c.present or c.skipped for c in columns):
            continue
        rule = next((v.rule for c in columns for v in c.verdicts if v.rule), "")
        sections.append(Section(spec.key, spec.title, spec.claim, spec.paper, rule, columns))
    return sections


def _provenance_rows(analyses: Sequence[Analysis]) -> list[tuple[str, list[str]]]:
    """Header rows ``(what, [value per analysis])``: model, weights, precision, rows, commands."""

    def rows_of(a: Analysis) -> dict[str, str]:
        meta, data = a.meta, a.data
        prov = data.get("provenance") or {}
        sha = meta.get("checkpoint_sha256")
        weights = []
        if meta.get("pretrained"):
            weights.append(f"pretrained tag {meta['pretrained']}")
        if sha:
            weights.append(f"checkpoint sha256 {str(sha)[:16]}…")
        versions = prov.get("versions") or {}
        return {
            "model": a.model,
            "weights": "; ".join(weights) or "–",
            "precision": str(meta.get("precision") or "–") + f" (stored as {meta.get('store_dtype', '?')})",
            "rows": f"{data.get('n_image', 0)} image, {data.get('n_text', 0)} text, {data.get('n_pairs', 0)} pairs; d = {data.get('dim')}",
            "unit-norm rows": "yes: raw-space analyses are degenerate" if meta.get("normalized") or any((data.get("unit_norm") or {}).values()) else "no (raw embeddings)",
            "data": str(meta.get("source") or "–"),
            "store made by": " ".join(x for x in (str(meta.get("command") or ""), str(meta.get("created") or "")) if x) or "–",
            "analysis made by": " ".join(x for x in (str(prov.get("command") or ""), str(prov.get("created") or "")) if x) or "–",
            "clipgeo": str(versions.get("clipgeo", "–")),
            "analysis directory": str(a.root),
        }  # fmt: skip

    per = [rows_of(a) for a in analyses]
    return [(k, [p[k] for p in per]) for k in per[0]]


def page_warnings(analyses: Sequence[Analysis]) -> list[str]:
    """Warnings shown at the top of the page: the analyses' own, an incomplete store, mismatched analyses."""
    out: list[str] = []
    many = len(analyses) > 1
    for a in analyses:
        tag = f"{a.label}: " if many else ""
        for w in a.data.get("warnings") or []:
            out.append(tag + str(w))
        for m, unit in (a.data.get("unit_norm") or {}).items():
            if unit and not any("unit-norm" in str(w) and m in str(w) for w in a.data.get("warnings") or []):
                out.append(tag + f"{m} rows are already unit-norm: the raw-space analyses are degenerate")
        config = _get(a.data, "provenance", "config") or {}
        if config.get("allow_incomplete") and not any("incomplete" in str(w) for w in a.data.get("warnings") or []):
            out.append(
                tag
                + "analyzed with --allow-incomplete: the store may have been unfinished (only its finished shards were read)"
            )
    if many:
        dims = {a.label: a.data.get("dim") for a in analyses}
        if len(set(dims.values())) > 1:
            shown = ", ".join(f"{k} d = {v}" for k, v in dims.items())
            out.append(
                f"the analyses have different dimensions ({shown}): feature indices and per-feature figures do not correspond"
            )
    return out


def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("clipgeo.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2")


def render_html(analyses: Sequence[Analysis], *, title: str | None = None) -> str:
    """The text of report.html for one analysis, or several side by side (one column each)."""
    from markupsafe import Markup

    from .._version import __version__
    from ..provenance import now_iso

    if not analyses:
        raise InputError("give at least one analysis directory")
    sections = _build_sections(analyses)
    for section in sections:
        for col in section.columns:
            col.chunks = [MarkdownChunk(c.heading, Markup(c.html)) for c in col.chunks]
    if title is None:
        title = "clipgeo report: " + (
            analyses[0].model if len(analyses) == 1 else " vs ".join(a.label for a in analyses)
        )
    summary = [s for s in sections if any(v.status != "measured" for c in s.columns for v in c.verdicts)]
    return _template().render(
        title=title,
        csp=CSP,
        analyses=analyses,
        side_by_side=len(analyses) > 1,
        provenance=_provenance_rows(analyses),
        warnings=page_warnings(analyses),
        sections=sections,
        summary=summary,
        skipped=[(a.label, dict(a.data.get("skipped") or {})) for a in analyses],
        configs=[
            (a.label, json.dumps(_get(a.data, "provenance", "config") or {}, indent=1, default=str)) for a in analyses
        ],
        versions=[(a.label, _get(a.data, "provenance", "versions") or {}) for a in analyses],
        files=[(a.label, a.data.get("files") or []) for a in analyses],
        generated=now_iso(),
        version=__version__,
    )


# -- writing -------------------------------------------------------------------------------------------------


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def output_path(directories: Sequence[str | os.PathLike], out: str | os.PathLike | None) -> Path:
    """Where report.html goes, checked: beside report.md for one analysis, ``out`` (required) for several.

    Raises
    ------
    InputError
        ``out`` missing for several analyses, a file, or inside an analysis directory (one analysis: only
        the directory itself is allowed).
    """
    dirs = [Path(d) for d in directories]
    if out is None:
        if len(dirs) > 1:
            raise InputError(
                "side-by-side mode writes one page for several analyses: give out=DIR (outside each analysis directory)"
            )
        return dirs[0] / REPORT_HTML
    target = Path(out)
    if target.suffix.lower() in (".html", ".htm"):
        raise InputError(f"out={str(target)!r} names a file; give a directory (report.html is written into it)")
    if target.exists() and not target.is_dir():
        raise InputError(f"out={str(target)!r} is a file; give a directory for report.html")
    resolved = target.resolve()
    for d in dirs:
        home = d.resolve()
        if len(dirs) == 1 and resolved == home:
            continue
        if _inside(resolved, home):
            raise InputError(
                f"out={str(target)!r} is inside the analysis directory {d}; give a directory outside it "
                f"(e.g. {d.parent / (d.name + '_html')})"
            )
    return target / REPORT_HTML


@dataclass
class HtmlRun:
    """What :func:`write_html` did."""

    path: Path
    warnings: list[str]
    figures: dict[str, int]
    skipped_figures: dict[str, dict[str, str]]


def write_html(
    directories: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    labels: Sequence[str] | None = None,
    figures_dirs: Sequence[str | os.PathLike | None] | None = None,
    reports: Sequence[Report | None] | None = None,
    figures: Sequence[str] | None = None,
    draw: bool = True,
    dpi: int = HTML_DPI,
    title: str | None = None,
    progress: Any = None,
) -> HtmlRun:
    """Write report.html for one analysis directory (beside its report.md) or several side by side.

    Parameters
    ----------
    directories : path or sequence of paths
        ``clipgeo analyze`` output directories.
    out : path, optional
        Directory for report.html; required for several analyses, and never inside one of them.
    labels : sequence of str, optional
        Column headings (default: the directories' names).
    figures_dirs : sequence of paths, optional
        One ``clipgeo figures --out`` folder (or None) per analysis: PNGs embedded instead of drawn.
    reports : sequence of Report, optional
        The analyses in memory (``clipgeo analyze --html`` passes the one it just wrote).
    figures : sequence of str, optional
        Only these figures (default all).
    draw : bool
        Draw the figures a folder lacks (False: the page has only the given folders' figures).
    dpi : int
        Resolution of drawn figures.
    title : str, optional
    progress : callable, optional
        ``progress(iterable) -> iterable`` around the figures drawn (see :mod:`clipgeo._progress`).

    Returns
    -------
    HtmlRun
        The path written, the page's warnings and the figures embedded / skipped per analysis.

    Raises
    ------
    InputError
        A directory that is not an analysis, a bad ``out``, a labels/figures count that does not match.
        Nothing is written then.
    """
    from .._io import write_text

    dirs = [Path(directories)] if isinstance(directories, (str, os.PathLike)) else [Path(d) for d in directories]
    if not dirs:
        raise InputError("give at least one analysis directory")
    for name, given in (("labels", labels), ("figures folders", figures_dirs), ("reports", reports)):
        if given is not None and len(given) != len(dirs):
            raise InputError(f"{len(given)} {name} for {len(dirs)} analyses; give one per analysis directory")
    if labels is not None and len(set(labels)) != len(labels):
        raise InputError(f"labels must differ, got {list(labels)}")
    for d in dirs:
        check_analysis_dir(d)
    path = output_path(dirs, out)
    if not 10 <= int(dpi) <= 600:
        raise InputError(f"dpi must lie between 10 and 600, got {dpi}")
    names = [d.resolve().name for d in dirs]
    if labels is None and len(set(names)) != len(names):
        names = [str(d) for d in dirs]
    analyses = [
        load_analysis(
            d,
            label=labels[i] if labels is not None else names[i],
            report=reports[i] if reports is not None else None,
            figures_dir=figures_dirs[i] if figures_dirs is not None else None,
            figures=figures,
            draw=draw,
            dpi=dpi,
            progress=progress,
        )
        for i, d in enumerate(dirs)
    ]
    html = render_html(analyses, title=title)
    write_text(path, html)
    return HtmlRun(
        path=path,
        warnings=page_warnings(analyses),
        figures={a.label: len(a.figures) for a in analyses},
        skipped_figures={a.label: dict(a.skipped_figures) for a in analyses},
    )
