"""Captioned image collections as a deterministic sequence of :class:`Record`.

Four constructors turn what users have on disk into the same shape:

- :func:`coco` — MS-COCO captions json + image folder;
- :func:`folder` — image folder + CSV/JSONL with ``file_name`` and ``caption``;
- :func:`hf_dataset` — a Hugging Face ``datasets`` hub id or a local
  parquet / json / csv file or folder (``imagefolder`` included);
- :func:`texts` — captions only (a ``.txt`` file, one per line, or CSV/JSONL).

A source only *describes* the data: nothing is decoded or tokenised here, so
building one for 100k images costs a directory listing and one read of the
caption file.  Decoding is :func:`clipgeo.data.images.load_image`.

Messages name the parameters as a Python call writes them (``captions_json='a.json' does not
exist``); :func:`clipgeo.data.open_source` passes its own names (``coco_captions``), which the
command line shows as its flags (``--coco-captions``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import InputError

__all__ = [
    "CAPTIONS_PER_IMAGE",
    "IMAGE_SUFFIXES",
    "CaptionedSource",
    "PairsView",
    "Record",
    "coco",
    "folder",
    "hf_dataset",
    "texts",
]

CAPTIONS_PER_IMAGE = ("all", "first")
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".jfif"}
)


@dataclass(frozen=True)
class Record:
    """One image with its captions (or one caption alone).

    Attributes
    ----------
    image_id : str or None
        Unique id of the image within the source; None for a text-only record.
    image : str, bytes or None
        Where the pixels are: a file path, the encoded file bytes (Hugging Face
        datasets), or None for a text-only record.
    path : str
        What the store's ``path`` column shows for this image ("" if unknown).
    captions : tuple of (str or None)
        The captions of this image, in source order; None or blank entries are
        kept so that the extractor can record them as skipped.
    caption_ids : tuple of str
        One unique id per caption (same length as ``captions``).
    """

    image_id: str | None
    image: str | bytes | None
    path: str
    captions: tuple[str | None, ...]
    caption_ids: tuple[str, ...]


class CaptionedSource(Sequence):
    """A deterministic, indexable sequence of :class:`Record`.

    ``len(source)`` records, ``source[i]`` the i-th (same order on every run
    and machine), ``source.fingerprint`` a hash of the source's identity and
    content listing (ids, paths, captions) that changes when the data does.
    Sources are picklable, so DataLoader workers can index them.

    Attributes
    ----------
    kind : str
        ``"coco"``, ``"folder"``, ``"hf"`` or ``"texts"``.
    description : str
        Human-readable origin (paths or dataset id), stored as the store's ``source``.
    has_images : bool
        False for text-only sources.
    """

    kind: str = ""
    description: str = ""
    has_images: bool = True

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def head(self, n: int | None) -> CaptionedSource:
        """The first ``n`` records (all of them when ``n`` is None or larger)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise InputError(f"head(n) keeps the first n records; n must be at least 1, got {n}")
        return _Head(self, int(n))

    def pairs(self) -> PairsView:
        """One ``(image, caption)`` item per image–caption pair (for training)."""
        return PairsView(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.description!r}: {len(self)} records>"


class _ListSource(CaptionedSource):
    def __init__(self, kind: str, description: str, records: list[Record], has_images: bool = True) -> None:
        self.kind = kind
        self.description = description
        self.has_images = has_images
        self._records = records
        digest = hashlib.sha256(kind.encode())
        for r in records:
            digest.update(json.dumps([r.image_id, r.path, r.captions, r.caption_ids]).encode())
        self._fingerprint = digest.hexdigest()

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._records[i] for i in range(*index.indices(len(self)))]
        return self._records[index]

    @property
    def fingerprint(self) -> str:
        return self._fingerprint


class _Head(CaptionedSource):
    def __init__(self, base: CaptionedSource, n: int) -> None:
        self.base, self.n = base, n
        self.kind, self.has_images = base.kind, base.has_images
        self.description = f"{base.description} (first {n})"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.base[i] for i in range(*index.indices(self.n))]
        if not -self.n <= index < self.n:
            raise IndexError(index)
        return self.base[index % self.n]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(f"{self.base.fingerprint}:head{self.n}".encode()).hexdigest()


