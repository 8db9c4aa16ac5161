"""The analyses beyond the paper (SPEC §12) inside a report: run, summarise, write, read back, report.md.

Kept in one module so that :mod:`._analyze`, :mod:`._write`, :mod:`._read` and :mod:`._markdown` each call it
with one line.  report.json keys: ``gap_metrics``, ``pair_conformity``, ``retrieval_by_conformity``,
``commonness``, ``spectrum.<image|text>``, ``whitening.<image|text>``, ``bootstrap`` (settings and every
interval), and, beside each headline number, a ``bootstrap`` dict holding its interval.

================================  =====================================================
file                              content
================================  =====================================================
``pairs.csv``                     one row per matched pair: rows, C_img, C_txt, the
                                  retrieval ranks and deciles, ``||u_i - v_i||``
``spectrum.csv``                  eigenvalues of C per modality, descending
``whitening_{image,text}.csv``    held-out log-likelihood, QQ data of 3 whitened coordinates
``commonness.csv``                per caption: conformity, length, duplicates, word frequency
``bootstrap.csv``                 every draw of every bootstrapped headline
================================  =====================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import analyzers as az

if TYPE_CHECKING:  # pragma: no cover
    from ._result import Report

MODALITIES = ("image", "text")
PAIRS_CSV = "pairs.csv"
SPECTRUM_CSV = "spectrum.csv"
COMMONNESS_CSV = "commonness.csv"
BOOTSTRAP_CSV = "bootstrap.csv"


def whitening_csv(modality: str) -> str:
    return f"whitening_{modality}.csv"


#: above this many image × text cosines the retrieval scan (O(N_i N_t d)) is skipped with the reason
RETRIEVAL_MAX_COSINES = 2.5e9

#: every file this module may write (a new report removes the old ones first)
OUTPUT_FILES = (PAIRS_CSV, SPECTRUM_CSV, COMMONNESS_CSV, BOOTSTRAP_CSV, *(whitening_csv(m) for m in MODALITIES))

#: headline -> (label in report.md, digits)
HEADLINES = {
    "modality_gap.l2_centroid_distance": ("modality gap, l2 centroid distance (= L2M)", 4),
    "gap_metrics.l2i": ("L2I, mean matched-pair distance", 4),
    "gap_metrics.rmg": ("RMG, relative modality gap", 4),
    "ellipsoid_offset.image.ratio": ("offset ratio ||m|| / ||σ||, image", 3),
    "ellipsoid_offset.text.ratio": ("offset ratio ||m|| / ||σ||, text", 3),
    "thin_shell.image.relative_thickness": ("thin-shell relative thickness, image", 3),
    "thin_shell.text.relative_thickness": ("thin-shell relative thickness, text", 3),
    "conformity.image.mean": ("mean conformity, image", 4),
    "conformity.text.mean": ("mean conformity, text", 4),
    "conformity.image.pearson": ("conformity r (exact vs cos(x, raw mean)), image", 5),
    "conformity.text.pearson": ("conformity r (exact vs cos(x, raw mean)), text", 5),
    "pair_conformity.pearson": ("per-pair conformity r (C_img vs C_txt)", 3),
    "separability.best_threshold_accuracy": ("best single-feature balanced accuracy", 4),
    "centroid_shift.loss_argmin": ("centroid-shift loss argmin α", 2),
}


@dataclass
class Beyond:
    """Results of the SPEC §12 analyses of one report (each None / absent when skipped)."""

    gap_metrics: az.GapMetricsResult | None = None
    pair_conformity: az.PairConformityResult | None = None
    retrieval_by_conformity: az.RetrievalByConformityResult | None = None
    commonness: az.CommonnessResult | None = None
    spectrum: dict[str, az.SpectrumResult] = field(default_factory=dict)
    whitening: dict[str, az.WhiteningResult] = field(default_factory=dict)
    bootstrap: az.BootstrapResult | None = None


# -- running ---------------------------------------------------------------------------------------------


def headline_values(report: Report) -> dict[str, float]:
    """The point estimate of every headline the report holds (the analyzers' own numbers)."""
    out: dict[str, float] = {}
    if report.modality_gap is not None:
        out["modality_gap.l2_centroid_distance"] = report.modality_gap.l2_centroid_distance
    beyond: Beyond | None = getattr(report, "beyond", None)
    if beyond is not None and beyond.gap_metrics is not None:
        out["gap_metrics.l2i"] = beyond.gap_metrics.l2i
        out["gap_metrics.rmg"] = beyond.gap_metrics.rmg
    for m in MODALITIES:
        if m in report.ellipsoid_offset:
            out[f"ellipsoid_offset.{m}.ratio"] = report.ellipsoid_offset[m].ratio
        if m in report.thin_shell:
            out[f"thin_shell.{m}.relative_thickness"] = report.thin_shell[m].relative_thickness
        if m in report.conformity:
            out[f"conformity.{m}.mean"] = report.conformity[m].mean
            out[f"conformity.{m}.pearson"] = report.conformity[m].pearson
    if beyond is not None and beyond.pair_conformity is not None:
        out["pair_conformity.pearson"] = beyond.pair_conformity.pearson
    sep = report.separability
    if sep is not None and len(sep.ranking):
        out["separability.best_threshold_accuracy"] = float(sep.threshold_accuracy[sep.ranking[0]])
    if report.centroid_shift is not None:
        out["centroid_shift.loss_argmin"] = report.centroid_shift.loss_argmin
    return {k: float(v) for k, v in out.items() if v is not None}


def run_beyond(
    report: Report,
    arrays: dict[str, np.ndarray],
    image_rows: np.ndarray,
    text_rows: np.ndarray,
    cfg: Any,
    run: Callable[..., Any],
) -> Beyond:
    """Run the SPEC §12 analyses on the checked arrays of :func:`~clipgeo.report.analyze`; sets ``report.beyond``.

    ``image_rows[k]``, ``text_rows[k]`` are the rows of matched pair k; ``run(name, fn, *args)`` times a call.
    Skipped analyses are recorded in ``report.skipped`` with the reason.
    """
    beyond = Beyond()
    report.beyond = beyond
    image, text = arrays.get("image"), arrays.get("text")
    n_text = 0 if text is None else len(text)
    link = np.full(n_text, -1, dtype=np.int64)
    link[text_rows] = image_rows
    conf = {m: r.values for m, r in report.conformity.items()}

    for m, x in arrays.items():
        odd = report.off_diagonal_dominance.get(m)
        cov = None if odd is None or np.shape(odd.covariance) != (x.shape[1],) * 2 else odd.covariance
        if len(x) >= 2:
            beyond.spectrum[m] = run("spectrum", az.spectrum, x, covariance=cov)
        if len(x) >= 40:
            beyond.whitening[m] = run("whitening", az.whitening, x, seed=cfg.seed, covariance=cov)
        else:
            report.skipped[f"whitening.{m}"] = f"{m} has {len(x)} rows; whitening needs at least 40"

    n_pairs = len(image_rows)
    if image is not None and text is not None and len(image) >= 2 and len(text) >= 2 and n_pairs >= 2:
        beyond.gap_metrics = run("gap_metrics", az.gap_metrics, image, text, link)
        given = {"image_conformity": conf.get("image"), "text_conformity": conf.get("text")}
        beyond.pair_conformity = run("pair_conformity", az.pair_conformity, image, text, link, **given)
        if len(image) * len(text) <= RETRIEVAL_MAX_COSINES:
            beyond.retrieval_by_conformity = run(
                "retrieval_by_conformity", az.retrieval_by_conformity, image, text, link, **given
            )
        else:
            report.skipped["retrieval_by_conformity"] = (
                f"{len(image)} × {len(text)} cosines exceed {RETRIEVAL_MAX_COSINES:.2g}; run "
                "clipgeo.retrieval_by_conformity on the arrays (or a subset) directly"
            )
    else:
        reason = "needs image and text rows with at least 2 matched pairs"
        for name in ("gap_metrics", "pair_conformity", "retrieval_by_conformity"):
            report.skipped[name] = reason

    captions = report.rows.get("text", {}).get("captions")
    if "text" not in conf:
        report.skipped["commonness"] = "no text conformity (needs at least 2 text rows)"
    elif captions is None or sum(bool(str(c).strip()) for c in captions) < 2:
        report.skipped["commonness"] = "the store has no captions (text rows without caption strings)"
    else:
        beyond.commonness = run("commonness", az.commonness, conf["text"], captions)

    n_boot = int(cfg.bootstrap)  # checked by AnalyzeConfig: 0 (off) or >= 2
    if n_boot == 0:
        report.skipped["bootstrap"] = "turned off (bootstrap = 0)"
    else:
        sep = report.separability
        top = None if sep is None else sep.ranking[: max(1, min(10, len(sep.ranking)))]
        beyond.bootstrap = run(
            "bootstrap",
            az.bootstrap,
            image,
            text,
            link if image is not None and text is not None else None,
            n_boot=n_boot,
            seed=cfg.seed,
            separability_features=top,
            alphas=report.config.get("alphas"),
            temperature=cfg.temperature,
            batch_size=cfg.batch_size,
        )
    return beyond


# -- report.json ---------------------------------------------------------------------------------------


def _set_path(data: dict[str, Any], name: str, interval: dict[str, Any]) -> None:
    """Put ``interval`` at ``data[a][b]["bootstrap"][c]`` for the dotted ``name`` ``a.b.c`` (parents created)."""
    *parents, leaf = name.split(".")
    node = data
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node.setdefault("bootstrap", {})[leaf] = interval


def summary(report: Report, data: dict[str, Any]) -> None:
    """Add the SPEC §12 keys to the report.json body ``data`` (in place)."""
    from .._io import to_jsonable

    beyond: Beyond | None = getattr(report, "beyond", None)
    if beyond is None:
        return
    maybe = lambda r: None if r is None else r.to_dict()  # noqa: E731
    data["gap_metrics"] = maybe(beyond.gap_metrics)
    data["pair_conformity"] = maybe(beyond.pair_conformity)
    pc = beyond.pair_conformity
    if pc is not None:
        data["pair_conformity"]["most_disagreeing"] = _disagreeing(report, pc)
    data["retrieval_by_conformity"] = maybe(beyond.retrieval_by_conformity)
    data["commonness"] = maybe(beyond.commonness)
    data["spectrum"] = {m: r.to_dict() for m, r in beyond.spectrum.items()}
    data["whitening"] = {m: r.to_dict() for m, r in beyond.whitening.items()}
    values = headline_values(report)
    data["headlines"] = dict(values)  # the SPEC §12 headline numbers, by report.json path (compare-stores reads them)
    boot = beyond.bootstrap
    if boot is None:
        data["bootstrap"] = None
        return
    block = boot.to_dict()
    for name, iv in boot.intervals.items():
        entry = {"value": values.get(name), **iv.to_dict()}
        block["intervals"][name] = entry
        _set_path(data, name, entry)
    data["bootstrap"] = to_jsonable(block)


def _disagreeing(report: Report, pc: az.PairConformityResult, k: int = 5) -> list[dict[str, Any]]:
    """The pairs whose image and caption conformity disagree most, with caption and image path."""
    captions = report.rows.get("text", {}).get("captions")
    paths = report.rows.get("image", {}).get("paths")
    out = []
    for p in pc.most_disagreeing(k):
        item: dict[str, Any] = {
            "image_row": int(pc.image_row[p]),
            "text_row": int(pc.text_row[p]),
            "image_conformity": float(pc.image_conformity[p]),
            "text_conformity": float(pc.text_conformity[p]),
            "disagreement": float(pc.disagreement[p]),
        }
        if captions is not None and len(captions) > pc.text_row[p]:
            item["caption"] = str(captions[pc.text_row[p]])
        if paths is not None and len(paths) > pc.image_row[p]:
            item["path"] = str(paths[pc.image_row[p]])
        out.append(item)
    return out


# -- tables ---------------------------------------------------------------------------------------------


def tables(report: Report) -> dict[str, Any]:
    """The CSV tables of the SPEC §12 analyses, by file name (pandas DataFrames)."""
    import pandas as pd

    beyond: Beyond | None = getattr(report, "beyond", None)
    if beyond is None:
        return {}
    out: dict[str, Any] = {}
    pc, rt, gm = beyond.pair_conformity, beyond.retrieval_by_conformity, beyond.gap_metrics
    if pc is not None:
        frame = pd.DataFrame(
            {
                "image_row": pc.image_row,
                "text_row": pc.text_row,
                "image_conformity": pc.image_conformity,
                "text_conformity": pc.text_conformity,
                "disagreement": pc.disagreement,
            }
        )
        if rt is not None and len(rt.rank_i2t) == len(frame):
            for c in ("rank_i2t", "rank_t2i", "decile_i2t", "decile_t2i"):
                frame[c] = getattr(rt, c)
        if gm is not None and len(gm.pair_distance) == len(frame):
            frame["pair_distance"] = gm.pair_distance
        out[PAIRS_CSV] = frame
    if beyond.spectrum:
        d = max(len(r.eigenvalues) for r in beyond.spectrum.values())
        frame = pd.DataFrame({"component": np.arange(d)})
        for m, r in beyond.spectrum.items():
            frame[f"eigenvalue_{m}"] = r.eigenvalues
        out[SPECTRUM_CSV] = frame
    for m, r in beyond.whitening.items():
        frame = pd.DataFrame({"heldout_log_likelihood": r.heldout_log_likelihood, "qq_theoretical": r.qq_theoretical})
        for k, row in enumerate(r.qq_sample):
            frame[f"qq_coordinate_{k}"] = row
        out[whitening_csv(m)] = frame
    cm = beyond.commonness
    if cm is not None:
        out[COMMONNESS_CSV] = pd.DataFrame(
            {
                "text_row": cm.rows,
                "conformity": cm.conformity,
                "length": cm.length,
                "duplicates": cm.duplicates,
                "word_frequency": cm.word_frequency,
            }
        )
    if beyond.bootstrap is not None and beyond.bootstrap.draws:
        out[BOOTSTRAP_CSV] = pd.DataFrame({"draw": np.arange(beyond.bootstrap.n_boot), **beyond.bootstrap.draws})
    return out


# -- reading back ----------------------------------------------------------------------------------------


def read(report: Report, root: str | Path, data: dict[str, Any]) -> None:
    """Rebuild ``report.beyond`` from a report directory (the inverse of :func:`summary` and :func:`tables`)."""
    import pandas as pd

    from ._rebuild import _build

    root = Path(root)

    def table(name: str):
        p = root / name
        return pd.read_csv(p) if p.is_file() else None

    def col(frame, name: str, dtype: type = np.float64):
        return None if frame is None or name not in frame else frame[name].to_numpy(dtype=dtype)

    beyond = Beyond()
    pairs = table(PAIRS_CSV)
    if data.get("gap_metrics"):
        beyond.gap_metrics = _build(az.GapMetricsResult, data["gap_metrics"], pair_distance=col(pairs, "pair_distance"))
    if data.get("pair_conformity") and pairs is not None:
        s = {k: v for k, v in data["pair_conformity"].items() if k != "most_disagreeing"}
        beyond.pair_conformity = _build(
            az.PairConformityResult,
            s,
            image_row=col(pairs, "image_row", np.int64),
            text_row=col(pairs, "text_row", np.int64),
            image_conformity=col(pairs, "image_conformity"),
            text_conformity=col(pairs, "text_conformity"),
            disagreement=col(pairs, "disagreement"),
        )
    if data.get("retrieval_by_conformity") and pairs is not None and "rank_i2t" in pairs:
        s = {k: v for k, v in data["retrieval_by_conformity"].items() if k != "by_decile"}
        beyond.retrieval_by_conformity = _build(
            az.RetrievalByConformityResult,
            s,
            image_row=col(pairs, "image_row", np.int64),
            text_row=col(pairs, "text_row", np.int64),
            rank_i2t=col(pairs, "rank_i2t", np.int64),
            rank_t2i=col(pairs, "rank_t2i", np.int64),
            image_conformity=col(pairs, "image_conformity"),
            text_conformity=col(pairs, "text_conformity"),
            decile_i2t=col(pairs, "decile_i2t", np.int64),
            decile_t2i=col(pairs, "decile_t2i", np.int64),
        )
    cm = table(COMMONNESS_CSV)
    if data.get("commonness") and cm is not None:
        beyond.commonness = _build(
            az.CommonnessResult,
            data["commonness"],
            rows=col(cm, "text_row", np.int64),
            **{c: col(cm, c) for c in ("conformity", "length", "duplicates", "word_frequency")},
        )
    spec = table(SPECTRUM_CSV)
    for m, s in (data.get("spectrum") or {}).items():
        values = col(spec, f"eigenvalue_{m}")
        beyond.spectrum[m] = _build(
            az.SpectrumResult, s, eigenvalues=values[np.isfinite(values)] if values is not None else None
        )
    for m, s in (data.get("whitening") or {}).items():
        frame = table(whitening_csv(m))
        qq = [c for c in (frame if frame is not None else []) if c.startswith("qq_coordinate_")]
        beyond.whitening[m] = _build(
            az.WhiteningResult,
            s,
            heldout_log_likelihood=col(frame, "heldout_log_likelihood"),
            qq_theoretical=col(frame, "qq_theoretical"),
            qq_sample=frame[qq].to_numpy(np.float64).T if qq else np.empty((0, 0)),
        )
    boot = data.get("bootstrap")
    if boot:
        frame = table(BOOTSTRAP_CSV)
        intervals = {
            k: az.Interval(
                low=np.nan if v.get("low") is None else v["low"],
                high=np.nan if v.get("high") is None else v["high"],
                n=int(v.get("n_boot") or 0),
            )
            for k, v in (boot.get("intervals") or {}).items()
        }
        draws = {c: frame[c].to_numpy(np.float64) for c in frame if c != "draw"} if frame is not None else {}
        beyond.bootstrap = az.BootstrapResult(
            n_boot=int(boot.get("n_boot") or 0),
            seed=int(boot.get("seed") or 0),
            level=float(boot.get("level") or 0.95),
            n_image=report.n_image,
            n_text=report.n_text,
            intervals=intervals,
            draws=draws,
            notes=dict(boot.get("notes") or {}),
        )
    report.beyond = beyond


# -- report.md -------------------------------------------------------------------------------------------


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.4g}"


