"""Training data: the held-out split, datasets of tensors, and a resumable epoch sampler.

A *sample source* is any sequence whose item ``i`` is ``(image, caption)``:
``image`` a ``PIL.Image``, a path or encoded bytes, and ``caption`` a string,
e.g. :class:`clipgeo.data.shapes.CaptionedShapes` or the ``pairs()`` view of a
:class:`clipgeo.data.CaptionedSource` (COCO, folder + captions, HF datasets).  It may carry ``captions``
(list of str, avoids decoding images to read them) and ``labels`` (int array,
one class per sample) attributes.

Datasets built here return one dict per sample:

- ``PairDataset``: ``image`` (3, H, W) float, ``text`` (L,) int64 tokens,
  ``index`` (position in the split, 0 … n − 1), ``label`` (−1 when unknown);
- ``ViewsDataset``: ``view1``, ``view2`` (3, H, W) float (two independent
  draws of a random transform), ``index``, ``label``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import InputError

__all__ = ["EpochSampler", "PairDataset", "ViewsDataset", "collate", "load_rgb", "split_heldout"]


def load_rgb(image: Any):
    """A ``PIL.Image`` in RGB from an image, a path or encoded bytes (:func:`clipgeo.data.load_image`).

    Raises
    ------
    InputError
        The image cannot be decoded (a training set must not hold such files).
    """
    from PIL import Image

    if isinstance(image, Image.Image) and image.mode == "RGB":
        return image
    from ..data.images import load_image

    decoded, reason = load_image(image)
    if decoded is None:
        where = str(image) if isinstance(image, (str, Path)) else f"<{type(image).__name__}>"
        raise InputError(f"training image {where} cannot be used ({reason}); remove it from the training data")
    return decoded


def _labels(source: Sequence) -> np.ndarray | None:
    labels = getattr(source, "labels", None)
    return None if labels is None else np.asarray(labels, dtype=np.int64)


def split_heldout(n: int, n_heldout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into training and held-out indices, fixed by ``seed``.

    Returns
    -------
    train, heldout : ndarray of int64
        Disjoint, together ``range(n)``; ``heldout`` has ``n_heldout`` entries,
        both sorted.
    """
    if not 0 <= n_heldout < n:
        raise InputError(f"cannot hold out {n_heldout} of {n} samples; use a smaller heldout or more data")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_heldout:]), np.sort(perm[:n_heldout])


class _Subset(Dataset):
    def __init__(self, source: Sequence, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        labels = _labels(source)
        self.labels = None if labels is None else labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def _label(self, i: int) -> int:
        return -1 if self.labels is None else int(self.labels[i])


class PairDataset(_Subset):
    """Image–caption pairs as tensors.

    Parameters
    ----------
    source : sequence of (image, caption)
    indices : sequence of int
        Which samples of ``source`` form this split.
    transform : callable PIL.Image -> Tensor (3, H, W)
    tokenizer : callable list[str] -> LongTensor (1, L)
    """

    def __init__(self, source: Sequence, indices: Sequence[int], transform: Callable, tokenizer: Callable) -> None:
        super().__init__(source, indices)
        self.transform = transform
        self.tokenizer = tokenizer
        self._tokens: dict[str, torch.Tensor] = {}

    def _tokens_of(self, caption: str) -> torch.Tensor:  # (L,)
        tokens = self._tokens.get(caption)
        if tokens is None:
            tokens = self.tokenizer([caption])[0]
            if len(self._tokens) < 100_000:
                self._tokens[caption] = tokens
        return tokens

    def __getitem__(self, i: int) -> dict[str, Any]:
        image, caption = self.source[int(self.indices[i])]
        return {
            "image": self.transform(load_rgb(image)),
            "text": self._tokens_of(str(caption)),
            "index": i,
            "label": self._label(i),
        }


class ViewsDataset(_Subset):
    """Two random views of each image (captions unused).

    Parameters
    ----------
    source : sequence of (image, caption)
    indices : sequence of int
    transform : callable PIL.Image -> Tensor (3, H, W)
        A random augmentation, applied twice independently.
    transform2 : callable, optional
        Transform of the second view (default: ``transform``).
    """

    def __init__(self, source: Sequence, indices: Sequence[int], transform: Callable, transform2: Callable | None = None):
        super().__init__(source, indices)
        self.transform = transform
        self.transform2 = transform if transform2 is None else transform2

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = load_rgb(self.source[int(self.indices[i])][0])
        return {"view1": self.transform(image), "view2": self.transform2(image), "index": i, "label": self._label(i)}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack a list of sample dicts into a batch dict of tensors."""
    return torch.utils.data.default_collate(items)


class EpochSampler(Sampler[int]):
    """Shuffled sample order of one epoch, split over ranks, resumable mid-epoch.

    The order of epoch ``e`` is a permutation drawn from ``seed`` and ``e``
    only, so any process can regenerate it.  The permutation is cut to a
    multiple of ``batch_size × world_size`` (the tail is dropped, as with
    ``drop_last``); global batch ``k`` is rows ``k·B·W … (k+1)·B·W − 1`` and rank
    ``r`` takes the ``r``-th block of ``B`` of it.

    Parameters
    ----------
    n : int
        Samples in the training split.
    batch_size : int
        Per-rank batch size B.
    seed : int
    rank, world_size : int
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip_batches = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch, and how many of its batches were already trained on."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for a whole epoch, shape (batches_per_epoch · B,)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(self.n, generator=g)
        per_step = self.batch_size * self.world_size
        perm = perm[: self.batches_per_epoch * per_step].view(-1, self.world_size, self.batch_size)
        return perm[:, self.rank, :].reshape(-1)

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)[self.skip_batches * self.batch_size :]
        return iter(order.tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.skip_batches) * self.batch_size