class PairsView(Sequence):
    """``(image, caption)`` pairs of a source: item ``i`` is one image with one of its captions.

    ``image`` is what :attr:`Record.image` holds (a path or encoded bytes);
    decode it with :func:`clipgeo.data.images.load_image`.  Records without an
    image or with a blank caption are left out.  ``captions`` lists every
    caption without touching an image.
    """

    def __init__(self, source: CaptionedSource) -> None:
        self.source = source
        self._index: list[tuple[int, int]] = []
        self.captions: list[str] = []
        for i in range(len(source)):
            record = source[i]
            if record.image is None:
                continue
            for j, caption in enumerate(record.captions):
                if caption is not None and caption.strip():
                    self._index.append((i, j))
                    self.captions.append(caption)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index):
        i, j = self._index[index]
        record = self.source[i]
        return record.image, record.captions[j]


# -- helpers -----------------------------------------------------------------
#: a caller's names for the parameters, in its messages (``{"captions_json": "coco_captions"}``)
Names = dict[str, str]


def _given(names: Names | None, param: str, value: Any) -> str:
    """``param='value'`` as the caller names ``param`` (the command line shows ``--param value``)."""
    return f"{(names or {}).get(param, param)}={str(value)!r}"


def _check_captions_per_image(value: str) -> str:
    if value not in CAPTIONS_PER_IMAGE:
        raise InputError(f"captions_per_image must be 'all' or 'first', got {value!r}")
    return value


def _existing_dir(path: str | os.PathLike, option: str) -> Path:
    """``path`` if it is a directory; ``option`` is how messages name it (``images_dir='x'``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{option} does not exist; give the folder that holds the images")
    if not path.is_dir():
        raise InputError(f"{option} is a file; give the folder that holds the images")
    return path


def _existing_file(path: str | os.PathLike, option: str) -> Path:
    """``path`` if it is a file; ``option`` is how messages name it (``captions_file='x'``)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{option} does not exist; check the path")
    if not path.is_file():
        raise InputError(f"{option} is a directory; give the file itself")
    return path


def _scan_images(root: Path) -> list[str]:
    """Relative POSIX paths of files with an image suffix under ``root``, sorted (hidden ones skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)


def _clean_caption(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN from a table
        return None
    text = str(value).strip()
    return text or None


def _read_table_rows(path: Path, required: tuple[str, ...], option: str) -> list[dict[str, Any]]:
    """Rows of a CSV/TSV or JSONL/JSON file as dicts; checks the required columns (``option`` names the file)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                rows = list(reader)
                columns = list(reader.fieldnames or [])
        elif suffix in (".jsonl", ".ndjson", ".json"):
            text = path.read_text(encoding="utf-8")
            stripped = text.lstrip()
            if suffix == ".json" and stripped.startswith("["):
                rows = json.loads(text)
            else:
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            if not all(isinstance(r, dict) for r in rows):
                raise InputError(f"{option}: every line must be a JSON object with {', '.join(required)}")
            columns = sorted({k for r in rows for k in r})
        else:
            raise InputError(f"{option}: unknown format {suffix or '(no suffix)'}; use .csv, .tsv or .jsonl")
    except UnicodeDecodeError:
        raise InputError(f"{option} is not UTF-8 text; save it as UTF-8 CSV or JSONL") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{option}: invalid JSON on line {exc.lineno}; write one JSON object per line") from None
    except csv.Error as exc:
        raise InputError(f"{option}: invalid CSV ({exc}); check the quoting") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(
            f"{option} has no column {', '.join(repr(m) for m in missing)} (columns: "
            f"{', '.join(columns) or 'none'}); name the columns {', '.join(required)}"
        )
    return rows


# -- COCO ----------------------------------------------------------------------
def coco(captions_json: str | os.PathLike, images_dir: str | os.PathLike, captions_per_image: str = "all") -> CaptionedSource:
    """MS-COCO captions (``captions_train2017.json`` / ``captions_val2017.json``) with its image folder.

    Parameters
    ----------
    captions_json : path
        COCO captions file: ``images`` (``id``, ``file_name``) and
        ``annotations`` (``id``, ``image_id``, ``caption``).
    images_dir : path
        Folder holding the ``file_name`` of every image.
    captions_per_image : {"all", "first"}
        Keep every caption of an image (in file order) or the first only.

    Returns
    -------
    CaptionedSource
        One record per image, sorted by file name.  Image ids are COCO image
        ids, caption ids COCO annotation ids.  Images in the folder that the
        json does not list become image-only records (id: the file name's
        number for COCO-style names, else the file name); annotations of images
        the json does not list are ignored.
    """
    return _coco(captions_json, images_dir, captions_per_image)


