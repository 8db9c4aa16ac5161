"""clipgeo: measure the geometry of CLIP embedding spaces.

``import clipgeo as cg`` gives the analyzers (numpy in, small result objects
out), the store reader and the synthetic generators.  Names are resolved
lazily, so ``import clipgeo`` pulls in neither torch nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__

# public name -> module that defines it (imported on first use)
_EXPORTS: dict[str, str] = {
    # store
    "EmbeddingSet": "clipgeo.store",
    "StoreMeta": "clipgeo.store",
    "StoreWriter": "clipgeo.store",
    "read_store": "clipgeo.store",
    "write_store": "clipgeo.store",
    "import_embeddings": "clipgeo.store",
    "iter_store": "clipgeo.store",
    "import_clip_retrieval": "clipgeo.store",
    # stores larger than memory (Dask is imported only when an analysis starts)
    "analyze_store": "clipgeo.stream",
    # errors
    "ClipgeoError": "clipgeo.errors",
    # extraction (torch is imported only when these are used)
    "load_model": "clipgeo.models",
    "ExtractOptions": "clipgeo.extract",
    # analyzers (SPEC §1-9)
    "modality_gap": "clipgeo.analyzers",
    "feature_separability": "clipgeo.analyzers",
    "thin_shell": "clipgeo.analyzers",
    "mahalanobis_shell": "clipgeo.analyzers",
    "off_diagonal_dominance": "clipgeo.analyzers",
    "ellipsoid_offset": "clipgeo.analyzers",
    "conformity": "clipgeo.analyzers",
    "centroid_shift": "clipgeo.analyzers",
    "alignment_uniformity": "clipgeo.analyzers",
    "cosine_gradient": "clipgeo.analyzers",
    "pca_projection": "clipgeo.analyzers",
    # beyond the paper (SPEC §12)
    "pair_conformity": "clipgeo.analyzers",
    "retrieval_by_conformity": "clipgeo.analyzers",
    "commonness": "clipgeo.analyzers",
    "gap_metrics": "clipgeo.analyzers",
    "Whitener": "clipgeo.analyzers",
    "whitening": "clipgeo.analyzers",
    "vslerp": "clipgeo.analyzers",
    "spectrum": "clipgeo.analyzers",
    "bootstrap": "clipgeo.analyzers",
    "compare_reports": "clipgeo.report._compare",
    "UnitNormWarning": "clipgeo.analyzers",
    # report
    "analyze": "clipgeo.report",
    "AnalyzeConfig": "clipgeo.report",
    "Report": "clipgeo.report",
    # figures (SPEC §10; imports matplotlib on first use)
    "render_figures": "clipgeo.plotting",
    "draw_figure": "clipgeo.plotting",
    "list_figures": "clipgeo.plotting",
    # synthetic data with known ground truth
    "double_ellipsoid": "clipgeo.synthetic",
    "DoubleEllipsoidTruth": "clipgeo.synthetic",
    "sample_isotropic": "clipgeo.synthetic",
    "sample_anisotropic": "clipgeo.synthetic",
    "thin_shell_curve": "clipgeo.synthetic",
    # evaluation of trained runs (imports torch on first use)
    "linear_probe": "clipgeo.analyzers",
    "compare_runs": "clipgeo.train.compare",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'clipgeo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
