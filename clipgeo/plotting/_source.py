"""Where figures get their numbers: a store (analyzed here) or a ``clipgeo analyze`` output directory.

:func:`read_report` turns the files :meth:`clipgeo.report.Report.write` produces
(``report.json``, ``features.csv``, ``rows_*.csv``, ``covariance_*.npy``,
``centroid_shift.csv``, ``cosine_gradient.csv``, ``thin_shell_theory.csv``) back
into a :class:`~clipgeo.report.Report` holding the analyzer result objects, so
the figures are drawn from exactly what the analysis wrote and nothing is
computed twice.  Arrays that the files do not carry (centroid vectors, PCA
axes) are left empty; no figure draws them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._registry import FigureInput

MODALITIES = ("image", "text")


def _build(cls: type, summary: dict[str, Any] | None, **arrays: Any) -> Any:
    """An analyzer result of type ``cls`` from its JSON summary plus the arrays read from the tables.

    Fields found in neither are set to None (arrays: an empty array).
    """
    summary = summary or {}
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in arrays:
            kwargs[f.name] = arrays[f.name]
        elif f.name in summary:
            value = summary[f.name]
            kwargs[f.name] = np.asarray(value, dtype=np.float64) if isinstance(value, list) else value
        elif f.name in getattr(cls, "_arrays", ()):
            kwargs[f.name] = np.empty(0)
        elif f.default is not dataclasses.MISSING:
            kwargs[f.name] = f.default
        else:
            kwargs[f.name] = None
    return cls(**kwargs)


def _column(frame: Any, name: str, dtype: type = np.float64) -> np.ndarray | None:
    if frame is None or name not in frame:
        return None
    return frame[name].to_numpy(dtype=dtype)


def _nan_list(values: Any) -> np.ndarray:
    """A JSON list (None for non-finite values) as a float64 array with nan."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def read_report(directory: str | Path) -> FigureInput:
    """Read a ``clipgeo analyze`` output directory back into analyzer results.

    Parameters
    ----------
    directory : path
        Holds ``report.json`` and the tables written by :meth:`Report.write`.

    Returns
    -------
    FigureInput
        ``report`` rebuilt from the files, ``theory`` from ``thin_shell_theory.csv`` when present.

    Raises
    ------
    InputError
        No ``report.json``, or one that is not a clipgeo report.
    """
    import pandas as pd

    from .. import analyzers as az
    from ..report import Report

    root = Path(directory)
    path = root / "report.json"
    if not path.is_file():
        raise InputError(f"{root} has no report.json; give a `clipgeo analyze` output directory or a store")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc.__class__.__name__}); rerun `clipgeo analyze`") from None
    if not isinstance(data, dict) or "dim" not in data or "n_image" not in data:
        raise InputError(f"{path} is not a clipgeo report (no dim / n_image); rerun `clipgeo analyze`")

    def table(name: str, **kwargs: Any):
        p = root / name
        return pd.read_csv(p, keep_default_na=False, na_values=[""], **kwargs) if p.is_file() else None

    text_cols = {"id": str, "path": str, "caption": str}
    features = table("features.csv")
    rows = {m: table(f"rows_{m}.csv", dtype=text_cols) for m in MODALITIES}
    prov = data.get("provenance") or {}
    report = Report(
        dim=int(data["dim"]),
        n_image=int(data["n_image"]),
        n_text=int(data["n_text"]),
        n_pairs=int(data.get("n_pairs") or 0),
        config=dict(prov.get("config") or {}),
        meta=dict(prov.get("store") or {}),
        skipped=dict(data.get("skipped") or {}),
        warnings=list(data.get("warnings") or []),
        unit_norm={k: bool(v) for k, v in (data.get("unit_norm") or {}).items()},
    )

    if data.get("modality_gap"):
        report.modality_gap = _build(az.ModalityGapResult, data["modality_gap"])
    sep = data.get("separability")
    if sep and features is not None and "threshold_accuracy" in features:
        rank = features["rank"].to_numpy(dtype=np.int64)
        best = sep.get("best_pair") or {}
        report.separability = _build(
            az.SeparabilityResult,
            {"linear_cv_accuracy": sep.get("linear_cv_accuracy"), "linear_cv_skipped": sep.get("linear_cv_skipped")},
            threshold_accuracy=_column(features, "threshold_accuracy"),
            threshold=_column(features, "threshold"),
            orientation=_column(features, "orientation", np.int64),
            auc=_column(features, "auc"),
            dprime=_column(features, "dprime"),
            ranking=np.argsort(rank, kind="stable"),
            mean_image=_column(features, "mean_image"),
            mean_text=_column(features, "mean_text"),
            std_image=_column(features, "std_image"),
            std_text=_column(features, "std_text"),
            best_pair=tuple(int(k) for k in best["features"]) if best.get("features") else None,
            best_pair_accuracy=best.get("accuracy"),
            best_pair_w=np.asarray(best["w"], dtype=np.float64) if best.get("w") is not None else None,
            best_pair_b=best.get("b"),
        )

    for m in MODALITIES:
        frame = rows[m]
        shell = (data.get("thin_shell") or {}).get(m)
        if shell:
            report.thin_shell[m] = _build(
                az.ThinShellResult,
                shell,
                norms=_column(frame, "norm"),
                centered_norms=_column(frame, "centered_norm"),
                feature_variance=_column(features, f"var_{m}"),
            )
        maha = (data.get("mahalanobis_shell") or {}).get(m)
        if maha:
            report.mahalanobis_shell[m] = _build(
                az.MahalanobisShellResult,
                maha,
                distances=_column(frame, "mahalanobis"),
                centered_norms=_column(frame, "centered_norm"),
            )
        odd = (data.get("off_diagonal_dominance") or {}).get(m)
        if odd:
            cov_path = root / f"covariance_{m}.npy"
            per_feature = _column(features, f"odd_{m}")
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
                mean=_column(features, f"mean_{m}"),
                std=_column(features, f"std_{m}"),
            )
        conf = (data.get("conformity") or {}).get(m)
        if conf:
            report.conformity[m] = _build(
                az.ConformityResult,
                conf,
                values=_column(frame, "conformity"),
                estimate=_column(frame, "conformity_estimate"),
                unit_estimate=_column(frame, "conformity_unit_estimate"),
            )
        if frame is not None:
            info: dict[str, np.ndarray] = {}
            if "id" in frame:
                info["ids"] = frame["id"].fillna("").to_numpy(dtype=object)
            if "path" in frame:
                info["paths"] = frame["path"].fillna("").to_numpy(dtype=object)
            if "caption" in frame:
                info["captions"] = frame["caption"].fillna("").to_numpy(dtype=object)
            if "image_row" in frame:
                info["image_row"] = frame["image_row"].to_numpy(dtype=np.int64)
            report.rows[m] = info
            feats = {int(c.split("_", 1)[1]): frame[c].to_numpy(np.float64) for c in frame if c.startswith("feature_")}
            if feats:
                report.top_feature_values[m] = feats

    shift = data.get("centroid_shift")
    frame = table("centroid_shift.csv")
    if shift and frame is not None:
        report.centroid_shift = _build(
            az.CentroidShiftResult,
            shift,
            **{c: frame[c].to_numpy(np.float64) for c in frame},
        )
    if data.get("alignment_uniformity"):
        report.alignment_uniformity = _build(az.AlignmentUniformityResult, data["alignment_uniformity"])
    grad = data.get("cosine_gradient")
    frame = table("cosine_gradient.csv")
    if grad and frame is not None:
        cols = {c: frame[c].to_numpy(np.int64 if c == "row" else np.float64) for c in frame}
        report.cosine_gradient = _build(az.CosineGradientResult, grad, **cols)
    pca = data.get("pca")
    if pca:
        coords = {}
        for m in MODALITIES:
            frame = rows[m]
            pcs = sorted((c for c in frame if c.startswith("pc")), key=lambda c: int(c[2:])) if frame is not None else []
            coords[m] = frame[pcs].to_numpy(np.float64) if pcs else np.empty((0, int(pca.get("n_components", 2))))
        report.projection = _build(az.ProjectionResult, pca, image=coords["image"], text=coords["text"])

    theory = table("thin_shell_theory.csv")
    return FigureInput(report=report, theory=theory, origin=str(root))


