"""Where things live inside a store directory.

::

    STORE/
      manifest.json            format, StoreMeta, status, shard list (rows, skipped inputs)
      image/part-000000.parquet  id, path, embedding
      text/part-000000.parquet   id, image_id, caption, embedding

Each modality folder is a plain Parquet dataset: ``pandas.read_parquet("STORE/image")``,
``datasets.Dataset.from_parquet("STORE/text/*.parquet")``, polars and duckdb read it
as it is.  Temporary files start with ``.`` so that those readers skip them.
"""

from __future__ import annotations

from pathlib import Path

FORMAT = "clipgeo-store"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK = ".lock"
MODALITIES = ("image", "text")
EMBEDDING = "embedding"
META_KEY = b"clipgeo"


def shard_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def shard_path(root: Path, modality: str, index: int) -> Path:
    return root / modality / shard_name(index)
