"""The options of an extraction (what ``clipgeo extract`` parses into), checked once; no torch here."""

from __future__ import annotations

from dataclasses import dataclass

from .. import runtime
from ..errors import InputError

__all__ = ["DECODE_MODES", "ExtractOptions"]

DECODE_MODES = ("pil", "draft", "torchvision", "device")


@dataclass
class ExtractOptions:
    """Everything ``clipgeo extract`` can be told, with its defaults.

    Attributes
    ----------
    model, pretrained, checkpoint
        Weights (see :func:`clipgeo.models.load_model`): OpenAI's ViT-B-32 by
        default; ``pretrained=None`` means ``"openai"``, or ``"none"`` when a
        ``checkpoint`` is given; ``pretrained="none"`` without a checkpoint is
        random initialisation from ``seed``.
    batch_size : int
        Records per image batch and captions per text batch.
    num_workers : int or None
        DataLoader worker processes; None = one less than the CPUs available
        to this process (at least 1, at most 8).  0 decodes in the main process.
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}
        See :func:`clipgeo.runtime.resolve_device`.
    precision : {"fp32", "fp16", "bf16", "auto"}
        Compute precision: fp32 weights, autocast to float16/bfloat16 for fp16/bf16
        (``auto``: fp16 on CUDA); see :mod:`clipgeo.runtime`.
    store_dtype : {"float32", "float16"}
    limit : int or None
        Only the first ``limit`` records of the source.
    seed : int
        Seeds the random initialisation (``pretrained="none"``).
    shard_size : int
        Records per shard: the unit of resumption and of multi-process work.
    trim_text : bool
        Run the text tower only up to each batch's longest caption (same
        features; falls back to ``encode_text`` where not valid).
    decode : {"pil", "draft", "torchvision", "device"}
        ``pil``: PIL decoding and open_clip's own preprocessing, exactly.
        ``draft``: PIL lets libjpeg decode large JPEGs at 1/2, 1/4 or 1/8
        scale (never below the model's image size).  ``torchvision``: JPEGs
        decoded by ``torchvision.io.decode_jpeg`` (libjpeg-turbo) and resized
        as tensors in the workers.  ``device``: JPEGs decoded in batches on the
        model's device (nvJPEG on CUDA) and resized there.  The last three are
        faster and give pixels (hence features) slightly different from
        ``pil``; other formats and odd JPEGs always go through PIL.
    max_pixels : int or None
        Decompression-bomb guard (default: PIL's limit, ~89 M pixels).
    decode_timeout : float
        Seconds after which one image is skipped as ``decode_timeout``.
    progress : bool or None
        Show a progress bar (None: when stderr is a terminal).
    """

    model: str = "ViT-B-32"
    pretrained: str | None = None
    checkpoint: str | None = None
    batch_size: int = 64
    num_workers: int | None = None
    device: str = "auto"
    precision: str = "fp32"
    store_dtype: str = "float32"
    limit: int | None = None
    seed: int = 0
    shard_size: int = 2048
    trim_text: bool = True
    decode: str = "pil"
    max_pixels: int | None = None
    decode_timeout: float = 30.0
    progress: bool | None = None

    def validate(self) -> None:
        """Check every option once, with a one-line message naming the parameter and the fix."""
        from ..store._meta import STORE_DTYPES
        from ..validation import check_count

        check_count(self.batch_size, "batch_size")
        if self.num_workers is not None:
            check_count(self.num_workers, "num_workers", minimum=0)
        if self.device not in runtime.DEVICES and not self.device.startswith("cuda:"):
            raise InputError(f"unknown device={self.device!r}; use one of {', '.join(runtime.DEVICES)} or cuda:N")
        runtime.resolve_precision(self.precision)
        if self.store_dtype not in STORE_DTYPES:
            raise InputError(f"unknown store_dtype={self.store_dtype!r}; use one of {', '.join(STORE_DTYPES)}")
        if self.limit is not None:
            check_count(self.limit, "limit")
        check_count(self.shard_size, "shard_size")
        if self.decode not in DECODE_MODES:
            raise InputError(f"unknown decode={self.decode!r}; use one of {', '.join(DECODE_MODES)}")
        if self.max_pixels is not None:
            check_count(self.max_pixels, "max_pixels")
