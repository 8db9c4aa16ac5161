"""Writing a report directory: report.json, report.md and the tables, every file atomically.

Nothing here computes a measurement: each number comes from a :class:`~clipgeo.report.Report` field, and the
names come from :mod:`._names` (the reader, :mod:`._read`, uses the same ones).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_path, to_jsonable, write_json, write_text
from ..errors import InputError
from ..provenance import provenance as make_provenance
from . import _names as n
from ._markdown import render_markdown

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ._result import Report


def summary(report: Report) -> dict[str, Any]:
    """The body of ``report.json`` (without provenance and file list): plain JSON values."""

    def maybe(result: Any) -> Any:
        return None if result is None else result.to_dict()

    out: dict[str, Any] = {
        "dim": report.dim,
        "n_image": report.n_image,
        "n_text": report.n_text,
        "n_pairs": report.n_pairs,
        "model": report.meta.get("model_id", report.meta.get("model")),
        "unit_norm": dict(report.unit_norm),
        "modality_gap": maybe(report.modality_gap),
        "separability": maybe(report.separability),
    }
    for name in n.PER_MODALITY:
        out[name] = {m: r.to_dict() for m, r in getattr(report, name).items()}
    out["centroid_shift"] = maybe(report.centroid_shift)
    out["alignment_uniformity"] = maybe(report.alignment_uniformity)
    out["cosine_gradient"] = maybe(report.cosine_gradient)
    out[n.PCA] = maybe(report.projection)
    out[n.CONFORMITY_EXTREMES] = report.extremes()
    out[n.FIGURE_FEATURES] = sorted({int(k) for values in report.top_feature_values.values() for k in values})
    from ._beyond import summary as beyond_summary

    beyond_summary(report, out)  # SPEC §12 keys, and a "bootstrap" interval beside each headline
    out["skipped"] = dict(report.skipped)
    out["warnings"] = list(report.warnings)
    out["timings"] = {k: round(v, 4) for k, v in report.timings.items()}
    return to_jsonable(out)


def features_table(report: Report) -> pd.DataFrame:
    """``features.csv``: one row per feature (0-based), separability + per-modality statistics."""
    import pandas as pd

    if report.separability is not None:
        frame = report.separability.to_frame()  # feature, rank, SEPARABILITY_COLUMNS, mean_/std_<modality>
    else:
        frame = pd.DataFrame({n.FEATURE: np.arange(report.dim)})
    for m in n.MODALITIES:
        if m in report.ellipsoid_offset:
            res = report.ellipsoid_offset[m]
            if n.mean_column(m) not in frame:
                frame[n.mean_column(m)] = res.mean
                frame[n.std_column(m)] = res.std
            frame[n.abs_mean_column(m)] = np.abs(res.mean)
        if m in report.thin_shell:
            frame[n.variance_column(m)] = report.thin_shell[m].feature_variance
        if m in report.off_diagonal_dominance:
            frame[n.odd_column(m)] = report.off_diagonal_dominance[m].per_feature
    if report.modality_gap is not None:
        for column in n.GAP_CENTROID_COLUMNS:
            frame[column] = getattr(report.modality_gap, column)
    pca = report.projection
    if pca is not None and len(pca.center) == report.dim:
        frame[n.PCA_CENTER] = pca.center
        for j, axis in enumerate(pca.components):
            frame[n.pca_component_column(j)] = axis
    return frame


def rows_table(report: Report, modality: str) -> pd.DataFrame:
    """``rows_<modality>.csv``: one row per embedding row of that modality."""
    import pandas as pd

    rows = report.n_image if modality == "image" else report.n_text
    info = report.rows.get(modality, {})
    frame = pd.DataFrame({n.ROW: np.arange(rows)})
    if "ids" in info:
        frame[n.ID] = info["ids"]
    if modality == "image" and "paths" in info:
        frame[n.PATH] = info["paths"]
    if modality == "text":
        if "image_row" in info:
            frame[n.IMAGE_ROW] = info["image_row"]
        if "captions" in info:
            frame[n.CAPTION] = info["captions"]
    if modality in report.thin_shell:
        frame[n.NORM] = report.thin_shell[modality].norms
        frame[n.CENTERED_NORM] = report.thin_shell[modality].centered_norms
    if modality in report.mahalanobis_shell:
        maha = report.mahalanobis_shell[modality]
        frame[n.MAHALANOBIS] = maha.distances
        frame[n.MAHALANOBIS_IN_SAMPLE] = maha.distances_in_sample
        frame[n.CENTERED_NORM_HELD_OUT] = maha.centered_norms_held_out
    if modality in report.conformity:
        c = report.conformity[modality]
        frame[n.CONFORMITY] = c.values
        frame[n.CONFORMITY_ESTIMATE] = c.estimate
        frame[n.CONFORMITY_UNIT_ESTIMATE] = c.unit_estimate
    if report.projection is not None:
        coords = getattr(report.projection, modality)
        if len(coords) == rows:
            for j in range(coords.shape[1]):
                frame[n.pc_column(j)] = coords[:, j]
    for k, values in sorted(report.top_feature_values.get(modality, {}).items()):
        frame[n.feature_column(k)] = values
    return frame


def write_report(
    report: Report, out_dir: str | Path, *, provenance: dict[str, Any] | None = None, html: bool = False
) -> dict[str, Path]:
    """Write ``report`` into ``out_dir``; returns the files written, by name (see :meth:`Report.write`).

    ``html=True`` also writes ``report.html`` (:func:`clipgeo.report.write_html`, figures drawn from ``report``).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"out='{out}' is a file; give a directory for the report")
    out.mkdir(parents=True, exist_ok=True)
    from ._beyond import OUTPUT_FILES as beyond_files

    for name in (*n.OUTPUT_FILES, *beyond_files):  # a previous report's tables must not outlive it
        (out / name).unlink(missing_ok=True)
    files: dict[str, Path] = {}

    def csv(name: str, frame: pd.DataFrame) -> None:
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False, float_format=n.CSV_FLOAT_FORMAT)
        files[name] = out / name

    csv(n.FEATURES_CSV, features_table(report))
    for m in n.MODALITIES:
        if (report.n_image if m == "image" else report.n_text) > 0:
            csv(n.rows_csv(m), rows_table(report, m))
        if m in report.off_diagonal_dominance:
            path = out / n.covariance_npy(m)
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, report.off_diagonal_dominance[m].covariance)
            files[path.name] = path
    if report.centroid_shift is not None:
        csv(n.CENTROID_SHIFT_CSV, report.centroid_shift.to_frame())
    if report.cosine_gradient is not None:
        csv(n.COSINE_GRADIENT_CSV, report.cosine_gradient.to_frame())
    if report.thin_shell_theory is not None:
        csv(n.THIN_SHELL_THEORY_CSV, report.thin_shell_theory)
    from ._beyond import tables as beyond_tables

    for name, frame in beyond_tables(report).items():  # SPEC §12: pairs, spectrum, whitening, bootstrap
        csv(name, frame)

    data = summary(report)
    prov = dict(provenance) if provenance is not None else make_provenance(report.config)
    prov.setdefault(n.PROVENANCE_CONFIG, report.config)
    data[n.PROVENANCE] = {n.PROVENANCE_STORE: report.meta, **prov}
    data[n.FILES] = sorted([*files, n.REPORT_JSON, n.REPORT_MD, *([n.REPORT_HTML] if html else [])])
    files[n.REPORT_MD] = write_text(out / n.REPORT_MD, render_markdown(report, data))
    files[n.REPORT_JSON] = write_json(out / n.REPORT_JSON, data, indent=2)
    if html:
        from ._html import write_html

        files[n.REPORT_HTML] = write_html([out], reports=[report]).path
    return files
