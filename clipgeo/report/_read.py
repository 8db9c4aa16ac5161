"""Reading a report directory back into a :class:`~clipgeo.report.Report` of analyzer result objects.

The inverse of :mod:`._write`, with the same names (:mod:`._names`): figures are drawn from exactly what the
analysis wrote, and nothing is computed twice.  Every result field comes back (arrays to the 9 significant
digits of the tables); a column the files lack (a report written before it existed) comes back empty.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import analyzers as az
from ..errors import InputError
from . import _names as n
from ._rebuild import _build, _column, _nan_list
from ._result import Report


def read_report(directory: str | Path) -> Report:
    """Read a ``clipgeo analyze`` output directory back into analyzer results.

    Parameters
    ----------
    directory : path
        Holds ``report.json`` and the tables written by :meth:`Report.write`.

    Returns
    -------
    Report
        Rebuilt from the files; ``thin_shell_theory`` from ``thin_shell_theory.csv`` when present.

    Raises
    ------
    InputError
        No ``report.json``, or one that is not a clipgeo report.
    """
    import pandas as pd

    root = Path(directory)
    path = root / n.REPORT_JSON
    if not path.is_file():
        raise InputError(f"{root} has no {n.REPORT_JSON}; give a `clipgeo analyze` output directory or a store")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc.__class__.__name__}); rerun `clipgeo analyze`") from None
    if not isinstance(data, dict) or "dim" not in data or "n_image" not in data:
        raise InputError(f"{path} is not a clipgeo report (no dim / n_image); rerun `clipgeo analyze`")

    def table(name: str, **kwargs: Any):
        p = root / name
        return pd.read_csv(p, keep_default_na=False, na_values=[""], **kwargs) if p.is_file() else None

    features = table(n.FEATURES_CSV)
    rows = {m: table(n.rows_csv(m), dtype=dict.fromkeys(n.TEXT_COLUMNS, str)) for m in n.MODALITIES}
    prov = data.get(n.PROVENANCE) or {}
    report = Report(
        dim=int(data["dim"]),
        n_image=int(data["n_image"]),
        n_text=int(data["n_text"]),
        n_pairs=int(data.get("n_pairs") or 0),
        config=dict(prov.get(n.PROVENANCE_CONFIG) or {}),
        meta=dict(prov.get(n.PROVENANCE_STORE) or {}),
        skipped=dict(data.get("skipped") or {}),
        warnings=list(data.get("warnings") or []),
        timings={k: float(v) for k, v in (data.get("timings") or {}).items()},
        unit_norm={k: bool(v) for k, v in (data.get("unit_norm") or {}).items()},
        thin_shell_theory=table(n.THIN_SHELL_THEORY_CSV),
    )

    if data.get("modality_gap"):
        centroids = {c: _column(features, c) for c in n.GAP_CENTROID_COLUMNS if _column(features, c) is not None}
        report.modality_gap = _build(az.ModalityGapResult, data["modality_gap"], **centroids)
    sep = data.get("separability")
    if sep and features is not None and "threshold_accuracy" in features:
        rank = features[n.RANK].to_numpy(dtype=np.int64)
        best = sep.get("best_pair") or {}
        report.separability = _build(
            az.SeparabilityResult,
            {k: v for k, v in sep.items() if k not in ("features", "best_pair")},  # the scalar fields
            **{c: _column(features, c, np.int64 if c == "orientation" else np.float64) for c in n.SEPARABILITY_COLUMNS},
            ranking=np.argsort(rank, kind="stable"),
            mean_image=_column(features, n.mean_column("image")),
            mean_text=_column(features, n.mean_column("text")),
            std_image=_column(features, n.std_column("image")),
            std_text=_column(features, n.std_column("text")),
            best_pair=tuple(int(k) for k in best["features"]) if best.get("features") else None,
            best_pair_accuracy=best.get("accuracy"),
            best_pair_w=np.asarray(best["w"], dtype=np.float64) if best.get("w") is not None else None,
            best_pair_b=best.get("b"),
            best_pair_fisher=best.get("fisher_ratio"),
        )

    for m in n.MODALITIES:
        frame = rows[m]
        shell = (data.get("thin_shell") or {}).get(m)
        if shell:
            report.thin_shell[m] = _build(
                az.ThinShellResult,
                shell,
                norms=_column(frame, n.NORM),
                centered_norms=_column(frame, n.CENTERED_NORM),
                feature_variance=_column(features, n.variance_column(m)),
            )
        maha = (data.get("mahalanobis_shell") or {}).get(m)
        if maha:
            report.mahalanobis_shell[m] = _build(
                az.MahalanobisShellResult,
                maha,
                distances=_column(frame, n.MAHALANOBIS),
                distances_in_sample=_column(frame, n.MAHALANOBIS_IN_SAMPLE),
                centered_norms=_column(frame, n.CENTERED_NORM),
                centered_norms_held_out=_column(frame, n.CENTERED_NORM_HELD_OUT),
            )
        odd = (data.get("off_diagonal_dominance") or {}).get(m)
        if odd:
            cov_path = root / n.covariance_npy(m)
            per_feature = _column(features, n.odd_column(m))
            report.off_diagonal_dominance[m] = _build(
                az.OffDiagonalDominanceResult,
                odd,
                per_feature=per_feature if per_feature is not None else _nan_list(odd.get("per_feature", [])),
                covariance=np.load(cov_path) if cov_path.is_file() else np.empty((0, 0)),
            )
        offset = (data.get("ellipsoid_offset") or {}).get(m)
        if offset:
            report.ellipsoid_offset[m] = _build(
                az.EllipsoidOffsetResult,
                offset,
                mean=_column(features, n.mean_column(m)),
                std=_column(features, n.std_column(m)),
            )
        conf = (data.get("conformity") or {}).get(m)
        if conf:
            report.conformity[m] = _build(
                az.ConformityResult,
                conf,
                values=_column(frame, n.CONFORMITY),
                estimate=_column(frame, n.CONFORMITY_ESTIMATE),
                unit_estimate=_column(frame, n.CONFORMITY_UNIT_ESTIMATE),
            )
        if frame is not None:
            info: dict[str, np.ndarray] = {}
            for column, key in ((n.ID, "ids"), (n.PATH, "paths"), (n.CAPTION, "captions")):
                if column in frame:
                    info[key] = frame[column].fillna("").to_numpy(dtype=object)
            if n.IMAGE_ROW in frame:
                info["image_row"] = frame[n.IMAGE_ROW].to_numpy(dtype=np.int64)
            report.rows[m] = info
            feats = {
                int(c[len(n.FEATURE_PREFIX) :]): frame[c].to_numpy(np.float64)
                for c in frame
                if c.startswith(n.FEATURE_PREFIX)
            }
            if feats:
                report.top_feature_values[m] = feats

    shift = data.get("centroid_shift")
    frame = table(n.CENTROID_SHIFT_CSV)
    if shift and frame is not None:  # the table's columns are the result's array fields
        report.centroid_shift = _build(az.CentroidShiftResult, shift, **{c: frame[c].to_numpy(np.float64) for c in frame})
    if data.get("alignment_uniformity"):
        report.alignment_uniformity = _build(az.AlignmentUniformityResult, data["alignment_uniformity"])
    grad = data.get("cosine_gradient")
    frame = table(n.COSINE_GRADIENT_CSV)
    if grad and frame is not None:
        cols = {c: frame[c].to_numpy(np.int64 if c == n.ROW else np.float64) for c in frame}
        report.cosine_gradient = _build(az.CosineGradientResult, grad, **cols)
    pca = data.get(n.PCA)
    if pca:
        coords = {}
        for m in n.MODALITIES:
            frame = rows[m]
            pcs = []
            if frame is not None:
                pcs = [c for c in frame if c.startswith(n.PC_PREFIX) and c[len(n.PC_PREFIX) :].isdigit()]
                pcs.sort(key=lambda c: int(c[len(n.PC_PREFIX) :]))
            coords[m] = frame[pcs].to_numpy(np.float64) if pcs else np.empty((0, int(pca.get("n_components", 2))))
        axes = {}
        if features is not None and n.PCA_CENTER in features:
            count = int(pca.get("n_components", 2))
            axes["center"] = _column(features, n.PCA_CENTER)
            axes["components"] = np.stack([_column(features, n.pca_component_column(j)) for j in range(count)])
        report.projection = _build(az.ProjectionResult, pca, image=coords["image"], text=coords["text"], **axes)
    from ._beyond import read as read_beyond

    read_beyond(report, root, data)  # SPEC §12 results
    return report
