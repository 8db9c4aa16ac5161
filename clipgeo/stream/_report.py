"""Merged streaming statistics -> the same :class:`~clipgeo.report.Report` as the in-memory analysis.

How each part of report.json is obtained (also written under ``streaming.methods``):

==========================  =========================================================================
exact, from the moments     modality gap (centroids, cones, matched cosine), thin shell (norm and
                            centred-norm moments, sqrt(tr C), diag C), off-diagonal dominance and the
                            covariance, ellipsoid offset, conformity (mean, r / slope / intercept
                            against both estimates: the unit-sum identity over every row), d',
                            per-feature means and stds, the PCA basis, the conformity extremes
histograms (bounded)        threshold accuracy and AUC per feature; each feature's error bound is in
                            ``features.csv`` and the largest in ``streaming.histogram``
the seeded sample           best pair (searched among the top features of the streamed ranking),
                            linear CV, Mahalanobis shells, centroid shift, Wang–Isola metrics, cosine
                            gradient, and every analysis :func:`clipgeo.report.analyze` adds that
                            needs rows together; per-row arrays (rows_*.csv) are the sample's rows
==========================  =========================================================================

The sample analyses are :func:`clipgeo.report.analyze` itself, run on the sample; the exact results then
replace the sample's where the moments give them.  The result objects are the analyzers' own classes.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from .. import analyzers as az
from ..analyzers._blocks import row_blocks, row_norms
from ..store import EmbeddingSet
from ._engine import StoreStatistics
from ._histogram import histogram_separability
from ._moments import ModalityMoments, conformity_terms

MODALITIES = ("image", "text")
UNIT_TOLERANCE = 1e-2


def _replace(result: Any, **fields: Any) -> Any:
    """``dataclasses.replace`` with only the fields the result class has (analyzers gain fields over time)."""
    names = {f.name for f in dataclasses.fields(result)}
    return dataclasses.replace(result, **{k: v for k, v in fields.items() if k in names})


_EXACT_CLASSES: dict[type, type] = {}


def _with_exact_summary(result: Any, values: dict[str, Any]) -> Any:
    """``result`` whose ``to_dict()`` reports ``values`` (exact, streamed) in place of the same keys computed
    from its per-row arrays (which hold only the sample's rows)."""
    cls = type(result)
    sub = _EXACT_CLASSES.get(cls)
    if sub is None:

        @dataclasses.dataclass(frozen=True, repr=False)
        class Exact(cls):  # type: ignore[valid-type, misc]
            exact_summary: dict = dataclasses.field(default_factory=dict)

            def _summary(self) -> dict[str, Any]:
                out = super()._summary()
                out.pop("exact_summary", None)
                out.update({k: v for k, v in self.exact_summary.items() if k in out})
                return out

        Exact.__name__ = Exact.__qualname__ = cls.__name__
        sub = _EXACT_CLASSES[cls] = Exact
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return sub(**fields, exact_summary=values)


def sample_set(stats: StoreStatistics) -> tuple[EmbeddingSet, dict[str, np.ndarray]]:
    """The sample as an :class:`EmbeddingSet` (float32) and each sampled row's global row index per modality.

    The sampled embeddings move: they are taken out of ``stats.second`` (store dtype) as they are converted,
    so the sample is never held in both dtypes at once.
    """
    meta = stats.store.meta
    dim = meta.dim
    empty = np.empty((0, dim), np.float32)
    if stats.sample_kind == "pairs":
        s = stats.second.pair_sample
        img_rows, first_at, inverse = np.unique(s.arrays["image_row"], return_index=True, return_inverse=True)
        # the store-dtype rows are let go as they are converted (the sample set holds float32 copies)
        image = s.arrays.pop("image")[first_at].astype(np.float32)
        text = s.arrays.pop("text").astype(np.float32)
        link = inverse.reshape(-1).astype(np.int64)
        rows = {"image": img_rows, "text": s.arrays["text_row"]}
        ids = {"image": s.arrays["image_id"][first_at], "text": s.arrays["text_id"]}
        labels = {"image": s.arrays["path"][first_at], "text": s.arrays["caption"]}
    else:
        parts = {m: stats.second.samples.get(m) for m in MODALITIES}
        image = parts["image"].arrays.pop("x").astype(np.float32) if parts["image"] is not None else empty
        text = parts["text"].arrays.pop("x").astype(np.float32) if parts["text"] is not None else empty
        link = np.full(len(text), -1, dtype=np.int64)
        rows = {m: (p.arrays["row"] if p is not None else np.empty(0, np.int64)) for m, p in parts.items()}
        ids = {m: (p.arrays["id"] if p is not None else np.empty(0, object)) for m, p in parts.items()}
        labels = {m: (p.arrays["label"] if p is not None else np.empty(0, object)) for m, p in parts.items()}

    def strings(values: np.ndarray) -> np.ndarray:
        return np.array(["" if v is None else str(v) for v in values], dtype=object)

    es = EmbeddingSet(
        image=image, text=text,
        image_ids=np.asarray(ids["image"]).astype(str), text_ids=np.asarray(ids["text"]).astype(str),
        image_paths=strings(labels["image"]), captions=strings(labels["text"]),
        text_image_index=link, meta=meta,
    )
    return es, rows


def _thin_shell(first: ModalityMoments, centred, x: np.ndarray) -> az.ThinShellResult:
    variance = first.variance
    mean_c, std_c = centred.centered_norm.mean, centred.centered_norm.std
    return az.ThinShellResult(
        n=first.n, dim=first.dim,
        mean_norm=first.norm.mean, std_norm=first.norm.std,
        mean_centered_norm=mean_c, std_centered_norm=std_c,
        sqrt_trace_cov=float(np.sqrt(variance.sum())),
        relative_thickness=std_c / mean_c if mean_c > 0 else float("nan"),
        squared_mean_centered_norm=mean_c**2, var_centered_norm=std_c**2,
        mean_feature_variance=float(variance.mean()),
        norms=row_norms(x), centered_norms=row_norms(x, first.mean),  # the sample's rows, in row blocks
        feature_variance=variance,
    )


def _odd(first: ModalityMoments) -> az.OffDiagonalDominanceResult:
    cov = first.covariance
    diag = np.abs(np.diag(cov))
    off = np.abs(cov).sum(axis=1) - diag
    with np.errstate(divide="ignore", invalid="ignore"):
        odd = off / diag
    return az.OffDiagonalDominanceResult(dim=first.dim, median=float(np.median(odd)),
                                         fraction_above_1=float((odd > 1).mean()), per_feature=odd, covariance=cov)


def _offset(first: ModalityMoments) -> az.EllipsoidOffsetResult:
    m, s = first.mean, np.sqrt(first.variance)
    mean_norm, std_norm = float(np.linalg.norm(m)), float(np.linalg.norm(s))
    return az.EllipsoidOffsetResult(dim=first.dim, ratio=mean_norm / std_norm if std_norm > 0 else float("inf"),
                                    mean_norm=mean_norm, std_norm=std_norm,
                                    fraction_mean_above_std=float((np.abs(m) > s).mean()), mean=m, std=s)


def _conformity(first: ModalityMoments, centred, x: np.ndarray, sample_result) -> az.ConformityResult:
    r, a, b = centred.conformity_raw.fit()
    ur, ua, ub = centred.conformity_unit.fit()
    terms = [conformity_terms(x[b], first) for b in row_blocks(len(x))]  # float64 a block at a time
    values, est_raw, est_unit = (np.concatenate([t[i] for t in terms]) if terms else np.empty(0) for i in range(3))
    mean = centred.conformity_raw.mean_y
    result = _replace(sample_result, n=first.n, method="mean", mean=mean, pearson=r, slope=a, intercept=b,
                      unit_pearson=ur, unit_slope=ua, unit_intercept=ub, values=values, estimate=est_raw,
                      unit_estimate=est_unit)
    mean_unit = centred.conformity_unit.mean_x
    exact = {"mean_estimate_raw": centred.conformity_raw.mean_x, "mean_estimate_unit": mean_unit}
    if mean:
        exact["estimate_unit_excess"] = mean_unit / mean - 1.0
    return _with_exact_summary(result, exact)


def _gap(stats: StoreStatistics, sample_result) -> az.ModalityGapResult:
    fi, ft = stats.first["image"], stats.first["text"]
    pairs = stats.second.pairs
    return _replace(
        sample_result,
        l2_centroid_distance=float(np.linalg.norm(fi.unit_mean - ft.unit_mean)),
        raw_centroid_distance=float(np.linalg.norm(fi.mean - ft.mean)),
        mean_matched_cosine=pairs.cosine / pairs.n if pairs.n else None,
        image_cone=fi.cone, text_cone=ft.cone, n_image=fi.n, n_text=ft.n,
        unit_centroid_image=fi.unit_mean, unit_centroid_text=ft.unit_mean,
        raw_centroid_image=fi.mean, raw_centroid_text=ft.mean,
    )


def _separability(stats: StoreStatistics, sample: EmbeddingSet, sample_result, top_k: int):
    """Per-feature numbers from the histograms and moments; the best pair from the sample, among the top features."""
    fi, ft = stats.first["image"], stats.first["text"]
    h = histogram_separability(stats.second.histograms["image"], stats.second.histograms["text"])
    # a feature whose value ranges do not overlap separates 100 % exactly (the first pass knows min / max)
    perfect = (fi.maximum < ft.minimum) | (ft.maximum < fi.minimum)
    if perfect.any():
        h = dataclasses.replace(
            h,
            threshold_accuracy=np.where(perfect, 1.0, h.threshold_accuracy),
            accuracy_bound=np.where(perfect, 0.0, h.accuracy_bound),
            threshold=np.where(perfect, np.where(fi.maximum < ft.minimum, (fi.maximum + ft.minimum) / 2,
                                                 (ft.maximum + fi.minimum) / 2), h.threshold),
            orientation=np.where(perfect, np.where(fi.maximum < ft.minimum, -1, 1), h.orientation),
            auc=np.where(perfect, np.where(fi.maximum < ft.minimum, 0.0, 1.0), h.auc),
            auc_bound=np.where(perfect, 0.0, h.auc_bound),
        )
    var_i, var_t = fi.variance, ft.variance
    with np.errstate(divide="ignore", invalid="ignore"):
        dprime = (fi.mean - ft.mean) / np.sqrt((var_i + var_t) / 2)
    d = fi.dim
    abs_d = np.nan_to_num(np.abs(dprime), nan=-1.0, posinf=np.inf)
    ranking = np.lexsort((np.arange(d), -abs_d, -h.threshold_accuracy))
    top = ranking[: max(2, min(top_k, d))]
    pair = {}
    if len(sample.image) >= 2 and len(sample.text) >= 2:
        sub = az.feature_separability(sample.image[:, top], sample.text[:, top], top_k=len(top), linear_cv=False)
        if sub.best_pair is not None:
            pair = {"best_pair": (int(top[sub.best_pair[0]]), int(top[sub.best_pair[1]])),
                    "best_pair_accuracy": sub.best_pair_accuracy, "best_pair_w": sub.best_pair_w,
                    "best_pair_b": sub.best_pair_b}
            for name in ("best_pair_fisher", "best_pair_ties"):
                if hasattr(sub, name):
                    pair[name] = getattr(sub, name)
    result = _replace(sample_result, threshold_accuracy=h.threshold_accuracy, threshold=h.threshold,
                      orientation=h.orientation, auc=h.auc, dprime=dprime, ranking=ranking, mean_image=fi.mean,
                      mean_text=ft.mean, std_image=np.sqrt(var_i), std_text=np.sqrt(var_t), **pair)
    return result, h


def _projection(stats: StoreStatistics, sample: EmbeddingSet, n_components: int = 2) -> az.ProjectionResult:
    """The pooled-covariance PCA basis (exact) and the sample's coordinates in it (as :func:`pca_projection`)."""
    from ..analyzers._threads import single_blas_thread

    moms = [stats.first[m] for m in MODALITIES if m in stats.first]
    total = moms[0]
    for mom in moms[1:]:
        total = total.merge(mom)  # the pooled rows' mean and scatter
    with single_blas_thread():
        values, vectors = np.linalg.eigh(total.scatter)
    order = np.argsort(values)[::-1][: min(n_components, total.dim)]
    comps = vectors[:, order].T
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
    tot = float(values.clip(min=0).sum())
    ratio = values[order].clip(min=0) / tot if tot > 0 else np.zeros(len(order))
    center = total.mean

    def project(x: np.ndarray) -> np.ndarray:
        out = np.empty((len(x), len(comps)))
        for b in row_blocks(len(x)):
            out[b] = (np.asarray(x[b], np.float64) - center) @ comps.T
        return out

    return az.ProjectionResult(n_components=len(comps), explained_variance_ratio=ratio, components=comps,
                               center=center, image=project(sample.image), text=project(sample.text))


def _beyond(stats: StoreStatistics, beyond: Any) -> None:
    """The SPEC §12 results the moments give exactly: gap metrics and spectra (the rest stay on the sample)."""
    from ..analyzers._gap_metrics import rmg_from_cosines
    from ..analyzers._threads import single_blas_thread

    first, pairs = stats.first, stats.second.pairs
    gm = getattr(beyond, "gap_metrics", None)
    if gm is not None and pairs.n and "image" in first and "text" in first:
        fi, ft = first["image"], first["text"]
        matched = pairs.cosine / pairs.n
        rmg, d_m, d_i, d_t = rmg_from_cosines(matched, fi.cone, ft.cone)
        exact = dict(l2m=float(np.linalg.norm(fi.unit_mean - ft.unit_mean)), l2i=pairs.distance / pairs.n, rmg=rmg,
                     d_m=d_m, d_i=d_i, d_t=d_t, d_m_floored=bool((1.0 - matched) / 2.0 < 1e-3),
                     mean_matched_cosine=matched, n_pairs=pairs.n, n_image=fi.n, n_text=ft.n)
        beyond.gap_metrics = _replace(gm, **exact)
    spectra = getattr(beyond, "spectrum", None)
    if isinstance(spectra, dict):
        for m, res in list(spectra.items()):
            if m not in first:
                continue
            with single_blas_thread():
                lam = np.clip(np.linalg.eigvalsh(first[m].covariance)[::-1], 0.0, None)
            summary = az.spectrum_summary(lam)
            spectra[m] = _replace(res, n=first[m].n, eigenvalues=lam,
                                  top_share=float(lam[0] / lam.sum()) if lam.sum() > 0 else 0.0, **summary)


def build_report(stats: StoreStatistics, config=None, **options: Any):
    """The :class:`~clipgeo.report.Report` of a streamed analysis (see the module notes).

    Parameters
    ----------
    stats : StoreStatistics
        From :func:`clipgeo.stream.collect_statistics`.
    config : AnalyzeConfig, optional
        Options of the analyses (those run on the sample use them as :func:`clipgeo.report.analyze` does).

    Returns
    -------
    StreamReport
    """
    from ..report import AnalyzeConfig, analyze
    from ._result import StreamReport

    cfg = AnalyzeConfig.from_options(config, **options)
    sample, sample_rows = sample_set(stats)  # takes the store-dtype rows out of stats.second as it converts them
    start = time.perf_counter()
    # conformity on the sample through the O(N d) identity: it is replaced by the exact streamed one anyway
    base = analyze(sample, dataclasses.replace(cfg, conformity="mean"))
    sample_seconds = time.perf_counter() - start
    first, second = stats.first, stats.second
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    report = StreamReport(**fields)
    report.n_image = first["image"].n if "image" in first else 0
    report.n_text = first["text"].n if "text" in first else 0
    report.n_pairs = stats.n_pairs
    report.meta = stats.store.meta.to_dict()
    report.warnings = [w for w in report.warnings if "max_rows_conformity" not in w]

    arrays = {"image": sample.image, "text": sample.text}
    per_modality_sample = {}
    for m in MODALITIES:
        if m not in first or first[m].n < 2:
            continue
        mom, cen = first[m], second.centred[m]
        x = arrays[m]
        report.unit_norm[m] = bool(mom.norm_min > 1 - UNIT_TOLERANCE and mom.norm_max < 1 + UNIT_TOLERANCE)
        report.thin_shell[m] = _thin_shell(mom, cen, x)
        report.off_diagonal_dominance[m] = _odd(mom)
        report.ellipsoid_offset[m] = _offset(mom)
        if m in report.conformity:
            report.conformity[m] = _conformity(mom, cen, x, report.conformity[m])
        per_modality_sample[m] = len(x)
    hist = None
    if report.modality_gap is not None and "image" in first and "text" in first:
        report.modality_gap = _gap(stats, report.modality_gap)
    if report.separability is not None:
        report.separability, hist = _separability(stats, sample, report.separability, cfg.top_k_pairs)
    if report.projection is not None:
        report.projection = _projection(stats, sample)
    beyond = getattr(report, "beyond", None)
    if beyond is not None:
        _beyond(stats, beyond)

    for m in MODALITIES:  # the sampled rows keep their ids, captions / paths; "row" is their global index
        if m in report.rows:
            report.rows[m]["row"] = sample_rows[m]
    report.stream_extremes = {m: e for m, e in second.extremes.items()}
    report.streaming = {
        "engine": "dask.distributed",
        "workers": stats.workers,
        "passes": 2,
        "sample": {
            "kind": stats.sample_kind,
            "requested": stats.config.sample_size,
            "pairs": len(second.pair_sample) if stats.sample_kind == "pairs" else 0,
            "rows": per_modality_sample,
            "seed": stats.config.seed,
            "draw": "the rows with the smallest splitmix64(seed, row index) keys: uniform without replacement",
            "seconds": round(sample_seconds, 3),
        },
        "histogram": None if hist is None else {
            "bins": stats.config.bins,
            "grid": "per feature, equal bins between the pooled minimum and maximum of the first pass",
            "threshold_accuracy_max_error": float(hist.accuracy_bound.max()),
            "threshold_accuracy_error": "0 <= exact - streamed <= bound (the streamed value is a lower bound)",
            "auc_max_error": float(hist.auc_bound.max()),
            "auc_error": "|exact - streamed| <= bound",
        },
        "methods": {
            "exact": ["modality_gap", "thin_shell", "off_diagonal_dominance", "ellipsoid_offset",
                      "conformity (summary; per-row values in rows_*.csv for the sampled rows)",
                      "separability.dprime", "pca basis", "conformity_extremes"],
            "histogram": ["separability.threshold_accuracy", "separability.auc"],
            "sample": ["separability.best_pair", "separability.linear_cv_accuracy", "mahalanobis_shell",
                       "centroid_shift", "alignment_uniformity", "cosine_gradient",
                       "and any other analysis that needs rows together"],
        },
    }
    report.histogram_bounds = hist
    report.timings = {**stats.info.get("seconds", {}), **report.timings}
    return report
