"""Worker side of the pipeline: decode, resize and tokenise records in DataLoader workers.

Workers return images as ``uint8`` tensors after the PIL part of the model's
preprocessing (resize, crop); the float conversion and normalisation run as
one batched operation on the model's device (:class:`ImageNormalizer`), which
quarters the bytes that cross process boundaries and the host-to-device copy.
The split reproduces open_clip's ``preprocess_val`` bit for bit on CPU.

Batches never straddle a shard (:class:`ShardBatchSampler`): shard ``k``
covers records ``[k * shard_size, (k + 1) * shard_size)`` and is cut into
batches of ``batch_size`` records, so what a batch contains depends on the
data and these two numbers only, never on the worker count.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..data.images import load_image
from ..data.sources import CaptionedSource
from ._text import tokenize

__all__ = ["Batch", "ImageNormalizer", "RecordDataset", "ShardBatchSampler", "collate", "split_preprocess"]


# -- preprocessing split -----------------------------------------------------------
class ImageNormalizer:
    """The tensor half of open_clip's preprocessing: ``uint8 (B, 3, H, W)`` -> normalised float.

    Same operations as ``ToTensor`` + ``Normalize`` (``x.float() / 255``, then
    ``(x - mean) / std``), batched and on any device.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32).div(255)
        return x.sub_(self.mean.to(x.device)).div_(self.std.to(x.device))


def split_preprocess(preprocess: Any) -> tuple[Any, ImageNormalizer | None]:
    """Split a ``Compose`` into its PIL part (for workers) and an :class:`ImageNormalizer`.

    Returns ``(pil_transform, normalizer)``; when the transform is not the
    usual ``[PIL ops…, ToTensor, Normalize]`` chain, ``(preprocess, None)``:
    the workers then run the whole transform and send float tensors.
    """
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    names = [type(s).__name__ for s in steps]
    if len(steps) < 2 or names[-1] != "Normalize" or names[-2] not in ("ToTensor", "MaybeToTensor"):
        return preprocess, None
    pil_steps = steps[:-2]
    if any(isinstance(s, (T.Normalize, T.ToTensor)) for s in pil_steps):
        return preprocess, None
    normalize = steps[-1]
    return T.Compose(pil_steps), ImageNormalizer(normalize.mean, normalize.std)


