"""Captioned image collections: where images and captions come from, and how to decode them.

Shared by ``clipgeo extract`` and ``clipgeo train``.  Nothing here imports torch.

The source interface
--------------------
A :class:`~clipgeo.data.sources.CaptionedSource` is a deterministic, indexable,
picklable sequence of :class:`~clipgeo.data.sources.Record`::

    Record(image_id: str | None,          # unique per source; None = text-only record
           image: str | bytes | None,     # file path, encoded file bytes, or None
           path: str,                     # shown in the store's `path` column
           captions: tuple[str | None, ...],   # 0..n captions; None = missing/blank
           caption_ids: tuple[str, ...])       # one unique id per caption

    len(source), source[i] -> Record      # same order on every run and machine
    source.fingerprint -> str             # hash of identity + listing (ids, paths, captions)
    source.head(n) -> CaptionedSource     # first n records (--limit)
    source.pairs() -> PairsView           # (image, caption) per pair, `.captions` list
    source.kind, source.description, source.has_images

Constructors (``clipgeo.data``):

- ``coco(captions_json, images_dir, captions_per_image="all")`` — MS-COCO
  captions format; images the json does not list become image-only records.
- ``folder(images_dir, captions_file=None, captions_per_image="all")`` —
  images + CSV/TSV/JSONL with ``file_name``, ``caption`` (several rows per
  image allowed; images without a row are image-only records).  The synthetic
  shapes set (:mod:`clipgeo.data.shapes`, ``write_shapes``) writes exactly this.
- ``hf_dataset(id_or_path, split="train", image_column=None, text_column=None,
  captions_per_image="all")`` — Hugging Face ``datasets``: hub id (network) or
  local parquet/json/csv file, ``save_to_disk`` folder, or imagefolder.
- ``texts(file)`` — captions only (``.txt`` one per line, or a ``caption`` column).
- ``open_source(shapes=…, images=…, coco_captions=…, dataset=…, texts=…)`` — the one of those
  (or the built-in shapes) that the options name; what ``clipgeo extract`` / ``train`` call.

Decoding: ``load_image(image, max_pixels=None, draft_size=None, timeout=30)``
returns ``(PIL RGB image, None)`` or ``(None, reason)`` with ``reason`` one of
:data:`SKIP_REASONS` (missing_file, empty_file, not_an_image,
truncated_image, too_large, decode_error, decode_timeout; empty_caption is
used for captions).  It never raises on a bad file and converts every PIL mode
(CMYK, RGBA/LA/P with transparency over white, 16-bit, grayscale…) to RGB.

Example::

    from clipgeo.data import folder, load_image
    source = folder("shapes/images", "shapes/captions.csv")
    record = source[0]
    image, reason = load_image(record.image)
"""

from __future__ import annotations

from ._select import open_source, reopen_source
from .images import SKIP_REASONS, load_image, to_rgb
from .sources import (
    CAPTIONS_PER_IMAGE,
    IMAGE_SUFFIXES,
    CaptionedSource,
    PairsView,
    Record,
    coco,
    folder,
    hf_dataset,
    texts,
)

__all__ = [
    "CAPTIONS_PER_IMAGE",
    "IMAGE_SUFFIXES",
    "SKIP_REASONS",
    "CaptionedSource",
    "PairsView",
    "Record",
    "coco",
    "folder",
    "hf_dataset",
    "load_image",
    "open_source",
    "reopen_source",
    "texts",
    "to_rgb",
]
