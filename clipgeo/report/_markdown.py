"""``report.md``: each claim of the paper beside what this data shows (values of the paper from :mod:`._paper`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._paper import PAPER, PAPER_MODEL

if TYPE_CHECKING:  # pragma: no cover
    from ._result import Report


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.4g}"


def _signed(value: Any, digits: int = 4) -> str:
    """``+ 0.12`` / ``− 0.12`` for the constant term of a fitted line."""
    if value is None or not np.isfinite(float(value)):
        return "+ n/a"
    return ("− " if float(value) < 0 else "+ ") + _f(abs(float(value)), digits)


def _one_line(text: str, limit: int = 160) -> str:
    """A caption on one line, shortened to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def _claims(report: Report, data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    add = lines.append

    def raw(m: str) -> str:
        return " (degenerate: rows are unit-norm)" if report.unit_norm.get(m) else ""

    gap, sep = report.modality_gap, report.separability
    shell = PAPER["thin_shell"].value
    if gap is not None:
        add("### 1. Modality gap")
        add("- **Paper (Liang et al.; Levi & Gilboa)**: image and text embeddings occupy separate regions.")
        matched = "" if gap.mean_matched_cosine is None else f"; mean matched-pair cosine {_f(gap.mean_matched_cosine, 4)}"
        add(
            f"- **Here**: l2 centroid distance (unit rows) {_f(gap.l2_centroid_distance, 4)}, raw centroid distance "
            f"{_f(gap.raw_centroid_distance, 4)}{matched}."
        )
        add(
            f"- Narrow cones: mean pairwise cosine {_f(gap.image_cone)} inside the images, "
            f"{_f(gap.text_cone)} inside the texts."
        )
    if sep is not None:
        add("")
        add("### 2. Linear separability")
        add(
            "- **Paper**: a handful of \"modality label\" features separate image from text on their own "
            f"({PAPER['label_features'].paper})."
        )
        perfect = sep.separating_features(1.0)
        label = sep.modality_label_features
        top = sep.ranking[0]
        if len(label):
            shown = ", ".join(str(int(k)) for k in label[:9]) + (" …" if len(label) > 9 else "")
            add(
                f"- **Here**: {len(label)} modality-label feature(s) (criterion: single-threshold balanced accuracy "
                f"≥ 95 %, in-sample): {shown}; {len(perfect)} of them at 100 %."
            )
        else:
            add(
                f"- **Here**: no feature reaches 95 % on its own (the modality-label criterion); the best, feature "
                f"{int(top)}, reaches {_pct(sep.threshold_accuracy[top])} balanced accuracy."
            )
        top5 = ", ".join(f"{int(k)} ({_pct(sep.threshold_accuracy[k])}, d' {_f(sep.dprime[k])})" for k in sep.ranking[:5])
        add(f"- Top features (0-based): {top5}.")
        if sep.best_pair is not None:
            ties = int(getattr(sep, "best_pair_ties", 0) or 0)
            tie = (
                f"; {ties} pairs tie at this accuracy, this one has the largest Fisher ratio "
                f"({_f(sep.best_pair_fisher)})"
                if ties > 1
                else ""
            )
            add(
                f"- Best pair among the top 10: features {sep.best_pair[0]} and {sep.best_pair[1]}, LDA line "
                f"{_pct(sep.best_pair_accuracy)} (in-sample, balanced){tie}."
            )
        if sep.linear_cv_accuracy is not None:
            add(
                f"- All {report.dim} features, logistic regression, 5-fold stratified CV: "
                f"{_pct(sep.linear_cv_accuracy)} (held-out; the in-sample figures above overstate)."
            )
        if report.dim == 512:
            ranks = sep.rank
            a, b = PAPER["label_feature_indices"].value
            add(
                f"- The paper's {PAPER_MODEL} features {a} and {b}: rank "
                f"{int(ranks[a]) + 1} and {int(ranks[b]) + 1} here if 0-based, "
                f"{int(ranks[a - 1]) + 1} and {int(ranks[b - 1]) + 1} if 1-based (features {a - 1} and {b - 1})."
            )
    for m, res in report.thin_shell.items():
        if m == next(iter(report.thin_shell)):
            add("")
            add("### 3. Thin shell")
            add(
                "- **Theory**: centred norms concentrate at sqrt(tr C), with a small relative thickness "
                f"(paper, {PAPER_MODEL} images: mean² {shell['mean_sq']} vs variance {shell['var']})."
            )
        add(
            f"- **Here, {m}{raw(m)}**: thin shell: centred norm {_f(res.mean_centered_norm)} ± {_f(res.std_centered_norm, 2)} "
            f"vs sqrt(tr C) {_f(res.sqrt_trace_cov)} (relative thickness {_pct(res.relative_thickness)}; "
            f"mean² {_f(res.squared_mean_centered_norm)} vs variance {_f(res.var_centered_norm)}); "
            f"uncentred norm {_f(res.mean_norm)} ± {_f(res.std_norm, 2)}; mean feature variance "
            f"{_f(res.mean_feature_variance)}."
        )
    for m, res in report.mahalanobis_shell.items():
        if m == next(iter(report.mahalanobis_shell)):
            add("")
            add("### 4. Mahalanobis (ellipsoidal) shell")
            add("- **Claim**: the rows lie on an ellipsoidal shell: the Mahalanobis cv is small, smaller than the Euclidean one.")
            add(
                "- Measured held out: Ledoit–Wolf fitted on 4 of 5 seeded folds, d_M of the fifth (distances of the "
                "rows a fit has seen shrink the cv when N is not ≫ d; the in-sample cv is given for comparison only)."
            )
        verdict = "thinner" if res.thinner_than_euclidean else "not thinner"
        add(
            f"- **Here, {m}{raw(m)}**: held-out d_M {_f(res.mean)} ± {_f(res.std, 2)} (cv {_f(res.cv)}; in-sample cv "
            f"{_f(res.cv_in_sample)}; sqrt(d) = {_f(np.sqrt(report.dim))}) vs held-out Euclidean cv {_f(res.euclidean_cv)}: "
            f"the ellipsoidal shell is {verdict} than the spherical one (Ledoit–Wolf shrinkage {_f(res.shrinkage)})."
        )
    for m, res in report.off_diagonal_dominance.items():
        if m == next(iter(report.off_diagonal_dominance)):
            add("")
            add("### 5. Tilted ellipsoids (off-diagonal dominance)")
            add("- **Claim**: covariance rows are dominated by their off-diagonal entries (odd > 1): the axes are tilted.")
        add(
            f"- **Here, {m}**: median odd {_f(res.median)}; {_pct(res.fraction_above_1)} of the features have odd > 1."
        )
    for m, res in report.ellipsoid_offset.items():
        if m == next(iter(report.ellipsoid_offset)):
            add("")
            add("### 6. Ellipsoid offset")
            add(
                f"- **Paper**: ||m|| / ||σ|| = {PAPER['offset_image'].paper} (image), {PAPER['offset_text'].paper} (text): "
                "the centres sit far from the origin."
            )
        add(
            f"- **Here, {m}{raw(m)}**: ||m|| / ||σ|| = {_f(res.ratio)} (||m|| {_f(res.mean_norm)}, ||σ|| {_f(res.std_norm)}); "
            f"|m_k| > σ_k on {_pct(res.fraction_mean_above_std)} of the features."
        )
    for m, res in report.conformity.items():
        if m == next(iter(report.conformity)):
            add("")
            add("### 7. Conformity")
            add(
                f"- **Paper**: the cosine to the raw mean predicts the exact conformity almost perfectly "
                f"(r = {PAPER['conformity'].paper})."
            )
        unit_mean = float(np.mean(res.unit_estimate)) if len(res.unit_estimate) else float("nan")
        excess = unit_mean / res.mean - 1 if res.mean else float("nan")
        add(
            f"- **Here, {m}**: exact conformity ≈ {_f(res.slope, 4)} · estimate_raw {_signed(res.intercept)} with r = "
            f"{res.pearson:.5f} (estimate_raw = cos(x, raw mean)); mean exact conformity {_f(res.mean)}. "
            f"estimate_unit = cos(x, mean of unit rows), what the paper's notebook plots as \"conformity\", has mean "
            f"{_f(unit_mean)}, {_pct(excess)} above the exact value (r = {res.unit_pearson:.6f}, exactly linear, same "
            f"ranking). Exact values computed by: {res.method}."
        )
    cs = report.centroid_shift
    if cs is not None:
        add("")
        add("### 8. Why off-centre: centroid shift")
        add("- **Paper**: the CLIP loss and the conformity KL are lowest at α = 0, where training put the ellipsoid.")
        i0 = int(np.argmin(np.abs(cs.alpha))) if len(cs.alpha) else 0

        def lowest(curve: str) -> str:
            edge = " — the edge of the α grid, a bound rather than an optimum" if cs.at_edge(curve) else ""
            return f"α = {cs.argmin(curve):.2g}{edge}"

        add(
            f"- **Here**: the loss is lowest at {lowest('loss')} (loss {_f(cs.loss.min(), 4)}; at α = "
            f"{cs.alpha[i0]:.2g}: {_f(cs.loss[i0], 4)} ± {_f(cs.loss_std[i0], 2)} over the caption draws)."
        )
        add(
            f"- Batches as CLIP trains: {cs.repetitions} draw(s) of one caption per image ({cs.pairs_used} pairs each, "
            f"from {cs.n_pairs} stored pairs of {cs.n_images} unique images), shuffled into {cs.batches} batch(es) of "
            f"≤ {cs.batch_size}, each image at most once per batch; τ = {_f(cs.temperature)}."
        )
        add(
            f"- Wang & Isola at every α: pair alignment lowest at {lowest('wang_isola_alignment')}, image uniformity "
            f"lowest at {lowest('wang_isola_uniformity_image')} (the InfoNCE terms are ±1/τ-sized and nearly cancel)."
        )
        add(
            f"- Conformity KL lowest at {lowest('conformity_kl')} (exact conformity) and at "
            f"{lowest('conformity_kl_estimate')} (estimate_unit). Estimator: {cs.kl_bins}-bin histograms on one shared "
            f"grid, +{_f(cs.kl_pseudo_count)} per bin; such a KL is bounded by {_f(cs.kl_bound)} nats (≈ log(2N+1)), "
            "so its size is not comparable with the paper's curve."
        )
    au = report.alignment_uniformity
    if au is not None:
        add(
            f"- Wang & Isola on unit vectors: alignment {_f(au.alignment, 4)}, uniformity image "
            f"{_f(au.uniformity_image, 4)}, text {_f(au.uniformity_text, 4)}."
        )
    cg = report.cosine_gradient
    if cg is not None:
        add("")
        add("### 9. Cosine sensitivity vs norm")
        add("- **Claim**: ||∂cos(u, w)/∂u|| = sqrt(1 − cos²)/||u||: far from the origin a move changes the cosine less.")
        if len(cg.mean_norm) >= 2:
            far, near = int(np.argmax(cg.mean_norm)), int(np.argmin(cg.mean_norm))
            add(
                f"- **Here** (experiment: every shifted image row moved by a seeded random vector of norm "
                f"{_f(cg.perturbation_norm)} = {_f(cg.epsilon)} × the mean centred norm): mean |Δcos| to the own caption "
                f"{_f(cg.delta_cos_own[near])} at ||u|| = {_f(cg.mean_norm[near])} (α = {cg.grid_alpha[near]:.2g}) vs "
                f"{_f(cg.delta_cos_own[far])} at ||u|| = {_f(cg.mean_norm[far])} (α = {cg.grid_alpha[far]:.2g}); to the "
                f"nearest unpaired caption {_f(cg.delta_cos_negative[near])} vs {_f(cg.delta_cos_negative[far])}."
            )
        add(
            f"- The formula: log-log slope of gradient vs norm {_f(cg.loglog_slope)} (−1 at a fixed angle); it matches "
            f"the formed gradient to {_f(cg.max_relative_error, 2)}."
        )
    return lines


def render_markdown(report: Report, data: dict[str, Any] | None = None) -> str:
    """The text of ``report.md``: each claim of the paper next to what this data shows."""
    data = report.to_dict() if data is None else data
    model = data.get("model") or "unknown model"
    lines = [
        f"# clipgeo report: {model}",
        "",
        f"{report.n_image} image rows, {report.n_text} text rows, {report.n_pairs} matched pairs, dimension {report.dim}. "
        "Feature indices are 0-based.",
        "",
    ]
    if report.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- **Warning**: {w}" for w in report.warnings]
        lines.append("")
    lines += ["## The paper's claims against this data", ""]
    lines += _claims(report, data)
    from ._beyond import markdown as beyond_markdown

    lines += ["", *beyond_markdown(report)]  # SPEC §12 and the headline intervals
    extremes = report.extremes()
    if extremes:
        lines += ["", "## Extreme conformity", ""]
        for m, ex in extremes.items():
            label = "caption" if m == "text" else "path"
            for which, title in (("top", "highest (common content)"), ("bottom", "lowest (rare content)")):
                lines.append(f"**{m}, {title}:**")
                lines.append("")
                for item in ex[which]:
                    text = item.get(label) or f"row {item['row']}" + (f" (id {item['id']})" if "id" in item else "")
                    text = _one_line(text)
                    lines.append(f"- {item['conformity']:.4f}  {text}")
                lines.append("")
    if report.skipped:
        lines += ["## Skipped", ""]
        lines += [f"- {name}: {reason}" for name, reason in report.skipped.items()]
        lines.append("")
    prov = data.get("provenance", {})
    if prov:
        lines += ["## Provenance", ""]
        versions = prov.get("versions", {})
        lines.append(f"- created {prov.get('created', '')} by `{prov.get('command', '')}`")
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        lines.append("- files: " + ", ".join(data.get("files", [])))
    return "\n".join(lines).rstrip() + "\n"
