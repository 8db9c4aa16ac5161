"""Batched extraction of raw CLIP embeddings into the store (``clipgeo extract``).

``extract(source, out, ExtractOptions(...))`` runs a :class:`clipgeo.data.CaptionedSource`
through any open_clip model into a resumable Parquet store; see
:mod:`clipgeo.extract._pipeline` for the data path, and :mod:`clipgeo.extract._text`
for the padding-free text tower.  Device, precision and the torchrun process group come from
:mod:`clipgeo.runtime`.

Names are resolved on first use: ``ExtractOptions`` (:mod:`._options`) needs no torch, so the
command line reads its defaults without loading the model stack.
"""

from __future__ import annotations

from clipgeo._lazy import lazy_exports

_EXPORTS = {
    "DECODE_MODES": "._options",
    "ExtractOptions": "._options",
    "extract": "._pipeline",
    "fingerprint": "._pipeline",
    "store_summary": "._pipeline",
    "can_trim_text": "._text",
    "encode_text": "._text",
    "encode_text_trimmed": "._text",
    "pooled_positions": "._text",
    "tokenize": "._text",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
