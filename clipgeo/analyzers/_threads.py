"""BLAS thread limits for the small LAPACK work inside some analyzers."""

from __future__ import annotations

import contextlib


def single_blas_thread():
    """Context manager: one BLAS thread for small LAPACK work (eigh of a d × d matrix, L-BFGS).

    Such routines issue thousands of small BLAS calls; with several BLAS
    threads on a busy machine each call waits for its threads to be scheduled,
    which made a 512 × 512 ``eigh`` take seconds instead of 0.1 s.  Large
    matrix products keep every thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
