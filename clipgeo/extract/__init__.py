"""Batched extraction of raw CLIP embeddings into the store (``clipgeo extract``).

``extract(source, out, ExtractOptions(...))`` runs a :class:`clipgeo.data.CaptionedSource`
through any open_clip model into a resumable Parquet store; see
:mod:`clipgeo.extract._pipeline` for the data path, and :mod:`clipgeo.extract._text`
for the padding-free text tower.
"""

from __future__ import annotations

from ._pipeline import DECODE_MODES, DEVICES, ExtractOptions, extract, fingerprint, resolve_device, store_summary
from ._text import can_trim_text, encode_text, encode_text_trimmed, pooled_positions, tokenize

__all__ = [
    "DECODE_MODES",
    "DEVICES",
    "ExtractOptions",
    "can_trim_text",
    "encode_text",
    "encode_text_trimmed",
    "extract",
    "fingerprint",
    "pooled_positions",
    "resolve_device",
    "store_summary",
    "tokenize",
]