def with_interval(report: Report, name: str, value: Any, digits: int = 3) -> str:
    """``value [low, high]`` when the headline ``name`` was bootstrapped, else the value alone."""
    beyond: Beyond | None = getattr(report, "beyond", None)
    iv = None if beyond is None or beyond.bootstrap is None else beyond.bootstrap.interval(name)
    text = _num(value, digits)
    if iv is None or not np.isfinite(iv.low):
        return text
    return f"{text} [{_num(iv.low, digits)}, {_num(iv.high, digits)}]"


def markdown(report: Report) -> list[str]:
    """The report.md sections of the SPEC §12 analyses (empty when none ran)."""
    beyond: Beyond | None = getattr(report, "beyond", None)
    if beyond is None:
        return []
    lines: list[str] = []
    add = lines.append
    boot = beyond.bootstrap
    values = headline_values(report)
    if boot is not None and boot.intervals:
        add("## Headline numbers with 95 % bootstrap intervals")
        add("")
        add(
            f"{boot.n_boot} draws (seed {boot.seed}), images resampled with their captions; each number is "
            "printed as value [low, high]."
        )
        add("")
        for name, (label, digits) in HEADLINES.items():
            if name in values:
                add(f"- {label} (`{name}`): {with_interval(report, name, values[name], digits)}")
        for name, note in boot.notes.items():
            add(f"- note on `{name}`: {note}")
        add("")
    add("## Beyond the paper (SPEC §12)")
    add("")
    gm = beyond.gap_metrics
    if gm is not None:
        add("### Gap metrics of Schrodi et al. (ICLR 2025)")
        floor = " (d_m floored at 1e-3)" if gm.d_m_floored else ""
        add(
            f"- L2M {with_interval(report, 'modality_gap.l2_centroid_distance', gm.l2m, 4)}, "
            f"L2I {with_interval(report, 'gap_metrics.l2i', gm.l2i, 4)}, "
            f"RMG {with_interval(report, 'gap_metrics.rmg', gm.rmg, 4)} "
            f"(d_m {_num(gm.d_m, 4)}{floor}, d_i {_num(gm.d_i, 4)}, d_t {_num(gm.d_t, 4)}; {gm.n_pairs} pairs)."
        )
        add("")
    pc = beyond.pair_conformity
    if pc is not None:
        add("### Per-pair conformity")
        add(
            f"- Over {pc.n_pairs} matched pairs, the image's and the caption's exact conformity correlate with "
            f"Pearson r = {with_interval(report, 'pair_conformity.pearson', pc.pearson, 3)}, "
            f"Spearman r = {_num(pc.spearman, 3)}."
        )
        for item in _disagreeing(report, pc, 3):
            what = item.get("caption") or item.get("path") or f"text row {item['text_row']}"
            what = " ".join(str(what).split())[:120]
            add(
                f"- disagree: C_img {item['image_conformity']:.4f} vs C_txt {item['text_conformity']:.4f} "
                f"(quantile gap {item['disagreement']:.2f}): {what}"
            )
        add("")
    rt = beyond.retrieval_by_conformity
    if rt is not None:
        add("### Retrieval difficulty vs conformity")
        add(
            f"- image→text R@1 {_num(rt.r1_i2t)}, R@5 {_num(rt.r5_i2t)}, median rank {_num(rt.median_rank_i2t, 1)}; "
            f"text→image R@1 {_num(rt.r1_t2i)}, R@5 {_num(rt.r5_t2i)}, median rank {_num(rt.median_rank_t2i, 1)} "
            "(captions of the same image are not competitors)."
        )
        for direction, label in (("i2t", "image→text"), ("t2i", "text→image")):
            table = rt.by_decile(direction)
            if table:
                r1 = ", ".join(_num(row["r1"], 2) for row in table)
                add(f"- {label} R@1 per conformity decile (lowest → highest): {r1}.")
        add(
            f"- Spearman r of the query's conformity with the unpaired items ranked above its partner: "
            f"{_num(rt.spearman_i2t)} (image→text), {_num(rt.spearman_t2i)} (text→image); positive means common "
            "content is harder to retrieve (the paper's false-negative argument)."
        )
        add("")
    cm = beyond.commonness
    if cm is not None:
        add("### Commonness")
        add(
            f"- Caption conformity vs length: Spearman {_num(cm.spearman_length)}; vs duplicate count: "
            f"{_num(cm.spearman_duplicates)} ({cm.n_duplicated} captions repeat); vs mean word frequency: "
            f"{_num(cm.spearman_word_frequency)} ({cm.n_captions} captions)."
        )
        add("")
    if beyond.spectrum:
        add("### Spectrum")
        for m, sp in beyond.spectrum.items():
            add(
                f"- {m}: effective rank (RankMe) {_num(sp.effective_rank, 1)}, participation ratio "
                f"{_num(sp.participation_ratio, 1)}; {sp.dims_90} / {sp.dims_99} of {sp.dim} dimensions hold 90 % / 99 % "
                f"of the variance (top eigenvalue {100 * sp.top_share:.1f} %)."
            )
        add("")
    if beyond.whitening:
        add("### Whitening and likelihood (Betser, Levi & Gilboa, ICML 2025)")
        for m, w in beyond.whitening.items():
            lw = ", Ledoit–Wolf covariance" if w.ledoit_wolf else ""
            add(
                f"- {m}: whitened coordinates passing at 5 %: D'Agostino–Pearson {100 * w.dagostino_pass_rate:.1f} %, "
                f"Anderson–Darling {100 * w.anderson_pass_rate:.1f} % (Gaussian rows: about 95 %); mean log-likelihood "
                f"{_num(w.mean_log_likelihood, 1)} on the {w.n_fit} fitted rows vs {_num(w.heldout_mean_log_likelihood, 1)} "
                f"on {w.n_heldout} held-out rows{lw}."
            )
        add("")
    return lines
