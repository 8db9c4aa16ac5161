"""The embedding store: Parquet shards + a manifest, read as an :class:`EmbeddingSet`.

:func:`status` and :func:`summary` describe a store directory from its manifest
(the rest of clipgeo asks them instead of reading ``manifest.json``);
:func:`summarize` describes the rows of an :class:`EmbeddingSet` already read; :func:`summarize_store` a
store on disk, batch by batch.
:func:`iter_store` streams the shards as numpy batches (local paths and fsspec URLs),
without reading the store whole.
"""

from ._embedding_set import EmbeddingSet
from ._formats import load_matrix, load_pairs, load_strings
from ._import import import_clip_retrieval, import_embeddings
from ._iter import ShardInfo, StoreBatch, StoreShards, iter_store, open_store
from ._meta import StoreMeta
from ._reader import read_manifest, read_store
from ._status import StoreStatus, StoreSummary, status, summary
from ._summary import summarize, summarize_store
from ._writer import StoreWriter, write_store

__all__ = [
    "EmbeddingSet",
    "StoreMeta",
    "StoreStatus",
    "StoreSummary",
    "ShardInfo",
    "StoreBatch",
    "StoreShards",
    "StoreWriter",
    "import_clip_retrieval",
    "import_embeddings",
    "iter_store",
    "open_store",
    "load_matrix",
    "load_pairs",
    "load_strings",
    "read_manifest",
    "read_store",
    "status",
    "summarize",
    "summarize_store",
    "summary",
    "write_store",
]
