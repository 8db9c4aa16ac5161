"""Turn embeddings computed elsewhere into a store (``clipgeo import``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._import_stream import import_streaming


def import_embeddings(
    out: str | os.PathLike,
    *,
    image: str | Path | np.ndarray | None = None,
    text: str | Path | np.ndarray | None = None,
    pairs: str | Path | np.ndarray | None = None,
    captions: str | Path | list[str] | None = None,
    image_paths: str | Path | list[str] | None = None,
    model_name: str = "unknown",
    pretrained: str | None = None,
    source: str | None = None,
    store_dtype: str | None = None,
    overwrite: bool = False,
    shard_rows: int = 65536,
) -> Path:
    """Write image and/or text embeddings (arrays or file specs) as a complete store.

    Row ``i`` of ``image`` pairs with row ``i`` of ``text`` unless ``pairs``
    maps text rows to image rows (see :func:`clipgeo.store.load_pairs`).  The
    store is written into a temporary sibling directory and renamed into place,
    so a failure leaves ``out`` as it was.  ``store_dtype`` defaults to float16
    when both inputs are float16, else float32.

    The embeddings are read and written chunk by chunk (``shard_rows`` rows at a
    time; :mod:`clipgeo.store._import_stream`): memory stays at one shard whatever
    the number of rows, and a NaN / inf row stops the import with nothing written.
    """
    return import_streaming(
        out, image=image, text=text, pairs=pairs, captions=captions, image_paths=image_paths, model_name=model_name,
        pretrained=pretrained, source=source, store_dtype=store_dtype, overwrite=overwrite, shard_rows=shard_rows,
    )
