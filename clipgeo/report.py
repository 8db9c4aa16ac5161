"""Run every analyzer on an embedding set and write ``report.json``, ``report.md`` and the tables.

:func:`analyze` takes an :class:`~clipgeo.store.EmbeddingSet` (or anything with
its attributes), checks the arrays once, runs each SPEC measurement that the
data allows (the others are listed in ``Report.skipped`` with the reason) and
returns a :class:`Report`.  :meth:`Report.write` produces the output directory
that ``clipgeo figures`` reads -- every number and array a figure needs is
there, so nothing is computed twice:

================================  =====================================================
file                              content
================================  =====================================================
``report.json``                   every summary figure + provenance (store meta, config)
``report.md``                     each claim of the paper beside what this data shows
``features.csv``                  one row per feature: separability, mean/std, odd
``rows_image.csv``                one row per image row: norms, Mahalanobis, conformity,
``rows_text.csv``                 PCA coordinates, values of the top features, id/caption
``covariance_{image,text}.npy``   the (d, d) covariance matrices (ddof = 1)
``centroid_shift.csv``            loss / alignment / uniformity / conformity KL per α
``cosine_gradient.csv``           gradient magnitude vs norm samples
``thin_shell_theory.csv``         norms of isotropic samples for n = 2 … 512
================================  =====================================================
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import analyzers as az
from .analyzers._conformity import DEFAULT_MAX_ROWS
from .analyzers._result import plain
from .errors import InputError

MODALITIES = ("image", "text")

#: every file :meth:`Report.write` may produce
_OUTPUT_FILES = (
    "report.json", "report.md", "features.csv", "rows_image.csv", "rows_text.csv", "covariance_image.npy",
    "covariance_text.npy", "centroid_shift.csv", "cosine_gradient.csv", "thin_shell_theory.csv",
)  # fmt: skip

#: the shared defaults of :func:`analyze` (recorded in the report's provenance)
DEFAULTS: dict[str, Any] = {
    "temperature": 0.01,
    "alphas": None,
    "batch_size": 1024,
    "conformity": "exact",
    "max_rows_conformity": DEFAULT_MAX_ROWS,
    "linear_cv": True,
    "cv_folds": 5,
    "top_k_pairs": 10,
    "kl_bins": 64,
    "gradient_samples": 256,
    "uniformity_rows": 4096,
    "n_extremes": 5,
    "seed": 0,
}

# paper values quoted beside the measurements (Levi & Gilboa 2025, ViT-B/32 on MS-COCO)
_PAPER = {
    "offset_image": 0.94,
    "offset_text": 1.03,
    "conformity_r": 0.9998,
    "shell_mean_sq": 57.6,
    "shell_var": 0.19,
}


@dataclass
class Report:
    """Results of every analyzer on one embedding set.

    Attributes
    ----------
    dim, n_image, n_text, n_pairs : int
    modality_gap, separability, centroid_shift, alignment_uniformity, cosine_gradient, projection
        Analyzer results (None when skipped).
    thin_shell, mahalanobis_shell, off_diagonal_dominance, ellipsoid_offset, conformity : dict
        Per modality (``"image"``, ``"text"``) results; a skipped modality is absent.
    skipped : dict of str to str
        Analysis name -> why it could not run on this data.
    warnings : list of str
    timings : dict of str to float
        Seconds spent in each analysis.
    config : dict
        The resolved options of :func:`analyze`.
    meta : dict
        The store's metadata (model, provenance of the embeddings).
    rows : dict
        Per modality: ``ids``, ``paths`` / ``captions``, ``image_row`` (text only).
    top_feature_values : dict
        Per modality: {feature index: ndarray of shape (n,)}, raw values of the
        features the figures draw (top separating ones, best pair, features 0-9).
    """

    dim: int
    n_image: int
    n_text: int
    n_pairs: int
    config: dict[str, Any]
    meta: dict[str, Any]
    modality_gap: az.ModalityGapResult | None = None
    separability: az.SeparabilityResult | None = None
    thin_shell: dict[str, az.ThinShellResult] = field(default_factory=dict)
    mahalanobis_shell: dict[str, az.MahalanobisShellResult] = field(default_factory=dict)
    off_diagonal_dominance: dict[str, az.OffDiagonalDominanceResult] = field(default_factory=dict)
    ellipsoid_offset: dict[str, az.EllipsoidOffsetResult] = field(default_factory=dict)
    conformity: dict[str, az.ConformityResult] = field(default_factory=dict)
    centroid_shift: az.CentroidShiftResult | None = None
    alignment_uniformity: az.AlignmentUniformityResult | None = None
    cosine_gradient: az.CosineGradientResult | None = None
    projection: az.ProjectionResult | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    top_feature_values: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    unit_norm: dict[str, bool] = field(default_factory=dict)

    # -- summaries ---------------------------------------------------------------------------------
    def extremes(self, k: int | None = None) -> dict[str, Any]:
        """Highest- and lowest-conformity rows per modality, with caption / path."""
        k = int(self.config.get("n_extremes", 5) if k is None else k)
        out: dict[str, Any] = {}
        for modality, result in self.conformity.items():
            top, bottom = result.extremes(k)
            info = self.rows.get(modality, {})
            label = "caption" if modality == "text" else "path"
            labels = info.get("captions" if modality == "text" else "paths")

            def entry(i: int, labels=labels, label=label, info=info, result=result) -> dict[str, Any]:
                item = {"row": int(i), "conformity": float(result.values[i])}
                if "ids" in info and len(info["ids"]) > i:
                    item["id"] = str(info["ids"][i])
                if labels is not None and len(labels) > i and labels[i]:
                    item[label] = str(labels[i])
                return item

            out[modality] = {"top": [entry(i) for i in top], "bottom": [entry(i) for i in bottom]}
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything in ``report.json`` (without provenance): plain JSON-able values."""
        per = {
            "thin_shell": self.thin_shell,
            "mahalanobis_shell": self.mahalanobis_shell,
            "off_diagonal_dominance": self.off_diagonal_dominance,
            "ellipsoid_offset": self.ellipsoid_offset,
            "conformity": self.conformity,
        }
        out: dict[str, Any] = {
            "dim": self.dim,
            "n_image": self.n_image,
            "n_text": self.n_text,
            "n_pairs": self.n_pairs,
            "model": self.meta.get("model_id", self.meta.get("model")),
            "unit_norm": dict(self.unit_norm),
            "modality_gap": None if self.modality_gap is None else self.modality_gap.to_dict(),
            "separability": None if self.separability is None else self.separability.to_dict(),
        }
        for name, results in per.items():
            out[name] = {m: r.to_dict() for m, r in results.items()}
        out["centroid_shift"] = None if self.centroid_shift is None else self.centroid_shift.to_dict()
        out["alignment_uniformity"] = None if self.alignment_uniformity is None else self.alignment_uniformity.to_dict()
        out["cosine_gradient"] = None if self.cosine_gradient is None else self.cosine_gradient.to_dict()
        out["pca"] = None if self.projection is None else self.projection.to_dict()
        out["conformity_extremes"] = self.extremes()
        out["figure_features"] = sorted({int(k) for values in self.top_feature_values.values() for k in values})
        out["skipped"] = dict(self.skipped)
        out["warnings"] = list(self.warnings)
        out["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return plain(out)

    def features_frame(self):
        """``features.csv``: one row per feature (0-based), separability + per-modality statistics."""
        import pandas as pd

        if self.separability is not None:
            frame = self.separability.to_frame()
        else:
            frame = pd.DataFrame({"feature": np.arange(self.dim)})
        for m in MODALITIES:
            if m in self.ellipsoid_offset:
                res = self.ellipsoid_offset[m]
                if f"mean_{m}" not in frame:
                    frame[f"mean_{m}"] = res.mean
                    frame[f"std_{m}"] = res.std
                frame[f"abs_mean_{m}"] = np.abs(res.mean)
            if m in self.thin_shell:
                frame[f"var_{m}"] = self.thin_shell[m].feature_variance
            if m in self.off_diagonal_dominance:
                frame[f"odd_{m}"] = self.off_diagonal_dominance[m].per_feature
        return frame

    def rows_frame(self, modality: str):
        """``rows_<modality>.csv``: one row per embedding row of that modality."""
        import pandas as pd

        n = self.n_image if modality == "image" else self.n_text
        info = self.rows.get(modality, {})
        frame = pd.DataFrame({"row": np.arange(n)})
        if "ids" in info:
            frame["id"] = info["ids"]
        if modality == "image" and "paths" in info:
            frame["path"] = info["paths"]
        if modality == "text":
            if "image_row" in info:
                frame["image_row"] = info["image_row"]
            if "captions" in info:
                frame["caption"] = info["captions"]
        if modality in self.thin_shell:
            frame["norm"] = self.thin_shell[modality].norms
            frame["centered_norm"] = self.thin_shell[modality].centered_norms
        if modality in self.mahalanobis_shell:
            frame["mahalanobis"] = self.mahalanobis_shell[modality].distances
        if modality in self.conformity:
            c = self.conformity[modality]
            frame["conformity"] = c.values
            frame["conformity_estimate"] = c.estimate
            frame["conformity_unit_estimate"] = c.unit_estimate
        if self.projection is not None:
            coords = getattr(self.projection, modality)
            if len(coords) == n:
                for j in range(coords.shape[1]):
                    frame[f"pc{j + 1}"] = coords[:, j]
        for k, values in sorted(self.top_feature_values.get(modality, {}).items()):
            frame[f"feature_{k}"] = values
        return frame

    # -- writing -----------------------------------------------------------------------------------
    def write(self, out_dir: str | Path, *, provenance: dict[str, Any] | None = None) -> dict[str, Path]:
        """Write report.json, report.md, the CSV tables and the covariance matrices into ``out_dir``.

        Parameters
        ----------
        out_dir : path
            Created if missing; files of a previous report there are replaced.
        provenance : dict, optional
            Extra provenance (e.g. the CLI's); default :func:`clipgeo.provenance.provenance`
            of the analyze config.

        Returns
        -------
        dict of str to Path
            The files written, by name.
        """
        from .provenance import provenance as make_provenance
        from .synthetic import thin_shell_curve

        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise InputError(f"{out} is a file; give a directory for the report (--out)")
        out.mkdir(parents=True, exist_ok=True)
        for name in _OUTPUT_FILES:  # a previous report's tables must not outlive it
            (out / name).unlink(missing_ok=True)
        files: dict[str, Path] = {}

        def csv(name: str, frame) -> None:
            path = out / name
            frame.to_csv(path, index=False, float_format="%.9g")
            files[name] = path

        csv("features.csv", self.features_frame())
        for m in MODALITIES:
            if (self.n_image if m == "image" else self.n_text) > 0:
                csv(f"rows_{m}.csv", self.rows_frame(m))
            if m in self.off_diagonal_dominance:
                path = out / f"covariance_{m}.npy"
                np.save(path, self.off_diagonal_dominance[m].covariance)
                files[path.name] = path
        if self.centroid_shift is not None:
            csv("centroid_shift.csv", self.centroid_shift.to_frame())
        if self.cosine_gradient is not None:
            csv("cosine_gradient.csv", self.cosine_gradient.to_frame())
        csv("thin_shell_theory.csv", thin_shell_curve(seed=int(self.config.get("seed", 0))))

        data = self.to_dict()
        prov = dict(provenance) if provenance is not None else make_provenance(self.config)
        prov.setdefault("config", self.config)
        data["provenance"] = {"store": self.meta, **prov}
        data["files"] = sorted([*files, "report.json", "report.md"])
        (out / "report.md").write_text(render_markdown(self, data))
        files["report.md"] = out / "report.md"
        (out / "report.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
        files["report.json"] = out / "report.json"
        return files


# -- analyze ---------------------------------------------------------------------------------------


def _rows_info(es: Any, modality: str, n: int) -> dict[str, np.ndarray]:
    def get(name: str):
        value = getattr(es, name, None)
        return None if value is None or len(value) != n else np.asarray(value)

    info: dict[str, np.ndarray] = {}
    ids = get("image_ids" if modality == "image" else "text_ids")
    if ids is not None:
        info["ids"] = ids
    if modality == "image":
        paths = get("image_paths")
        if paths is not None:
            info["paths"] = paths
    else:
        captions = get("captions")
        if captions is not None:
            info["captions"] = captions
        link = get("text_image_index")
        if link is not None:
            info["image_row"] = link
    return info


def _paired(es: Any, image: np.ndarray, text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    link = getattr(es, "text_image_index", None)
    if link is None:
        if len(image) != len(text):
            return image[:0], text[:0]
        return image, text
    link = np.asarray(link)
    text_rows = np.flatnonzero(link >= 0)
    return image[link[text_rows]], text[text_rows]


def analyze(embedding_set: Any, **options: Any) -> Report:
    """Run every analyzer the data allows on an embedding set.

    Parameters
    ----------
    embedding_set : EmbeddingSet
        Or any object with ``image`` (n_image, d) and ``text`` (n_text, d)
        arrays, and optionally ``text_image_index``, ``captions``,
        ``image_paths``, ``image_ids``, ``text_ids``, ``meta``.
    **options
        temperature : float, default 0.01
            τ of the centroid-shift loss.
        alphas : sequence of float, default -1.0 … 1.0 step 0.1
            Centroid shifts (also the cosine-gradient shifts).
        batch_size : int, default 1024
        conformity : {"exact", "mean"}, default "exact"
            Algorithm of the exact conformity; both give the same numbers
            (see :func:`clipgeo.analyzers.conformity`).
        max_rows_conformity : int or None, default 50000
            Above this many rows a modality's conformity uses the O(n d) identity.
        linear_cv : bool, default True
            Run the cross-validated linear classifier (the slowest step).
        cv_folds, top_k_pairs, kl_bins, gradient_samples, uniformity_rows, n_extremes, seed
            See the analyzers.

    Returns
    -------
    Report

    Notes
    -----
    Separability, the gap and the PCA use all rows of each modality; the
    centroid shift, Wang–Isola metrics, cosine gradient and matched cosine use
    the matched pairs (``text_image_index``), so an image with several
    captions appears once per caption there.  An analysis that cannot run
    (one modality, fewer than 2 rows, no pairs) is recorded in
    ``Report.skipped`` with the reason, and the others still run.
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise InputError(f"unknown analyze option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    config = {**DEFAULTS, **options}
    if config["conformity"] not in ("exact", "mean"):
        raise InputError(f"unknown conformity method {config['conformity']!r}; use 'exact' or 'mean'")
    alphas = az.default_alphas() if config["alphas"] is None else np.asarray(config["alphas"], dtype=np.float64)
    config["alphas"] = [float(a) for a in alphas]
    temperature = float(config["temperature"])
    if not np.isfinite(temperature) or temperature <= 0:
        raise InputError(f"temperature must be a positive number, got {config['temperature']}")

    meta_obj = getattr(embedding_set, "meta", None)
    meta = meta_obj.to_dict() if hasattr(meta_obj, "to_dict") else {}
    raw = {"image": getattr(embedding_set, "image", None), "text": getattr(embedding_set, "text", None)}
    arrays: dict[str, np.ndarray] = {}
    dim = None
    for m in MODALITIES:
        if raw[m] is None:
            continue
        x = az.check_embeddings(raw[m], f"{m} embeddings", min_rows=0, dim=dim)
        if x.shape[0] == 0:
            continue
        dim = x.shape[1]
        arrays[m] = x
    if not arrays:
        raise InputError("the embedding set has no image and no text rows; nothing to analyze")
    dim = next(iter(arrays.values())).shape[1]
    empty = np.empty((0, dim))
    image, text = arrays.get("image", empty), arrays.get("text", empty)
    pair_img, pair_txt = _paired(embedding_set, image, text) if len(image) and len(text) else (empty, empty)

    report = Report(
        dim=dim,
        n_image=len(image),
        n_text=len(text),
        n_pairs=len(pair_img),
        config=config,
        meta=plain(meta),
        rows={m: _rows_info(embedding_set, m, len(arrays[m])) for m in arrays},
    )
    for m, x in arrays.items():
        report.unit_norm[m] = az._validation.rows_are_unit(x)
        if report.unit_norm[m]:
            report.warnings.append(
                f"{m} rows are already unit-norm: the raw-space analyses (thin shell, Mahalanobis shell, "
                "ellipsoid offset, raw centroid distance, conformity estimate from the raw mean) are degenerate; "
                "extract raw embeddings (`clipgeo extract`, encode_*(x, normalize=False)) to measure them"
            )

    def run(name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", az.UnitNormWarning)
            result = fn(*args, **kwargs)
        report.timings[name] = report.timings.get(name, 0.0) + time.perf_counter() - start
        return result

    # per modality
    for m in MODALITIES:
        x = arrays.get(m)
        if x is None:
            reason = f"no {m} rows in the store"
        elif len(x) < 2:
            reason = f"{m} has {len(x)} row; these measurements need at least 2"
        else:
            reason = None
        if reason:
            for name in ("thin_shell", "mahalanobis_shell", "off_diagonal_dominance", "ellipsoid_offset", "conformity"):
                report.skipped[f"{name}.{m}"] = reason
            continue
        report.thin_shell[m] = run("thin_shell", az.thin_shell, x)
        report.mahalanobis_shell[m] = run("mahalanobis_shell", az.mahalanobis_shell, x)
        report.off_diagonal_dominance[m] = run("off_diagonal_dominance", az.off_diagonal_dominance, x)
        report.ellipsoid_offset[m] = run("ellipsoid_offset", az.ellipsoid_offset, x)
        report.conformity[m] = run(
            "conformity", az.conformity, x, config["conformity"], max_rows=config["max_rows_conformity"]
        )
        if report.conformity[m].method != config["conformity"]:
            report.warnings.append(
                f"{m}: {len(x)} rows exceed max_rows_conformity={config['max_rows_conformity']}, so the exact "
                "conformity was computed with the O(N d) unit-mean identity (the same numbers) instead of the pairwise sum"
            )

    # both modalities
    both = len(image) >= 2 and len(text) >= 2
    if both:
        gap = run("modality_gap", az.modality_gap, image, text, paired=False)
        if len(pair_img):
            cos = np.einsum("ij,ij->i", az._validation.unit_rows(pair_img), az._validation.unit_rows(pair_txt))
            gap = dataclasses.replace(gap, mean_matched_cosine=float(cos.mean()))
        report.modality_gap = gap
        report.separability = run(
            "separability",
            az.feature_separability,
            image,
            text,
            top_k=config["top_k_pairs"],
            cv_folds=config["cv_folds"],
            linear_cv=config["linear_cv"],
            seed=config["seed"],
        )
        if report.separability.linear_cv_skipped and config["linear_cv"]:
            report.skipped["separability.linear_cv_accuracy"] = report.separability.linear_cv_skipped
    else:
        reason = "needs at least 2 image rows and 2 text rows"
        report.skipped["modality_gap"] = reason
        report.skipped["separability"] = reason
    report.projection = run("pca", az.pca_projection, image if len(image) else None, text if len(text) else None)

    if len(pair_img) >= 2:
        report.centroid_shift = run(
            "centroid_shift",
            az.centroid_shift,
            pair_img,
            pair_txt,
            alphas,
            temperature,
            batch_size=config["batch_size"],
            kl_bins=config["kl_bins"],
        )
        report.alignment_uniformity = run(
            "alignment_uniformity",
            az.alignment_uniformity,
            pair_img,
            pair_txt,
            max_rows=config["uniformity_rows"],
            seed=config["seed"],
        )
        report.cosine_gradient = run(
            "cosine_gradient",
            az.cosine_gradient,
            pair_img,
            pair_txt,
            alphas,
            n_samples=config["gradient_samples"],
            seed=config["seed"],
        )
    else:
        reason = (
            "no matched image-text pairs in the store (text rows carry no image id)"
            if len(pair_img) == 0
            else "needs at least 2 matched pairs"
        )
        for name in ("centroid_shift", "alignment_uniformity", "cosine_gradient"):
            report.skipped[name] = reason

    # raw values of the features the figures draw
    chosen: list[int] = list(range(min(10, dim)))
    if report.separability is not None:
        chosen += [int(k) for k in report.separability.ranking[:10]]
        if report.separability.best_pair is not None:
            chosen += list(report.separability.best_pair)
    chosen = sorted(set(chosen))
    report.top_feature_values = {m: {k: x[:, k].copy() for k in chosen} for m, x in arrays.items()}
    return report


# -- report.md -------------------------------------------------------------------------------------


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
            "(9 for ViT-B/32, two of them 100 %)."
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
            add(
                "- The paper's ViT-B/32 features 93 and 134: rank "
                f"{int(ranks[93]) + 1} and {int(ranks[134]) + 1} here if 0-based, "
                f"{int(ranks[92]) + 1} and {int(ranks[133]) + 1} if 1-based (features 92 and 133)."
            )
    for m, res in report.thin_shell.items():
        if m == next(iter(report.thin_shell)):
            add("")
            add("### 3. Thin shell")
            add(
                "- **Theory**: centred norms concentrate at sqrt(tr C), with a small relative thickness "
                f"(paper, ViT-B/32 images: mean² {_PAPER['shell_mean_sq']} vs variance {_PAPER['shell_var']})."
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
                f"- **Paper**: ||m|| / ||σ|| = {_PAPER['offset_image']} (image), {_PAPER['offset_text']} (text): "
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
                f"(r = {_PAPER['conformity_r']})."
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
            f"(τ = {_f(cs.temperature)}, {cs.n_batches} batch(es) of {cs.batch_size} pairs)."
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
