"""Ordering helpers shared by the in-memory analyzers and the streaming workers (numpy only).

Kept out of :mod:`clipgeo.analyzers` so that a streaming worker, which needs only this, does not import the
analyzers (and scipy) with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def first_distinct(order: np.ndarray, keys: Any, k: int) -> np.ndarray:
    """The first ``k`` entries of ``order`` whose ``keys[i]`` was not seen earlier in ``order``.

    How the conformity extremes list an exact duplicate (the same caption, the same image file) once.
    """
    seen, out = set(), []
    for i in order:
        key = keys[int(i)]
        if key in seen:
            continue
        seen.add(key)
        out.append(int(i))
        if len(out) == k:
            break
    return np.asarray(out, dtype=np.int64)