def pil_to_uint8(image: Any) -> torch.Tensor:
    """RGB ``PIL.Image`` -> ``uint8`` tensor of shape (3, H, W)."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def tensor_resize(pil_transform: Any) -> Any | None:
    """The resize/crop steps of the worker transform, applied to ``uint8`` tensors (for torchvision decoding).

    torchvision's ``Resize`` and ``CenterCrop`` accept tensors as well as PIL
    images; returns None when the transform holds anything else (then only
    PIL decoding is possible for this model).
    """
    from torchvision import transforms as T

    steps = list(getattr(pil_transform, "transforms", [pil_transform]))
    kept = []
    for step in steps:
        if isinstance(step, (T.Resize, T.CenterCrop)):
            kept.append(step)
        elif type(step).__name__ != "MaybeConvertMode":  # a no-op on RGB tensors
            return None
    return T.Compose(kept)


def _is_whole_jpeg(data: bytes) -> bool:
    """A JPEG stream with its end-of-image marker (trailing zero padding allowed)."""
    return data[:3] == b"\xff\xd8\xff" and data.rstrip(b"\x00")[-2:] == b"\xff\xd9"


def _read_bytes(image: Any) -> tuple[bytes | None, str | None]:
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        try:
            with open(image, "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None, "missing_file"
        except OSError:
            return None, "decode_error"
    return (data, None) if data else (None, "empty_file")


# -- one record -----------------------------------------------------------------------
@dataclass
class Item:
    """What a worker returns for one record."""

    index: int
    image_id: str | None
    path: str
    image: torch.Tensor | None  # (3, H, W) uint8 (float when the transform was not split), or JPEG bytes (1-D)
    image_skip: str | None
    caption_ids: list[str]
    captions: list[str]
    tokens: torch.Tensor  # (n_captions_kept, context_length) int64
    truncated: list[bool]
    caption_skips: list[dict[str, Any]] = field(default_factory=list)
    encoded: bool = False  # ``image`` holds JPEG bytes for the model's device to decode
    has_image: bool = False  # an embedding row will be written for this image

    def __post_init__(self) -> None:
        self.has_image = self.image is not None

    @property
    def pairs(self) -> int:
        """Image–caption pairs this record stands for: its caption count, at least 1."""
        return max(1, len(self.captions) + len(self.caption_skips))


class RecordDataset(Dataset):
    """``dataset[i]`` decodes, transforms and tokenises record ``i`` of a source (runs in workers).

    Parameters
    ----------
    source : CaptionedSource
    image_transform : callable PIL -> PIL or tensor
        The worker half of :func:`split_preprocess`.
    tokenizer : open_clip tokenizer
    context_length : int
    split : bool
        True when ``image_transform`` returns PIL images (converted to uint8 here).
    load_options : dict
        Keyword arguments of :func:`clipgeo.data.load_image` (``max_pixels``,
        ``draft_size``, ``timeout``).
    decode : {"pil", "torchvision", "device"}
        ``pil``: :func:`load_image` + the PIL transform (``draft`` is ``pil``
        with a ``draft_size``).  ``torchvision``: whole baseline RGB/gray JPEGs
        are decoded by ``torchvision.io.decode_jpeg`` (libjpeg-turbo) and
        resized as tensors, here in the worker.  ``device``: such JPEGs are
        sent as bytes and decoded in batches on the model's device (nvJPEG on
        CUDA, see :class:`DeviceJpegDecoder`).  Anything else (PNG, CMYK, a
        JPEG without its end marker…) takes the ``pil`` path, which also names
        the reason when an image is unusable.
    resize : callable, optional
        :func:`tensor_resize` of the transform (needed by ``torchvision``/``device``).
    """

    def __init__(self, source: CaptionedSource, image_transform: Any, tokenizer: Any, context_length: int,
                 split: bool, load_options: dict[str, Any] | None = None, decode: str = "pil",
                 resize: Any | None = None) -> None:
        self.source = source
        self.image_transform = image_transform
        self.tokenizer = tokenizer
        self.context_length = int(context_length)
        self.split = split
        self.load_options = dict(load_options or {})
        self.decode = decode if (resize is not None and split) else "pil"
        self.resize = resize

    def __len__(self) -> int:
        return len(self.source)

    def _image(self, record: Any) -> tuple[torch.Tensor | None, str | None, bool]:
        """(image, skip reason, encoded): a uint8 tensor, JPEG bytes to decode later, or a reason."""
        if self.decode != "pil" and not _is_pil(record.image):
            data, reason = _read_bytes(record.image)
            if data is None:
                return None, reason, False
            if _plain_jpeg(data, self.load_options.get("max_pixels")):
                raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
                if self.decode == "device":
                    return raw, None, True
                try:
                    from torchvision.io import ImageReadMode, decode_jpeg

                    return self.resize(decode_jpeg(raw, mode=ImageReadMode.RGB)), None, False
                except Exception:
                    pass  # let PIL decode it, or name what is wrong with it
            source = data
        else:
            source = record.image
        image, reason = load_image(source, **self.load_options)
        if image is None:
            return None, reason, False
        try:
            out = self.image_transform(image)
        except Exception:  # a transform failing on a decoded image is the image's fault
            return None, "decode_error", False
        return (pil_to_uint8(out) if self.split else out), None, False

    def __getitem__(self, index: int) -> Item:
        record = self.source[index]
        image = reason = None
        encoded = False
        if record.image is not None:
            image, reason, encoded = self._image(record)
        kept_ids, kept, skips = [], [], []
        for cid, caption in zip(record.caption_ids, record.captions, strict=True):
            if caption is None or not caption.strip():
                skips.append({"id": cid, "reason": "empty_caption", "image_id": record.image_id})
            else:
                kept_ids.append(cid)
                kept.append(caption)
        tokens, truncated = tokenize(self.tokenizer, kept, self.context_length)
        return Item(
            index=index,
            image_id=record.image_id,
            path=record.path,
            image=image,
            image_skip=reason,
            caption_ids=kept_ids,
            captions=kept,
            tokens=tokens,
            truncated=truncated,
            caption_skips=skips,
            encoded=encoded,
        )


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.")


def _plain_jpeg(data: bytes, max_pixels: int | None) -> bool:
    """A whole JPEG, RGB or grayscale, within the pixel limit: safe for decode_jpeg."""
    if not _is_whole_jpeg(data):
        return False
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as handle:
            width, height = handle.size
            limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
            return handle.format == "JPEG" and handle.mode in ("RGB", "L") and (limit is None or width * height <= limit)
    except Exception:
        return False


# -- batches -------------------------------------------------------------------------------
@dataclass
class Batch:
    """Records of one batch, with the decoded images stacked."""

    items: list[Item]
    images: torch.Tensor | None  # (n_decoded, 3, H, W)
    image_rows: list[int]  # positions in ``items`` of the stacked images
    encoded_rows: list[int] = field(default_factory=list)  # positions of items holding JPEG bytes

    def pin_memory(self) -> Batch:
        if self.images is not None:
            self.images = self.images.pin_memory()
        return self


def collate(items: list[Item]) -> Batch:
    rows = [i for i, item in enumerate(items) if item.image is not None and not item.encoded]
    encoded = [i for i, item in enumerate(items) if item.image is not None and item.encoded]
    images = torch.stack([items[i].image for i in rows]) if rows else None
    return Batch(items=items, images=images, image_rows=rows, encoded_rows=encoded)


class DeviceJpegDecoder:
    """Decode a batch's JPEG bytes on the model's device and resize them there.

    ``torchvision.io.decode_jpeg`` takes the whole list at once (nvJPEG's batched
    decoder on CUDA).  If the batch call fails, images are decoded one by one;
    one that still fails is decoded by PIL on the host, which names the reason
    when it is unusable.
    """

    def __init__(self, resize: Any, pil_transform: Any, load_options: dict[str, Any]) -> None:
        self.resize = resize
        self.pil_transform = pil_transform
        self.load_options = load_options

    def __call__(self, batch: Batch, device: Any) -> torch.Tensor | None:
        """Images of ``batch`` as one uint8 tensor (n, 3, S, S) on ``device``, in item order.

        Items whose image turns out unusable get ``has_image = False`` and an
        ``image_skip`` reason; ``item.image`` is released for every item.
        """
        from torchvision.io import ImageReadMode, decode_jpeg

        decoded: dict[int, torch.Tensor] = {}
        if batch.images is not None:
            on_device = batch.images.to(device, non_blocking=True)
            decoded.update({row: on_device[j] for j, row in enumerate(batch.image_rows)})
        rows = batch.encoded_rows
        if rows:
            data = [batch.items[r].image for r in rows]
            try:
                images = [self.resize(x) for x in decode_jpeg(data, mode=ImageReadMode.RGB, device=device)]
            except Exception:
                images = [self._one(batch.items[r], d, device) for r, d in zip(rows, data, strict=True)]
            for row, image in zip(rows, images, strict=True):
                if image is not None:
                    decoded[row] = image
        for row, item in enumerate(batch.items):
            item.image = None
            item.has_image = row in decoded
        if not decoded:
            return None
        return torch.stack([decoded[row] for row in sorted(decoded)])

    def _one(self, item: Item, data: torch.Tensor, device: Any) -> torch.Tensor | None:
        """One image, resized: on the device if it decodes there, else through PIL (or a skip reason)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return self.resize(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
        except Exception:
            image, reason = load_image(data.numpy().tobytes(), **self.load_options)
            if image is None:
                item.image_skip = reason or "decode_error"
                return None
            try:
                return pil_to_uint8(self.pil_transform(image)).to(device)
            except Exception:
                item.image_skip = "decode_error"
                return None


class ShardBatchSampler(Sampler):
    """Batches of record indices, shard by shard, never crossing a shard boundary.

    Parameters
    ----------
    n_records, shard_size, batch_size : int
    shards : sequence of int
        The shard numbers to visit, in this order (e.g. a rank's unfinished shards).
    """

    def __init__(self, n_records: int, shard_size: int, batch_size: int, shards: Sequence[int]) -> None:
        self.n_records, self.shard_size, self.batch_size = n_records, shard_size, batch_size
        self.shards = list(shards)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.n_records))

    def __iter__(self) -> Iterator[list[int]]:
        for shard in self.shards:
            span = self.shard_range(shard)
            for start in range(span.start, span.stop, self.batch_size):
                yield list(range(start, min(start + self.batch_size, span.stop)))

    def __len__(self) -> int:
        return sum(-(-len(self.shard_range(k)) // self.batch_size) for k in self.shards)


def worker_init(_: int) -> None:
    """DataLoader workers decode and tokenise: one thread each is enough."""
    torch.set_num_threads(1)
