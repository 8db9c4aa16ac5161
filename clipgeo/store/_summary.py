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


class _NormMoments:
    """Running count, mean, centred second moment (Chan's merge), min, max and unit-ness of row norms."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = np.inf, -np.inf
        self.unit = True

    def add(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        x = np.asarray(x, dtype=np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        n_b, mean_b = len(norms), float(norms.mean())
        m2_b = float(((norms - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.mean += delta * n_b / n
        self.n = n
        self.min, self.max = min(self.min, float(norms.min())), max(self.max, float(norms.max()))
        self.unit = self.unit and rows_are_unit(x)

    def stats(self) -> dict[str, float] | None:
        if self.n == 0:
            return None
        return {"mean": self.mean, "std": float(np.sqrt(self.m2 / (self.n - 1))) if self.n > 1 else 0.0,
                "min": self.min, "max": self.max, "unit_norm": bool(self.unit)}


def summarize_store(path: Any, *, allow_incomplete: bool = False, batch_rows: int = 65536) -> dict[str, Any]:
    """:func:`summarize` of the store at ``path`` (local or fsspec URL), read batch by batch in bounded memory.

    The same keys as :func:`summarize`; ``n_pairs`` counts the text rows that name an image
    (``image_id`` set), as the writer only links existing images.
    """
    from ._iter import open_store

    store = open_store(path, allow_incomplete=allow_incomplete)
    moments = {"image": _NormMoments(), "text": _NormMoments()}
    n_pairs = 0
    for m in ("image", "text"):
        columns = ("embedding", "image_id") if m == "text" else ("embedding",)
        for shard in store.shards[m]:
            for batch in store.read(shard, columns, batch_rows=batch_rows, arrow_columns=True):
                moments[m].add(batch.embedding)
                if m == "text":
                    n_pairs += len(batch.columns["image_id"]) - batch.columns["image_id"].null_count
    skipped = [item for e in store.manifest.get("shards", []) for item in e.get("skipped", [])]
    return _describe(store.meta, {m: store.rows(m) for m in moments}, n_pairs,
                     {m: mom.stats() for m, mom in moments.items()}, skipped)


def summarize(es: EmbeddingSet) -> dict[str, Any]:
    """Counts, dimension, model, provenance and per-modality norm statistics of a set already in memory
    (:func:`summarize_store` reads a store batch by batch instead)."""
    norms = {"image": _norm_stats(es.image), "text": _norm_stats(es.text)}
    return _describe(es.meta, {"image": es.n_image, "text": es.n_text}, es.n_pairs, norms, es.skipped)


def _describe(meta_obj: Any, rows: dict[str, int], n_pairs: int, norms: dict[str, Any], skipped_items: list) -> dict[str, Any]:
    warnings = []
    unit = [m for m, s in norms.items() if s and s["unit_norm"]]
    if unit:
        warnings.append(
            f"{' and '.join(unit)} rows are already unit-norm: raw-space analyses (thin shell, offsets, "
            "Mahalanobis shells) are degenerate; extract raw features with `clipgeo extract` for those"
        )
    skipped: dict[str, int] = {}
    for item in skipped_items:
        skipped[item.get("reason", "unknown")] = skipped.get(item.get("reason", "unknown"), 0) + 1
    meta = meta_obj.to_dict()
    return {
        "n_image": rows["image"],
        "n_text": rows["text"],
        "n_pairs": int(n_pairs),
        "dim": meta_obj.dim,
        "model": meta_obj.model_id,
        "store_dtype": meta_obj.store_dtype,
        "normalized": meta_obj.normalized,
        "source": meta_obj.source,
        "norms": norms,
        "skipped": skipped,
        "provenance": {k: meta[k] for k in ("versions", "created", "command", "precision", "pretrained", "checkpoint_sha256")},
        "warnings": warnings,
    }
