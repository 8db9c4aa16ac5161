"""One place that turns "which data?" options into a source: ``clipgeo extract``, ``train`` and ``compare`` share it.

Exactly one kind of input is given; :func:`open_source` checks that, opens it, and returns the
source with a JSON description for provenance (from which :func:`reopen_source` rebuilds the
built-in shapes of a training run).  Messages name the parameters (``coco_images=DIR``), those of the
sources too (``coco_captions='a.json' does not exist``, not ``captions_json``); the command line
shows them as its flags.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError

__all__ = ["KINDS", "open_source", "reopen_source"]

#: kinds of input, in the order they are listed in messages
KINDS = ("shapes", "folder", "coco", "dataset", "texts")
_HOW = {
    "shapes": "shapes=N (built-in captioned shapes)",
    "folder": "images=DIR with captions=FILE",
    "coco": "coco_captions=FILE with coco_images=DIR",
    "dataset": "dataset=ID_OR_PATH",
    "texts": "texts=FILE",
}


def open_source(
    *,
    shapes: int | None = None,
    images: str | os.PathLike | None = None,
    captions: str | os.PathLike | None = None,
    coco_captions: str | os.PathLike | None = None,
    coco_images: str | os.PathLike | None = None,
    dataset: str | None = None,
    split: str = "train",
    image_column: str | None = None,
    text_column: str | None = None,
    texts: str | os.PathLike | None = None,
    captions_per_image: str = "all",
    seed: int = 0,
    kinds: tuple[str, ...] = KINDS,
    pairs: bool = False,
    what: str = "input",
) -> tuple[Any, dict[str, Any]]:
    """The one source the options describe, and its description.

    Parameters
    ----------
    shapes : int, optional
        :class:`clipgeo.data.shapes.CaptionedShapes` of this many samples (seeded by ``seed``).
    images, captions : path, optional
        :func:`clipgeo.data.folder`.
    coco_captions, coco_images : path, optional
        :func:`clipgeo.data.coco`.
    dataset, split, image_column, text_column : optional
        :func:`clipgeo.data.hf_dataset`.
    texts : path, optional
        :func:`clipgeo.data.texts`.
    captions_per_image : {"all", "first"}
    kinds : tuple of str
        The kinds the caller accepts (a subset of :data:`KINDS`).
    pairs : bool
        Return image–caption pairs (``source.pairs()``; a folder then needs ``captions``), as training does.
    what : str
        What the data is for, in messages ("training data", "input").

    Returns
    -------
    source : CaptionedSource, its PairsView (``pairs``), or CaptionedShapes
    description : dict
        ``source`` (the kind) and what identifies it (for ``config.json`` / provenance).

    Raises
    ------
    InputError
        No input, several kinds at once, an incomplete pair of options, or an empty source.
    """
    given = {
        "shapes": shapes is not None,
        "folder": images is not None or captions is not None,
        "coco": coco_captions is not None or coco_images is not None,
        "dataset": dataset is not None,
        "texts": texts is not None,
    }
    chosen = [k for k in KINDS if given[k]]
    if not chosen:
        how = ", ".join(_HOW[k] for k in KINDS if k in kinds)
        raise InputError(f"no {what} given; pass one of {how}")
    if len(chosen) > 1:
        named = " and ".join(_HOW[k].split(" ")[0] for k in chosen)
        raise InputError(f"give one input kind (one data source), not {named}; use one per run")
    kind = chosen[0]
    if kind not in kinds:
        raise InputError(f"{_HOW[kind].split(' ')[0]} is not an input here; pass one of "
                         + ", ".join(_HOW[k] for k in KINDS if k in kinds))
    if kind == "shapes":
        from .shapes import CaptionedShapes

        if isinstance(shapes, bool) or int(shapes) != shapes or shapes < 1:
            raise InputError(f"shapes={shapes!r} draws no samples; pass shapes=N with N >= 1, e.g. 5000")
        return CaptionedShapes(int(shapes), seed=seed), {"source": "shapes", "n": int(shapes), "seed": int(seed)}

    from . import sources

    if kind == "folder":
        if images is None:
            raise InputError("captions=FILE needs images=DIR (the folder its file_name column points into)")
        if pairs and captions is None:
            raise InputError("images=DIR needs captions=FILE (a CSV/TSV/JSONL with file_name,caption) to give pairs")
        source = sources._folder(images, captions, captions_per_image, names={"images_dir": "images", "captions_file": "captions"})
    elif kind == "coco":
        if coco_captions is None or coco_images is None:
            raise InputError("COCO input needs both coco_captions=FILE.json and coco_images=DIR")
        source = sources._coco(coco_captions, coco_images, captions_per_image,
                               names={"captions_json": "coco_captions", "images_dir": "coco_images"})
    elif kind == "dataset":
        source = sources._hf_dataset(dataset, split, image_column, text_column, captions_per_image,
                                     names={"id_or_path": "dataset"})
    else:
        source = sources._texts(texts, names={"file": "texts"})
    description = {"source": source.kind, "description": source.description, "fingerprint": source.fingerprint}
    if not pairs:
        return source, {**description, "records": len(source)}
    view = source.pairs()
    if len(view) == 0:
        raise InputError(f"{source.description} holds no image-caption pairs to train on; check the captions file")
    return view, {**description, "pairs": len(view), "captions_per_image": captions_per_image}


def reopen_source(description: dict[str, Any]) -> Any:
    """The source a description from :func:`open_source` names, when it can be rebuilt (the shapes); else None."""
    if (description or {}).get("source") == "shapes":
        from .shapes import CaptionedShapes

        return CaptionedShapes(int(description["n"]), seed=int(description.get("seed", 0)))
    return None
