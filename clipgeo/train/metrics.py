"""What a training run logs: held-out retrieval, alignment/uniformity and the geometry.

Every ``log_every`` steps the trainer embeds a fixed held-out batch with the
objective's :meth:`~clipgeo.train.objective.Objective.embed_pair` (raw, not
normalised: embeddings ``a`` and ``b``, e.g. image and text) and records

- ``r1_<a>_to_<b>``, ``r1_<b>_to_<a>``: recall@1 of the matched row by cosine
  similarity (strict: a hit only when the top row is the pair itself, so
  duplicate captions cap it), with ``chance_r1 = 1/n``;
- ``alignment``, ``uniformity_<a>``, ``uniformity_<b>``: Wang & Isola's
  metrics on the unit embeddings (:mod:`clipgeo.train.objectives.align_uniform`);
- the geometry, from the clipgeo analyzers: ``l2_centroid_distance``,
  ``raw_centroid_distance``, ``mean_matched_cosine`` (:func:`clipgeo.modality_gap`),
  ``conformity_<m>`` (mean exact conformity, :func:`clipgeo.conformity`),
  ``relative_thickness_<m>`` (``std_centered_norm / mean_centered_norm``,
  :func:`clipgeo.thin_shell`) and ``offset_ratio_<m>`` (``||m|| / ||σ||``,
  :func:`clipgeo.ellipsoid_offset`) for both modalities ``m``.

:class:`MetricsLog` appends those rows to ``RUN_DIR/metrics.csv``.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._io import atomic_path
from .objectives.align_uniform import alignment, uniformity

__all__ = ["BASE_COLUMNS", "MetricsLog", "geometry_metrics", "heldout_metrics", "metric_columns", "retrieval_r1"]

#: columns every row starts with
BASE_COLUMNS = ("epoch", "step", "samples", "elapsed_s", "lr", "loss")

def metric_columns(pair_names: Sequence[str]) -> list[str]:
    """Names of the held-out metric columns for embeddings named ``pair_names = (a, b)``."""
    a, b = pair_names
    return [
        f"r1_{a}_to_{b}",
        f"r1_{b}_to_{a}",
        "chance_r1",
        "alignment",
        f"uniformity_{a}",
        f"uniformity_{b}",
        "l2_centroid_distance",
        "raw_centroid_distance",
        "mean_matched_cosine",
        f"conformity_{a}",
        f"conformity_{b}",
        f"relative_thickness_{a}",
        f"relative_thickness_{b}",
        f"offset_ratio_{a}",
        f"offset_ratio_{b}",
    ]


def retrieval_r1(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Recall@1 of matched rows by cosine similarity, both directions.

    Parameters
    ----------
    a, b : ndarray of shape (n, d)
        Row i of ``a`` is paired with row i of ``b``.

    Returns
    -------
    a_to_b, b_to_a : float
        Fraction of rows of ``a`` whose most similar row of ``b`` is their
        pair (ties go to the lowest index), and the reverse.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ua = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    ub = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    sim = ua @ ub.T  # (n, n)
    rows = np.arange(len(a))
    return float(np.mean(sim.argmax(axis=1) == rows)), float(np.mean(sim.argmax(axis=0) == rows))


def geometry_metrics(a: np.ndarray, b: np.ndarray, pair_names: Sequence[str] = ("image", "text")) -> dict[str, float]:
    """The double-ellipsoid geometry of two paired embedding sets, from the clipgeo analyzers.

    Parameters
    ----------
    a, b : ndarray of shape (n, d)
        Raw embeddings, row i of ``a`` paired with row i of ``b`` (n ≥ 2).
    pair_names : (str, str)
        Names used in the keys (``conformity_image`` …).

    Returns
    -------
    dict
        ``l2_centroid_distance``, ``raw_centroid_distance``,
        ``mean_matched_cosine`` and, per modality, ``conformity_*``,
        ``relative_thickness_*``, ``offset_ratio_*``.
    """
    import clipgeo as cg

    names = tuple(pair_names)
    with warnings.catch_warnings():
        # e.g. unit-norm inputs from an objective that normalises: logged anyway, every step
        warnings.simplefilter("ignore")
        gap = cg.modality_gap(a, b)
        out: dict[str, float] = {
            "l2_centroid_distance": gap.l2_centroid_distance,
            "raw_centroid_distance": gap.raw_centroid_distance,
            "mean_matched_cosine": gap.mean_matched_cosine,
        }
        for name, x in zip(names, (a, b), strict=True):
            shell = cg.thin_shell(x)
            out[f"conformity_{name}"] = cg.conformity(x, method="exact").mean
            out[f"relative_thickness_{name}"] = shell.std_centered_norm / shell.mean_centered_norm
            out[f"offset_ratio_{name}"] = cg.ellipsoid_offset(x).ratio
    return {k: float(v) if v is not None else float("nan") for k, v in out.items()}


def heldout_metrics(a: torch.Tensor, b: torch.Tensor, pair_names: Sequence[str] = ("image", "text")) -> dict[str, float]:
    """Every held-out metric of the log (see the module docstring) for raw embeddings ``a``, ``b`` of shape (n, d)."""
    an, bn = pair_names
    a64 = a.detach().double().cpu()
    b64 = b.detach().double().cpu()
    a_np, b_np = a64.numpy(), b64.numpy()
    r_ab, r_ba = retrieval_r1(a_np, b_np)
    out = {
        f"r1_{an}_to_{bn}": r_ab,
        f"r1_{bn}_to_{an}": r_ba,
        "chance_r1": 1.0 / len(a_np),
        "alignment": float(alignment(a64, b64)),
        f"uniformity_{an}": float(uniformity(a64)),
        f"uniformity_{bn}": float(uniformity(b64)),
    }
    out.update(geometry_metrics(a_np, b_np, pair_names))
    return out


class MetricsLog:
    """Rows of metrics appended to a CSV file, one per logging step.

    Parameters
    ----------
    path : path
        ``RUN_DIR/metrics.csv``.
    columns : sequence of str
        Header of a new file (an existing file keeps its own header).  A row
        with a key not in the header adds that column (inserted before
        ``insert_before``, the file is rewritten); missing keys are left empty.
    keep_until_step : int, optional
        When resuming: drop the rows logged after this step (they belong to
        the part of the run that the checkpoint does not hold).
    insert_before : str, optional
        New columns go before this one (default: at the end).
    """

    def __init__(
        self,
        path: str | Path,
        columns: Sequence[str],
        keep_until_step: int | None = None,
        insert_before: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.insert_before = insert_before
        if keep_until_step is not None and self.path.is_file():
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.columns = list(reader.fieldnames or self.columns)
                rows = [r for r in reader if r.get("step") not in (None, "") and int(r["step"]) <= keep_until_step]
            self._rewrite(rows)
        elif not self.path.is_file() or keep_until_step is None:
            self._rewrite([])

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (floats written with full precision)."""
        new = [k for k in row if k not in self.columns]
        if new:
            with open(self.path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            at = self.columns.index(self.insert_before) if self.insert_before in self.columns else len(self.columns)
            self.columns[at:at] = new
            self._rewrite(rows)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, restval="", extrasaction="ignore")
            writer.writerow({k: _cell(v) for k, v in row.items()})

    def read(self):
        """The rows as a ``pandas.DataFrame``."""
        import pandas as pd

        return pd.read_csv(self.path)


def _cell(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return value
