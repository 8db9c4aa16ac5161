"""The :class:`Report`: every analyzer result of one embedding set, as :func:`analyze` returns it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import analyzers as az
from . import _write


@dataclass
class Report:
    """Results of every analyzer on one embedding set.

    Attributes
    ----------
    dim, n_image, n_text, n_pairs : int
    config : dict
        The resolved options of :func:`analyze` (:meth:`AnalyzeConfig.to_dict`, ``alphas`` resolved).
    meta : dict
        The store's metadata (model, provenance of the embeddings).
    modality_gap, separability, centroid_shift, alignment_uniformity, cosine_gradient, projection
        Analyzer results (None when skipped).
    thin_shell, mahalanobis_shell, off_diagonal_dominance, ellipsoid_offset, conformity : dict
        Per modality (``"image"``, ``"text"``) results; a skipped modality is absent.
    skipped : dict of str to str
        Analysis name -> why it could not run on this data.
    warnings : list of str
    timings : dict of str to float
        Seconds spent in each analysis.
    rows : dict
        Per modality: ``ids``, ``paths`` / ``captions``, ``image_row`` (text only).
    top_feature_values : dict
        Per modality: {feature index: ndarray of shape (n,)}, raw values of the
        features the figures draw (top separating ones, best pair, features 0-9).
    unit_norm : dict of str to bool
        Per modality: the rows were already L2-normalised (raw-space results degenerate).
    thin_shell_theory : pandas.DataFrame or None
        The thin-shell simulation of SPEC §3 (:func:`clipgeo.synthetic.thin_shell_curve`), independent of the data.
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
    thin_shell_theory: Any = None
    #: the SPEC §12 analyses (:class:`clipgeo.report._beyond.Beyond`): gap metrics, per-pair conformity,
    #: retrieval, commonness, spectrum, whitening, bootstrap intervals
    beyond: Any = None

    def extremes(self, k: int | None = None) -> dict[str, Any]:
        """Highest- and lowest-conformity rows per modality, with caption / path."""
        k = int(self.config.get("n_extremes", 5) if k is None else k)
        out: dict[str, Any] = {}
        for modality, result in self.conformity.items():
            info = self.rows.get(modality, {})
            label = "caption" if modality == "text" else "path"
            labels = info.get("captions" if modality == "text" else "paths")
            # an exact duplicate (the same caption, the same image file) is listed once
            keys = labels if labels is not None and len(labels) == len(result.values) and any(labels) else None
            if keys is not None:  # rows without a label are never duplicates of each other
                keys = [str(v) if str(v) else f"row {i}" for i, v in enumerate(keys)]
            top, bottom = result.extremes(k, labels=keys)

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
        """Everything in ``report.json`` except provenance and the file list: plain JSON values."""
        return _write.summary(self)

    def write(self, out_dir: str | Path, *, provenance: dict[str, Any] | None = None, html: bool = False) -> dict[str, Path]:
        """Write the report directory (see :mod:`clipgeo.report`): computes nothing, writes every file atomically.

        Parameters
        ----------
        out_dir : path
            Created if missing; files of a previous report there are replaced.
        provenance : dict, optional
            Extra provenance (e.g. the CLI's); default :func:`clipgeo.provenance.provenance`
            of the analyze config.
        html : bool
            Also write the self-contained ``report.html`` (figures drawn from these results; slower).

        Returns
        -------
        dict of str to Path
            The files written, by name.
        """
        return _write.write_report(self, out_dir, provenance=provenance, html=html)
