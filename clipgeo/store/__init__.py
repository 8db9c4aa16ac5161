"""The embedding store: Parquet shards + a manifest, read as an :class:`EmbeddingSet`."""

from ._embedding_set import EmbeddingSet
from ._formats import load_matrix, load_pairs, load_strings
from ._import import import_embeddings, rows_are_unit
from ._meta import StoreMeta
from ._reader import read_manifest, read_store
from ._summary import summarize
from ._validate import check_embeddings
from ._writer import StoreWriter, write_store

__all__ = [
    "EmbeddingSet",
    "StoreMeta",
    "StoreWriter",
    "check_embeddings",
    "import_embeddings",
    "load_matrix",
    "load_pairs",
    "load_strings",
    "read_manifest",
    "read_store",
    "rows_are_unit",
    "summarize",
    "write_store",
]
