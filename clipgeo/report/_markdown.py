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
        near = sep.separating_features(0.95)
        if len(perfect):
            shown = ", ".join(str(int(k)) for k in perfect[:10]) + (" …" if len(perfect) > 10 else "")
            add(f"- **Here**: modality-label features: {shown} separate image from text alone (100 %).")
        else:
            top = sep.ranking[0]
            add(
                f"- **Here**: no single feature separates perfectly; the best, feature {int(top)}, reaches "
                f"{_pct(sep.threshold_accuracy[top])} balanced accuracy."
            )
        add(f"- Features reaching ≥ 95 % on their own: {len(near)} of {report.dim}.")
        top5 = ", ".join(f"{int(k)} ({_pct(sep.threshold_accuracy[k])}, d' {_f(sep.dprime[k])})" for k in sep.ranking[:5])
        add(f"- Top features (0-based): {top5}.")
        if sep.best_pair is not None:
            add(
                f"- Best pair among the top 10: features {sep.best_pair[0]} and {sep.best_pair[1]}, LDA line "
                f"{_pct(sep.best_pair_accuracy)} (in-sample, balanced)."
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
            add("- **Claim**: the rows lie on an ellipsoidal shell: the Mahalanobis cv is small.")
        verdict = "thinner" if res.thinner_than_euclidean else "not thinner"
        add(
            f"- **Here, {m}{raw(m)}**: d_M {_f(res.mean)} ± {_f(res.std, 2)} (cv {_f(res.cv)}, sqrt(d) = {_f(np.sqrt(report.dim))}) "
            f"vs Euclidean cv {_f(res.euclidean_cv)}: the ellipsoidal shell is {verdict} than the spherical one "
            f"(Ledoit–Wolf shrinkage {_f(res.shrinkage)})."
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
        add(
            f"- **Here, {m}**: r = {res.pearson:.5f}, conformity ≈ {_f(res.slope, 4)} · cos(x, m) "
            f"{_signed(res.intercept)}; mean conformity {_f(res.mean)}; with the unit mean r = {res.unit_pearson:.6f} "
            f"(exactly linear). Computed by: {res.method}."
        )
    cs = report.centroid_shift
    if cs is not None:
        add("")
        add("### 8. Why off-centre: centroid shift")
        add("- **Paper**: the CLIP loss and the conformity KL are lowest at α = 0, where training put the ellipsoid.")
        i0 = int(np.argmin(np.abs(cs.alpha))) if len(cs.alpha) else 0
        add(
            f"- **Here**: loss is lowest at α = {cs.loss_argmin:.1f} (loss {_f(cs.loss.min(), 4)}; at α = "
            f"{cs.alpha[i0]:.1f}: {_f(cs.loss[i0], 4)}); conformity KL is lowest at α = {cs.kl_argmin:.1f} "
            f"(τ = {_f(cs.temperature)}, {cs.batches} batch(es) of {cs.batch_size} pairs)."
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
        per = {round(p["alpha"], 6): p for p in data.get("cosine_gradient", {}).get("per_alpha", [])}
        parts = [
            f"α = {a:.1f}: ||u|| {_f(per[a]['mean_norm'])}, gradient {_f(per[a]['mean_grad_norm'])}"
            for a in (min(per), 0.0, max(per))
            if a in per
        ]
        add(
            f"- **Here**: log-log slope of gradient vs norm {_f(cg.loglog_slope)}; " + "; ".join(parts)
            + f" (formula matches the measured gradient to {_f(cg.max_relative_error, 2)})."
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
