"""Stores larger than memory: SPEC quantities from one-pass, mergeable statistics, on Dask.

============================  =====================================================================
module                        holds                                                       imports
============================  =====================================================================
``_moments``                  mergeable accumulators (count, Σx, Σxxᵀ, unit rows, norms,   numpy
                              conformity cross-moments, matched-pair sums), Chan merge
``_histogram``                per-feature fixed-grid histograms -> threshold accuracy and  numpy
                              AUC with their error bounds
``_sample``                   the seeded uniform sample (keys of the global row index)     numpy
``_tasks``                    per-shard work: shards in, accumulators out                  numpy, store
``_engine``                   the Dask engine: tasks on ``dask.distributed``, tree merge,  dask
                              the image_id join
``_report`` / ``_result``     merged statistics -> :class:`~clipgeo.report.Report`          analyzers, report
``_analyze``                  :func:`analyze_store`: path in, report directory out
============================  =====================================================================

``import clipgeo.stream`` does not import Dask; the engine imports it when a client is made.
"""

from ._analyze import analyze_store, streaming_needed
from ._engine import StoreStatistics, StreamConfig, collect_statistics, dask_client
from ._histogram import DEFAULT_BINS, FeatureHistograms, HistogramSeparability, histogram_separability
from ._moments import CentredMoments, Comoments, ModalityMoments, Moments1D, PairSums, tree_merge
from ._sample import DEFAULT_SAMPLE

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_SAMPLE",
    "CentredMoments",
    "Comoments",
    "FeatureHistograms",
    "HistogramSeparability",
    "ModalityMoments",
    "Moments1D",
    "PairSums",
    "StoreStatistics",
    "StreamConfig",
    "analyze_store",
    "collect_statistics",
    "dask_client",
    "histogram_separability",
    "streaming_needed",
    "tree_merge",
]