def load_source(source: Any) -> FigureInput:
    """The analyzer results behind the figures, from whatever the user has.

    Parameters
    ----------
    source : path, Report, EmbeddingSet or FigureInput
        A store directory (read and analyzed with :func:`clipgeo.report.analyze`),
        a ``clipgeo analyze`` output directory or its ``report.json`` (read back,
        nothing recomputed), a :class:`~clipgeo.report.Report`, or an embedding set.

    Raises
    ------
    InputError, StoreError
        A missing path, a directory that is neither, an empty store.
    """
    from ..report import Report, analyze

    if isinstance(source, FigureInput):
        return source
    if isinstance(source, Report):
        return FigureInput(report=source, origin="Report")
    if hasattr(source, "image") and hasattr(source, "text"):
        return FigureInput(report=analyze(source), origin=repr(source))
    if not isinstance(source, (str, Path)):
        raise InputError(f"cannot draw figures from a {type(source).__name__}; give a store or report directory")
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path} does not exist; give a store directory or a `clipgeo analyze` output directory")
    if path.is_file():
        if path.name == "report.json":
            return read_report(path.parent)
        raise InputError(f"{path} is a file; give a store directory or a `clipgeo analyze` output directory")
    if (path / "report.json").is_file():
        return read_report(path)
    if (path / "manifest.json").is_file():
        from ..store import read_store

        return FigureInput(report=analyze(read_store(path)), origin=str(path))
    raise InputError(
        f"{path} is neither a store (no manifest.json) nor a report (no report.json); "
        "give a store directory or a `clipgeo analyze` output directory"
    )
