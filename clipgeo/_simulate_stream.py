"""Writing a synthetic double-ellipsoid store chunk by chunk (``clipgeo simulate double-ellipsoid`` for large N).

The population (means, tilted covariances, separating features) is the one
:func:`clipgeo.synthetic.double_ellipsoid` builds for the same seed; the rows are drawn ``shard_rows`` at a
time from it -- chunk ``k`` with its own generator ``default_rng([seed, k])`` -- and written as one store
shard each, so memory stays at one chunk whatever N.  (The draws differ from the in-memory generator's for
the same seed; the population and its ground truth do not.)  The store appears only when complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_dir, write_json

#: pairs per chunk (and per store shard)
DEFAULT_CHUNK = 65536
#: rows drawn at a time inside a chunk (float32)
_BLOCK = 8192


def stream_double_ellipsoid(
    out: str | os.PathLike,
    truth: Any,
    n: int,
    meta: Any,
    truth_dict: dict[str, Any],
    *,
    seed: int = 0,
    shard_rows: int = DEFAULT_CHUNK,
) -> Path:
    """Write ``n`` pairs drawn from ``truth``'s population (a :class:`~clipgeo.synthetic.DoubleEllipsoidTruth`).

    Parameters
    ----------
    out : path
        Store directory (must not exist).
    truth : DoubleEllipsoidTruth
        Means ``mean_image`` / ``mean_text`` (d,), covariances ``cov_image`` / ``cov_text`` (d, d), and
        ``pair_correlation``, ``distribution``, ``unit_norm``.
    n : int
        Pairs.
    meta : StoreMeta
        Metadata of the store (its ``store_dtype`` is the dtype on disk).
    truth_dict : dict
        Written as ``ground_truth.json`` beside the shards.
    """
    from .store import StoreWriter
    from .store._writer import ShardPool
    from .synthetic import _standard

    out = Path(out)
    d = len(truth.mean_image)
    dtype = np.dtype(meta.store_dtype)
    chol = {"image": np.linalg.cholesky(truth.cov_image).T.astype(np.float32),
            "text": np.linalg.cholesky(truth.cov_text).T.astype(np.float32)}
    mean = {"image": truth.mean_image.astype(np.float32), "text": truth.mean_text.astype(np.float32)}
    rho = np.float32(truth.pair_correlation)
    rest = np.float32(np.sqrt(1 - float(truth.pair_correlation) ** 2))

    def draw(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        if truth.distribution == "gaussian":
            return rng.standard_normal(shape, dtype=np.float32)
        return _standard(rng, shape, truth.distribution).astype(np.float32)

    with atomic_dir(out) as tmp:
        writer = StoreWriter(tmp, meta)
        with ShardPool(writer) as pool:  # shard k is encoded while shard k + 1 is drawn
            for k, start in enumerate(range(0, n, shard_rows)):
                rows = min(shard_rows, n - start)
                rng = np.random.default_rng([int(seed), k])
                shard = {m: np.empty((rows, d), dtype=dtype) for m in ("image", "text")}
                for s in range(0, rows, _BLOCK):  # float32 blocks of _BLOCK rows: bounded memory, fast GEMMs
                    e = min(s + _BLOCK, rows)
                    z_img = draw(rng, (e - s, d))
                    z_txt = rho * z_img + rest * draw(rng, (e - s, d))
                    for m, z in (("image", z_img), ("text", z_txt)):
                        x = mean[m] + z @ chol[m]  # (block, d)
                        if truth.unit_norm:
                            x /= np.linalg.norm(x, axis=1, keepdims=True)
                        shard[m][s:e] = x
                ids = [str(i) for i in range(start, start + rows)]
                pool.submit("image", k, shard["image"], ids=ids, columns={"path": [""] * rows})
                pool.submit("text", k, shard["text"], ids=ids,
                            columns={"image_id": ids, "caption": [f"synthetic pair {i}" for i in range(start, start + rows)]})
                del shard
        writer.finalize({"n_image": n, "n_text": n, "n_pairs": n})
        write_json(tmp / "ground_truth.json", truth_dict, indent=1)
    return out
