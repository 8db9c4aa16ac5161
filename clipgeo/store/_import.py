"""Turn embeddings computed elsewhere into a store (``clipgeo import``)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._io import atomic_dir
from ..errors import InputError, StoreError
from ..provenance import provenance
from ..validation import check_embeddings, rows_are_unit
from ._formats import load_matrix, load_pairs, load_strings
from ._meta import StoreMeta
from ._writer import check_same_model, read_manifest_file, write_store


def _fingerprint(*arrays: np.ndarray | None) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        if a is not None:
            digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


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
    """
    out = Path(out)
    if image is None and text is None:
        raise InputError("nothing to import; pass image=FILE and/or text=FILE (or arrays)")
    arrays: dict[str, np.ndarray | None] = {}
    sources = []
    for name, spec in (("image", image), ("text", text)):
        if spec is None:
            arrays[name] = None
            continue
        if isinstance(spec, np.ndarray):
            arrays[name] = check_embeddings(spec, f"{name} embeddings", dtype=None)
        else:
            arrays[name] = check_embeddings(
                load_matrix(spec, f"{name} embeddings"), f"{name} embeddings in {spec}", dtype=None,
                slice_hint="select one slice with FILE:0 (or FILE:key)",
            )
        sources.append(f"{name}={'<array>' if isinstance(spec, np.ndarray) else spec}")
    img, txt = arrays["image"], arrays["text"]
    if img is not None and txt is not None and img.shape[1] != txt.shape[1]:
        raise InputError(
            f"image embeddings have dimension {img.shape[1]} but text embeddings {txt.shape[1]}; "
            "both modalities must come from the same model"
        )
    dim = (img if img is not None else txt).shape[1]
    n_img = 0 if img is None else len(img)
    n_txt = 0 if txt is None else len(txt)

    if txt is not None and img is not None:
        if pairs is not None:
            index = load_pairs(pairs, n_img, n_txt) if not isinstance(pairs, np.ndarray) else np.asarray(pairs, np.int64)
        elif n_img == n_txt:
            index = np.arange(n_txt)
        else:
            raise InputError(
                f"{n_img} image rows and {n_txt} text rows cannot pair row by row; "
                "pass pairs=FILE mapping text rows to image rows (or an index array)"
            )
        if len(index) != n_txt or (len(index) and (index.min() < -1 or index.max() >= n_img)):
            raise InputError(f"pairs must give one image row in [-1, {n_img}) per text row")
    else:
        index = np.full(n_txt, -1, dtype=np.int64)

    caption_list = None
    if captions is not None and txt is not None:
        caption_list = list(captions) if isinstance(captions, list) else load_strings(captions, "captions", n_txt)
        if len(caption_list) != n_txt:
            raise InputError(f"{len(caption_list)} captions for {n_txt} text rows; give one per row")
    path_list = None
    if image_paths is not None and img is not None:
        path_list = list(image_paths) if isinstance(image_paths, list) else load_strings(image_paths, "image paths", n_img)
        if len(path_list) != n_img:
            raise InputError(f"{len(path_list)} image paths for {n_img} image rows; give one per row")

    present = [a for a in (img, txt) if a is not None]
    if store_dtype is None:
        store_dtype = "float16" if all(a.dtype == np.float16 for a in present) else "float32"
    normalized = all(rows_are_unit(a) for a in present)
    meta = StoreMeta(
        model=model_name,
        dim=dim,
        pretrained=pretrained,
        store_dtype=store_dtype,
        normalized=normalized,
        source=source or ", ".join(sources),
        fingerprint=_fingerprint(img, txt, index),
        **provenance({"import": {"image": str(image) if not isinstance(image, np.ndarray) else "<array>",
                                 "text": str(text) if not isinstance(text, np.ndarray) else "<array>",
                                 "pairs": None if pairs is None or isinstance(pairs, np.ndarray) else str(pairs)}}),
    )

    if out.exists():
        if not out.is_dir():
            raise StoreError(f"{out} is a file, not a directory; choose a directory for the store")
        if any(out.iterdir()):
            manifest = read_manifest_file(out)
            if manifest is None:
                raise StoreError(f"{out} is not empty and holds no clipgeo store; choose an empty or new directory")
            check_same_model(StoreMeta.from_dict(manifest["meta"]), meta, out)
            if not overwrite:
                raise StoreError(f"{out} already holds a store of {meta.model_id}; pass overwrite=True to replace it")

    image_ids = [str(i) for i in range(n_img)]
    aside: Path | None = None  # the store being replaced, kept until the new one is in place
    try:
        with atomic_dir(out) as tmp:
            write_store(
                tmp,
                meta,
                image=img,
                text=txt,
                image_ids=image_ids if img is not None else None,
                image_paths=path_list,
                captions=caption_list,
                text_image_ids=[image_ids[i] if i >= 0 else None for i in index] if txt is not None else None,
                shard_rows=shard_rows,
                summary={"n_image": n_img, "n_text": n_txt, "n_pairs": int((index >= 0).sum())},
            )
            if out.exists():
                aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent)) / "store"
                os.replace(out, aside)
    except BaseException:
        if aside is not None and aside.exists() and not out.exists():
            os.replace(aside, out)  # the new store did not land: put the old one back
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside.parent, ignore_errors=True)
    return out
