"""A seeded uniform sample of rows, drawn without reading the rows twice.

Every row gets a key ``splitmix64(seed, stream, global row index)`` -- a pure
function of its position in the store, so the sample does not depend on how
the shards are split into tasks or in which order they run.  The sample is the
``size`` rows with the smallest keys (a uniform sample without replacement:
the keys are i.i.d. uniform).  The cut-off key is found from the keys alone
(cheap: no embedding is read), and each task then keeps its rows at or below
it, so exactly ``size`` rows travel back.
"""

from __future__ import annotations

import numpy as np

#: rows of the default sample (pairs when the store is paired)
DEFAULT_SAMPLE = 100_000

_STREAMS = {"pair": 1, "image": 2, "text": 3}


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def row_keys(rows: np.ndarray, seed: int, stream: str) -> np.ndarray:
    """uint64 keys of global row indices (i.i.d. uniform over rows), for one seed and stream."""
    base = _splitmix64(np.array([int(seed) * 8 + _STREAMS[stream]], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        return _splitmix64(np.asarray(rows, dtype=np.uint64) ^ base)


def cutoff(keys_chunks, size: int, total: int | None = None) -> np.uint64 | None:
    """The ``size``-th smallest key over chunks of keys (None: keep everything).

    ``total`` is the number of candidate rows when the chunks are already cut to their ``size`` smallest
    keys (:func:`smallest_keys`); by default the keys given are all the candidates.
    """
    best = np.empty(0, dtype=np.uint64)
    seen = 0
    for keys in keys_chunks:
        keys = np.asarray(keys, dtype=np.uint64)
        seen += len(keys)
        best = np.concatenate([best, keys])
        if len(best) > size:
            best = np.partition(best, size - 1)[:size]
    if (seen if total is None else total) <= size:
        return None
    return np.uint64(best.max())


def smallest_keys(keys: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` smallest of ``keys`` (all when fewer): what one task contributes to :func:`cutoff`."""
    keys = np.asarray(keys, dtype=np.uint64)
    return keys if len(keys) <= size else np.partition(keys, size - 1)[:size]


def keep(keys: np.ndarray, limit: np.uint64 | None) -> np.ndarray:
    """Boolean mask of the keys inside the sample."""
    return np.ones(len(keys), dtype=bool) if limit is None else keys <= limit
