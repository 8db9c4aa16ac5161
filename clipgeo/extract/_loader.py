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


# -- one record -----------------------------------------------------------------------
@dataclass
class Item:
    """What a worker returns for one record."""

    index: int
    image_id: str | None
    path: str
    image: torch.Tensor | None  # (3, H, W) uint8, or float when the transform was not split
    image_skip: str | None
    caption_ids: list[str]
    captions: list[str]
    tokens: torch.Tensor  # (n_captions_kept, context_length) int64
    truncated: list[bool]
    caption_skips: list[dict[str, Any]] = field(default_factory=list)

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
    """

    def __init__(self, source: CaptionedSource, image_transform: Any, tokenizer: Any, context_length: int,
                 split: bool, load_options: dict[str, Any] | None = None) -> None:
        self.source = source
        self.image_transform = image_transform
        self.tokenizer = tokenizer
        self.context_length = int(context_length)
        self.split = split
        self.load_options = dict(load_options or {})

    def __len__(self) -> int:
        return len(self.source)

    def _image(self, record: Any) -> tuple[torch.Tensor | None, str | None]:
        image, reason = load_image(record.image, **self.load_options)
        if image is None:
            return None, reason
        try:
            out = self.image_transform(image)
        except Exception:  # a transform failing on a decoded image is the image's fault
            return None, "decode_error"
        return (pil_to_uint8(out) if self.split else out), None

    def __getitem__(self, index: int) -> Item:
        record = self.source[index]
        image = reason = None
        if record.image is not None:
            image, reason = self._image(record)
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
        )


# -- batches -------------------------------------------------------------------------------
@dataclass
class Batch:
    """Records of one batch, with the decoded images stacked."""

    items: list[Item]
    images: torch.Tensor | None  # (n_ok, 3, H, W)
    image_rows: list[int]  # positions in ``items`` of the stacked images

    def pin_memory(self) -> Batch:
        if self.images is not None:
            self.images = self.images.pin_memory()
        return self


def collate(items: list[Item]) -> Batch:
    rows = [i for i, item in enumerate(items) if item.image is not None]
    images = torch.stack([items[i].image for i in rows]) if rows else None
    return Batch(items=items, images=images, image_rows=rows)


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
