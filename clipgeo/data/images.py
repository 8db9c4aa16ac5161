"""Robust image decoding: every input gives an RGB image or a named reason to skip it.

:func:`load_image` never raises on a bad sample and never waits forever on one.
The reasons it returns are the stable strings in :data:`SKIP_REASONS`; the
extractor records them in the store manifest and counts them in its summary.

Conversions (documented choices)
--------------------------------
- ``RGB`` is returned as it is; ``L``, ``1``, ``P`` (opaque), ``CMYK``,
  ``YCbCr``, ``LAB``, ``HSV`` go through ``Image.convert("RGB")``.
- Anything with transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a
  transparency entry, premultiplied modes) is composited over white.
- 16- and 32-bit integer images (``I;16*``, ``I``) are clipped to
  ``[0, 65535]`` and scaled to 8 bits (``round(v / 257)``), so a 16-bit
  photograph keeps its tones instead of saturating to white; float images
  (``F``) are clipped to ``[0, 255]``.
- EXIF orientation is *not* applied, as in open_clip's own preprocessing, so
  embeddings match a plain ``Image.open(path).convert("RGB")`` pipeline.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import struct
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SKIP_REASONS", "load_image", "to_rgb"]

#: reason -> what it means (the values are what ``clipgeo extract`` prints)
SKIP_REASONS: dict[str, str] = {
    "missing_file": "the image file does not exist",
    "empty_file": "the image file has zero bytes",
    "not_an_image": "the file is not in an image format PIL can read",
    "truncated_image": "the image data ends early (a partial download or copy)",
    "too_large": "more pixels than the decompression-bomb guard allows",
    "decode_error": "PIL could not decode the image",
    "decode_timeout": "decoding took longer than the time limit",
    "empty_caption": "the caption is missing or blank",
}


class _DecodeTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_DecodeTimeout` after ``seconds`` (main thread on POSIX only; else no limit)."""
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise _DecodeTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def to_rgb(image):
    """Convert a decoded ``PIL.Image`` of any mode to RGB (see the module notes)."""
    import numpy as np
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I"):  # I, I;16, I;16B, I;16L, I;16N
        values = np.asarray(image, dtype=np.float64)
        values = np.clip(values, 0, 65535) / 257.0
        return Image.fromarray(np.round(values).astype(np.uint8), "L").convert("RGB")
    if mode == "F":
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 255)
        return Image.fromarray(np.round(values).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _classify(exc: BaseException) -> str:
    text = str(exc).lower()
    if "truncated" in text or "broken data stream" in text or "premature end" in text:
        return "truncated_image"
    return "decode_error"


def load_image(
    source: str | os.PathLike | bytes | Any,
    *,
    max_pixels: int | None = None,
    draft_size: int | None = None,
    timeout: float | None = 30.0,
):
    """Decode one image to RGB, or say why it cannot be used.

    Parameters
    ----------
    source : path, bytes or PIL.Image
        A file path, the encoded bytes of an image file, or an already decoded
        ``PIL.Image``.
    max_pixels : int, optional
        Decompression-bomb guard: images with more than this many pixels
        (width × height, read from the header before decoding) are skipped
        as ``too_large``.  Default: PIL's ``Image.MAX_IMAGE_PIXELS``.
    draft_size : int, optional
        For JPEGs, let the decoder work at a reduced scale (1/2, 1/4 or 1/8)
        as long as both sides stay at least ``draft_size`` pixels.  Much
        faster on large photographs; pixels differ slightly from a full decode.
    timeout : float, optional
        Seconds after which decoding is abandoned as ``decode_timeout`` (only
        enforced in a process's main thread on POSIX, e.g. DataLoader workers).

    Returns
    -------
    image : PIL.Image.Image in mode "RGB", or None
    reason : str or None
        None when ``image`` is returned, else a key of :data:`SKIP_REASONS`.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        try:
            return to_rgb(source), None
        except Exception:
            return None, "decode_error"
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            return None, "empty_file"
        opener: Any = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            return None, "missing_file"
        except OSError:
            return None, "decode_error"
        if not path.is_file():
            return None, "missing_file"
        if size == 0:
            return None, "empty_file"
        opener = path
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else int(max_pixels)
    try:
        with _time_limit(timeout), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                handle = Image.open(opener)
            except UnidentifiedImageError:
                return None, "not_an_image"
            except Image.DecompressionBombError:
                return None, "too_large"
            with handle:
                width, height = handle.size
                if limit is not None and width * height > limit:
                    return None, "too_large"
                if draft_size and handle.format == "JPEG":
                    handle.draft("RGB", (int(draft_size), int(draft_size)))
                handle.load()
                return to_rgb(handle), None
    except _DecodeTimeout:
        return None, "decode_timeout"
    except Image.DecompressionBombError:
        return None, "too_large"
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as exc:
        return None, _classify(exc)
    except MemoryError:
        return None, "too_large"

