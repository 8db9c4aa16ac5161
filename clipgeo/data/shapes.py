"""Captioned shapes: a synthetic image–caption dataset a CPU can learn from.

Each sample is one PIL-drawn shape on a grey background with a templated
caption naming its size, colour, shape and position, e.g. ``"a small red
circle at the top left"``.  The attributes are drawn uniformly from

- shape: circle, square, triangle, diamond, cross (5)
- colour: red, green, blue, yellow, purple, orange (6)
- size: small, large (2)
- position: a 3 × 3 grid, ``top left`` … ``center`` … ``bottom right`` (9)

i.e. 540 distinct captions; the exact centre, radius and background grey are
jittered so images of one caption differ.  Everything is a pure function of
``(seed, index)``: the same seed gives the same attributes, captions and
pixels, image by image, on any machine.

Use it in memory (``CaptionedShapes(n)[i] -> (PIL.Image, caption)``) or write
it as an image folder plus ``captions.csv`` (columns ``file_name,caption``)
that ``clipgeo extract --images DIR --captions FILE`` reads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["COLORS", "POSITIONS", "SHAPES", "SIZES", "CaptionedShapes", "ShapeSpec", "write_shapes"]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 20),
}
SIZES: tuple[str, ...] = ("small", "large")
# (row, column) of the 3 x 3 grid -> the words of the caption
POSITIONS: tuple[str, ...] = (
    "top left", "top center", "top right",
    "middle left", "center", "middle right",
    "bottom left", "bottom center", "bottom right",
)  # fmt: skip
_RADIUS = {"small": (0.07, 0.10), "large": (0.13, 0.16)}  # radius range, fraction of the image side


@dataclass(frozen=True)
class ShapeSpec:
    """Everything needed to draw one sample (coordinates as fractions of the image side)."""

    shape: str
    color: str
    size: str
    position: str
    cx: float
    cy: float
    radius: float
    background: int

    @property
    def caption(self) -> str:
        """The templated caption, e.g. ``"a small red circle at the top left"``."""
        return f"a {self.size} {self.color} {self.shape} at the {self.position}"


def _draw_specs(n: int, seed: int) -> list[ShapeSpec]:
    rng = np.random.default_rng(seed)
    shape = rng.integers(len(SHAPES), size=n)
    color = rng.integers(len(COLORS), size=n)
    size = rng.integers(len(SIZES), size=n)
    position = rng.integers(len(POSITIONS), size=n)
    jitter = rng.uniform(-0.06, 0.06, size=(n, 2))
    radius_u = rng.uniform(size=n)
    background = rng.integers(70, 130, size=n)
    colors = list(COLORS)
    specs = []
    for i in range(n):
        row, col = divmod(int(position[i]), 3)
        lo, hi = _RADIUS[SIZES[size[i]]]
        specs.append(
            ShapeSpec(
                shape=SHAPES[shape[i]],
                color=colors[color[i]],
                size=SIZES[size[i]],
                position=POSITIONS[position[i]],
                cx=(col + 0.5) / 3 + float(jitter[i, 0]),
                cy=(row + 0.5) / 3 + float(jitter[i, 1]),
                radius=lo + (hi - lo) * float(radius_u[i]),
                background=int(background[i]),
            )
        )
    return specs


def draw(spec: ShapeSpec, image_size: int = 64):
    """Render one sample as an RGB ``PIL.Image`` of ``image_size`` × ``image_size`` pixels."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (image_size, image_size), (spec.background,) * 3)
    pen = ImageDraw.Draw(image)
    s = image_size
    cx, cy, r = spec.cx * s, spec.cy * s, spec.radius * s
    fill = COLORS[spec.color]
    if spec.shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif spec.shape == "square":
        h = r * 0.85
        pen.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif spec.shape == "triangle":
        pen.polygon([(cx, cy - r), (cx - r * 0.95, cy + r * 0.8), (cx + r * 0.95, cy + r * 0.8)], fill=fill)
    elif spec.shape == "diamond":
        pen.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=fill)
    elif spec.shape == "cross":
        w = r * 0.35
        pen.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        pen.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(spec.shape)
    return image


class CaptionedShapes(Sequence):
    """``n`` captioned shapes, deterministic by ``seed``.

    Parameters
    ----------
    n : int
        Number of samples (≥ 1).
    seed : int, default 0
        Seed of the attributes, jitter and backgrounds.
    image_size : int, default 64
        Side of the square images in pixels (the model's transform resizes).

    Attributes
    ----------
    specs : list of ShapeSpec, length n
    captions : list of str, length n
    labels : ndarray of shape (n,), int64
        Index of the shape in :data:`SHAPES` (a class label for supervised
        objectives and linear probes).

    Examples
    --------
    >>> data = CaptionedShapes(4, seed=0)
    >>> image, caption = data[0]
    >>> image.size, caption.startswith("a ")
    ((64, 64), True)
    """

    def __init__(self, n: int, seed: int = 0, image_size: int = 64) -> None:
        if int(n) != n or n < 1:
            raise InputError(f"the shapes dataset needs at least 1 sample, got {n!r}; pass --shapes N with N >= 1")
        if image_size < 8:
            raise InputError(f"shape images need at least 8 pixels a side, got image_size={image_size}")
        self.n = int(n)
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.specs = _draw_specs(self.n, self.seed)
        self.captions = [spec.caption for spec in self.specs]
        self.labels = np.array([SHAPES.index(spec.shape) for spec in self.specs], dtype=np.int64)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):  # -> (PIL.Image, str)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.n))]
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} shapes")
        spec = self.specs[index]
        return draw(spec, self.image_size), spec.caption

    def __iter__(self) -> Iterator:
        return (self[i] for i in range(self.n))

    def file_name(self, index: int) -> str:
        """File name of sample ``index`` in a written folder (``shape_000042.png``)."""
        return f"shape_{index:06d}.png"

    def write(self, out_dir: str | Path, indices: Sequence[int] | None = None) -> Path:
        """Write the images and ``captions.csv``; see :func:`write_shapes`."""
        return write_shapes(self, out_dir, indices)

    def __repr__(self) -> str:
        return f"CaptionedShapes(n={self.n}, seed={self.seed}, image_size={self.image_size})"


def write_shapes(data: CaptionedShapes, out_dir: str | Path, indices: Sequence[int] | None = None) -> Path:
    """Write samples as ``out_dir/images/*.png`` and ``out_dir/captions.csv``.

    Parameters
    ----------
    data : CaptionedShapes
    out_dir : path
        Created if needed.
    indices : sequence of int, optional
        Which samples to write (default all).

    Returns
    -------
    Path
        The ``captions.csv`` written; its ``file_name`` column is relative to
        ``out_dir/images``, so ``clipgeo extract --images out_dir/images
        --captions out_dir/captions.csv`` reads the folder.
    """
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    chosen = range(len(data)) if indices is None else [int(i) for i in indices]
    csv_path = out_dir / "captions.csv"
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "caption"])
        for i in chosen:
            image, caption = data[i]
            name = data.file_name(i)
            image.save(image_dir / name)
            writer.writerow([name, caption])
    os.replace(tmp, csv_path)
    return csv_path
