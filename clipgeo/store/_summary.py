"""A short description of a store: counts, provenance, norm statistics (``clipgeo info``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..validation import rows_are_unit
from ._embedding_set import EmbeddingSet


def _norm_stats(x: np.ndarray) -> dict[str, float] | None:
    if len(x) == 0:
        return None
    norms = np.linalg.norm(x.astype(np.float64, copy=False), axis=1)
    return {
        "mean": float(norms.mean()),
        "std": float(norms.std(ddof=1)) if len(norms) > 1 else 0.0,
        "min": float(norms.min()),
        "max": float(norms.max()),
        "unit_norm": rows_are_unit(x),
    }


def summarize(es: EmbeddingSet) -> dict[str, Any]:
    """Counts, dimension, model, provenance and per-modality norm statistics."""
    norms = {"image": _norm_stats(es.image), "text": _norm_stats(es.text)}
    warnings = []
    unit = [m for m, s in norms.items() if s and s["unit_norm"]]
    if unit:
        warnings.append(
            f"{' and '.join(unit)} rows are already unit-norm: raw-space analyses (thin shell, offsets, "
            "Mahalanobis shells) are degenerate; extract raw features with `clipgeo extract` for those"
        )
    skipped: dict[str, int] = {}
    for item in es.skipped:
        skipped[item.get("reason", "unknown")] = skipped.get(item.get("reason", "unknown"), 0) + 1
    meta = es.meta.to_dict()
    return {
        "n_image": es.n_image,
        "n_text": es.n_text,
        "n_pairs": es.n_pairs,
        "dim": es.dim,
        "model": es.meta.model_id,
        "store_dtype": es.meta.store_dtype,
        "normalized": es.meta.normalized,
        "source": es.meta.source,
        "norms": norms,
        "skipped": skipped,
        "provenance": {k: meta[k] for k in ("versions", "created", "command", "precision", "pretrained", "checkpoint_sha256")},
        "warnings": warnings,
    }