def _coco(captions_json, images_dir, captions_per_image: str, names: Names | None = None) -> CaptionedSource:
    captions_per_image = _check_captions_per_image(captions_per_image)
    path = _existing_file(captions_json, _given(names, "captions_json", captions_json))
    root = _existing_dir(images_dir, _given(names, "images_dir", images_dir)).resolve()
    given = _given(names, "captions_json", path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{given} is not valid JSON; give a COCO captions_*.json file") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
        data.get("annotations"), list
    ):
        raise InputError(
            f"{given} has no 'images' and 'annotations' lists; give a COCO captions_*.json file"
        )
    captions: dict[str, list[tuple[str, str | None]]] = {}
    for ann in data["annotations"]:
        if not isinstance(ann, dict) or "image_id" not in ann:
            continue
        captions.setdefault(str(ann["image_id"]), []).append((str(ann.get("id", "")), _clean_caption(ann.get("caption"))))
    records: dict[str, Record] = {}
    listed_ids: set[str] = set()
    for image in data["images"]:
        if not isinstance(image, dict) or "file_name" not in image or "id" not in image:
            raise InputError(f"{given}: an entry of 'images' lacks 'id' or 'file_name'; fix the file")
        image_id = str(image["id"])
        if image_id in listed_ids:
            raise InputError(f"{given}: image id {image_id} is listed twice; fix the file")
        listed_ids.add(image_id)
        file_name = str(image["file_name"])
        caps = captions.get(image_id, [])
        if captions_per_image == "first":
            caps = caps[:1]
        for j, (ann_id, _) in enumerate(caps):
            if not ann_id:
                caps[j] = (f"{image_id}#{j}", caps[j][1])
        records[file_name] = Record(
            image_id=image_id,
            image=str(root / file_name),
            path=file_name,
            captions=tuple(c for _, c in caps),
            caption_ids=tuple(a for a, _ in caps),
        )
    for name in _scan_images(root):
        if name in records:
            continue
        stem = Path(name).stem
        image_id = str(int(stem)) if stem.isdigit() else name
        if image_id in listed_ids:
            image_id = name
        listed_ids.add(image_id)
        records[name] = Record(image_id=image_id, image=str(root / name), path=name, captions=(), caption_ids=())
    ordered = [records[k] for k in sorted(records)]
    return _ListSource("coco", f"coco:{path.resolve()}:{root.resolve()}:{captions_per_image}", ordered)


# -- image folder + captions file ---------------------------------------------------
def folder(
    images_dir: str | os.PathLike, captions_file: str | os.PathLike | None = None, captions_per_image: str = "all"
) -> CaptionedSource:
    """An image folder with an optional captions table.

    Parameters
    ----------
    images_dir : path
        Folder of images, searched recursively (hidden files skipped).
    captions_file : path, optional
        ``.csv``/``.tsv`` or ``.jsonl`` with columns ``file_name`` (relative to
        ``images_dir``, or absolute) and ``caption``; several rows per image
        allowed.  A listed file that is absent stays a record (the extractor
        skips it as ``missing_file``).
    captions_per_image : {"all", "first"}

    Returns
    -------
    CaptionedSource
        One record per image, sorted by ``file_name``; image ids are the
        ``file_name``, caption ids ``file_name#j`` (j = 0-based caption number).
        Images without a caption are image-only records.
    """
    return _folder(images_dir, captions_file, captions_per_image)


def _folder(images_dir, captions_file, captions_per_image: str, names: Names | None = None) -> CaptionedSource:
    captions_per_image = _check_captions_per_image(captions_per_image)
    root = _existing_dir(images_dir, _given(names, "images_dir", images_dir)).resolve()
    by_name: dict[str, list[str | None]] = {name: [] for name in _scan_images(root)}
    caption_source = ""
    if captions_file is not None:
        table = _existing_file(captions_file, _given(names, "captions_file", captions_file))
        caption_source = str(table.resolve())
        for row in _read_table_rows(table, ("file_name", "caption"), _given(names, "captions_file", table)):
            name = str(row.get("file_name") or "").strip()
            if not name:
                continue
            if Path(name).is_absolute():
                try:
                    name = Path(name).relative_to(root).as_posix()
                except ValueError:
                    pass
            by_name.setdefault(name, []).append(_clean_caption(row.get("caption")))
    if not by_name:
        raise InputError(f"{_given(names, 'images_dir', root)} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))}); check the folder")
    records = []
    for name in sorted(by_name):
        caps = by_name[name][:1] if captions_per_image == "first" else by_name[name]
        image_path = name if Path(name).is_absolute() else str(root / name)
        records.append(
            Record(
                image_id=name,
                image=image_path,
                path=name,
                captions=tuple(caps),
                caption_ids=tuple(f"{name}#{j}" for j in range(len(caps))),
            )
        )
    return _ListSource("folder", f"folder:{root.resolve()}:{caption_source}:{captions_per_image}", records)


# -- captions only -----------------------------------------------------------------
def texts(file: str | os.PathLike) -> CaptionedSource:
    """Captions without images: a ``.txt`` file (one caption per line) or a CSV/JSONL ``caption`` column.

    Caption ids are the 0-based line (or row) numbers; blank lines in a ``.txt``
    file are kept as blank captions so that the extractor records them.
    """
    return _texts(file)


def _texts(file, names: Names | None = None) -> CaptionedSource:
    path = _existing_file(file, _given(names, "file", file))
    given = _given(names, "file", path)
    if path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".ndjson", ".json"):
        values = [_clean_caption(r.get("caption")) for r in _read_table_rows(path, ("caption",), given)]
    else:
        try:
            values = [_clean_caption(line) for line in path.read_text(encoding="utf-8").splitlines()]
        except UnicodeDecodeError:
            raise InputError(f"{given} is not UTF-8 text; save it as UTF-8, one caption per line") from None
    if not values:
        raise InputError(f"{given} holds no captions; write one caption per line")
    records = [Record(image_id=None, image=None, path="", captions=(v,), caption_ids=(str(i),)) for i, v in enumerate(values)]
    return _ListSource("texts", f"texts:{path.resolve()}", records, has_images=False)


# -- Hugging Face datasets ------------------------------------------------------------
_TEXT_COLUMNS = ("caption", "captions", "text", "sentences", "sentences_raw", "txt")
_IMAGE_COLUMNS = ("image", "img", "jpg", "png")


def hub_reachable(url: str | None = None, timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (or ``url``) answers a TCP connection within ``timeout`` seconds.

    Honours ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` (then False).  Behind an
    HTTPS proxy the probe is not meaningful and True is returned.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ).lower() in ("1", "true", "yes"):
        return False
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = url or os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(url)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _caption_list(value: Any) -> list[str | None]:
    if value is None:
        return [None]
    if isinstance(value, str):
        return [_clean_caption(value)]
    if isinstance(value, dict):
        for key in ("raw", "caption", "text"):
            if key in value:
                return [_clean_caption(value[key])]
        return [None]
    if isinstance(value, (list, tuple)):
        out: list[str | None] = []
        for item in value:
            out.extend(_caption_list(item))
        return out
    return [_clean_caption(value)]


class _HFSource(CaptionedSource):
    kind = "hf"

    def __init__(self, dataset: Any, description: str, image_column: str | None, text_column: str | None,
                 captions_per_image: str) -> None:
        self.dataset = dataset
        self.description = description
        self.image_column = image_column
        self.text_column = text_column
        self.captions_per_image = captions_per_image
        self.has_images = image_column is not None
        identity = [description, image_column, text_column, captions_per_image, len(dataset),
                    getattr(dataset, "_fingerprint", None)]
        self._fingerprint = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index = index % len(self)
        row = self.dataset[index]
        image_id = str(index)
        image: str | bytes | None = None
        path = ""
        if self.image_column is not None:
            value = row[self.image_column]
            if isinstance(value, dict):
                image = value.get("bytes") or value.get("path") or b""
                path = value.get("path") or ""
            elif isinstance(value, (bytes, str)):
                image = value
                path = value if isinstance(value, str) else ""
            else:  # already decoded (a PIL image) or None
                image = value if value is not None else b""
        caps = _caption_list(row[self.text_column]) if self.text_column is not None else []
        if self.captions_per_image == "first":
            caps = caps[:1]
        return Record(
            image_id=image_id if self.image_column is not None else None,
            image=image,
            path=path,
            captions=tuple(caps),
            caption_ids=tuple(f"{index}#{j}" for j in range(len(caps))),
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint


def _load_hf(id_or_path: str, split: str, given: str):
    """The split of a dataset; ``given`` is how messages name it (``id_or_path='x'``)."""
    import datasets

    path = Path(id_or_path)
    builders = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".arrow": "arrow"}
    try:
        if path.is_file():
            builder = builders.get(path.suffix.lower())
            if builder is None:
                raise InputError(f"{given}: unknown file type; give a .parquet, .jsonl, .csv or .arrow file or a folder")
            return datasets.load_dataset(builder, data_files={split: str(path)}, split=split)
        if path.is_dir():
            if (path / "dataset_info.json").exists() or (path / "state.json").exists():
                loaded = datasets.load_from_disk(str(path))
                return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
            return datasets.load_dataset(str(path), split=split)
        looks_like_path = (
            id_or_path.startswith((".", "/", "~")) or id_or_path.count("/") > 1 or path.suffix.lower() in builders
        )
        if looks_like_path:
            raise InputError(f"{given} does not exist; give a local file or folder or a hub id")
        if not hub_reachable():
            raise InputError(
                f"cannot reach the Hugging Face hub to fetch dataset {id_or_path!r} (no network?); download it on a "
                "machine with network (datasets save_to_disk or parquet files) and pass its local path instead"
            )
        return datasets.load_dataset(id_or_path, split=split)
    except InputError:
        raise
    except ValueError as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        if "split" in first.lower():
            raise InputError(f"{given}: {first}; pass split=NAME with a split it has") from None
        raise InputError(f"{given} could not be loaded ({first}); check the path or id") from None
    except Exception as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise InputError(
            f"{given} could not be loaded ({type(exc).__name__}: {first}); check the path, the id and split"
        ) from None


def hf_dataset(
    id_or_path: str,
    split: str = "train",
    image_column: str | None = None,
    text_column: str | None = None,
    captions_per_image: str = "all",
) -> CaptionedSource:
    """A Hugging Face ``datasets`` split: a hub id (needs network) or a local file/folder.

    Parameters
    ----------
    id_or_path : str
        Hub id (``"nlphuji/mscoco_2014_5k_test_image_text_retrieval"``), a
        ``save_to_disk`` folder, an ``imagefolder`` (images + ``metadata.csv``),
        or a ``.parquet`` / ``.jsonl`` / ``.csv`` file.
    split : str
        Split to read (a single local file is named by this split).
    image_column, text_column : str, optional
        Defaults: the first column of type ``Image`` (else ``image``…) and the
        first of ``caption``, ``captions``, ``text``, ``sentences``.  A text
        column may hold a string or a list of strings (several captions).
    captions_per_image : {"all", "first"}

    Returns
    -------
    CaptionedSource
        One record per dataset row, in row order; image ids are row numbers,
        caption ids ``row#j``.  Images stay encoded (bytes or paths) until the
        extractor's workers decode them.
    """
    return _hf_dataset(id_or_path, split, image_column, text_column, captions_per_image)


def _hf_dataset(id_or_path, split: str, image_column: str | None, text_column: str | None, captions_per_image: str,
                names: Names | None = None) -> CaptionedSource:
    captions_per_image = _check_captions_per_image(captions_per_image)
    given = _given(names, "id_or_path", id_or_path)
    dataset = _load_hf(str(id_or_path), split, given)
    try:
        import datasets

        features = dataset.features
        columns = list(dataset.column_names)
    except AttributeError:
        raise InputError(f"{given} is not a single split; pass split=NAME") from None
    if image_column is None:
        typed = [c for c in columns if isinstance(features[c], datasets.Image)]
        named = [c for c in _IMAGE_COLUMNS if c in columns]
        image_column = (typed or named or [None])[0]
    elif image_column not in columns:
        raise InputError(f"image_column={image_column!r} is not in the dataset (columns: {', '.join(columns)})")
    if text_column is None:
        text_column = next((c for c in _TEXT_COLUMNS if c in columns), None)
    elif text_column not in columns:
        raise InputError(f"text_column={text_column!r} is not in the dataset (columns: {', '.join(columns)})")
    if image_column is None and text_column is None:
        raise InputError(
            f"{given} has no image or caption column (columns: {', '.join(columns)}); "
            "name them with image_column=NAME and text_column=NAME"
        )
    if image_column is not None and isinstance(features[image_column], datasets.Image):
        dataset = dataset.cast_column(image_column, datasets.Image(decode=False))
    keep = [c for c in (image_column, text_column) if c is not None]
    dataset = dataset.select_columns(keep)
    description = f"hf:{Path(id_or_path).resolve() if Path(id_or_path).exists() else id_or_path}:{split}"
    return _HFSource(dataset, description, image_column, text_column, captions_per_image)
