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
``(seed, index)`` and the options: the same seed gives the same attributes, captions and
pixels, image by image, on any machine.

Three options make the data more like the web pairs CLIP learns from (the ingredients the
geometry study, :mod:`clipgeo.train.study`, tests); at their defaults the data is exactly
the plain one above:

- ``describe`` (information asymmetry, the caption side): each caption names each of the
  four attributes with probability ``describe`` (at least one), e.g. ``"a red shape"``,
  ``"a circle at the top left"``; the image always shows all four;
- ``undescribed_marks`` (information asymmetry, the image side): that many extra small
  marks (a random colour and shape at a random place) in every image, which no caption
  mentions;
- ``long_tail`` (frequent content): attribute value k of each attribute is drawn with
  probability ∝ (k + 1)^−long_tail instead of uniformly (values in the order of
  :data:`SHAPES`, :data:`COLORS`, :data:`SIZES`, :data:`POSITIONS`), so a few captions recur
  often ("a small red circle at the top left") and most are rare.

Use it in memory (``CaptionedShapes(n)[i] -> (PIL.Image, caption)``) or write
it as an image folder plus ``captions.csv`` (columns ``file_name,caption``)
that ``clipgeo extract --images DIR --captions FILE`` reads.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_path
from ..errors import InputError
from ..validation import check_count, check_positive, check_scalar

__all__ = ["ATTRIBUTES", "COLORS", "POSITIONS", "SHAPES", "SIZES", "CaptionedShapes", "ShapeSpec", "write_shapes"]

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
_MARK_RADIUS = (0.03, 0.045)  # undescribed marks: smaller than any small shape
#: the attributes a caption can name, in caption order
ATTRIBUTES: tuple[str, ...] = ("size", "color", "shape", "position")


@dataclass(frozen=True)
class Mark:
    """An extra mark drawn in the image that the caption does not mention (fractions of the image side)."""

    shape: str
    color: str
    cx: float
    cy: float
    radius: float


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
    named: tuple[str, ...] = ATTRIBUTES
    marks: tuple[Mark, ...] = ()

    @property
    def caption(self) -> str:
        """The templated caption of the ``named`` attributes, e.g. ``"a small red circle at the top left"``.

        An unnamed shape is called ``"shape"`` (``"a small red shape"``); an unnamed size,
        colour or position is left out.
        """
        words = [getattr(self, a) for a in ("size", "color") if a in self.named]
        words.append(self.shape if "shape" in self.named else "shape")
        where = f" at the {self.position}" if "position" in self.named else ""
        article = "an" if words[0][0] in "aeiou" else "a"  # the plain captions always start "a small/large"
        return f"{article} {' '.join(words)}{where}"


def tail_probabilities(k: int, exponent: float) -> np.ndarray:
    """Probabilities ∝ (i + 1)^−exponent of values i = 0 … k − 1 (uniform for exponent 0). Shape (k,)."""
    p = np.arange(1, k + 1, dtype=np.float64) ** -float(exponent)
    return p / p.sum()


def _draw_specs(n: int, seed: int, describe: float = 1.0, undescribed_marks: int = 0,
                long_tail: float = 0.0) -> list[ShapeSpec]:
    rng = np.random.default_rng(seed)

    def values(k: int) -> np.ndarray:
        if long_tail == 0:
            return rng.integers(k, size=n)  # the plain data's draws, unchanged
        return rng.choice(k, size=n, p=tail_probabilities(k, long_tail))

    shape = values(len(SHAPES))
    color = values(len(COLORS))
    size = values(len(SIZES))
    position = values(len(POSITIONS))
    jitter = rng.uniform(-0.06, 0.06, size=(n, 2))
    radius_u = rng.uniform(size=n)
    background = rng.integers(70, 130, size=n)
    colors = list(COLORS)
    # the options draw from a stream of their own, so the plain data's draws never change
    extra = np.random.default_rng(np.random.SeedSequence([int(seed), 14]))
    named = np.ones((n, len(ATTRIBUTES)), dtype=bool)
    if describe < 1.0:
        named = extra.uniform(size=(n, len(ATTRIBUTES))) < describe
        none = ~named.any(axis=1)
        named[none, extra.integers(len(ATTRIBUTES), size=int(none.sum()))] = True  # name at least one
    m = int(undescribed_marks)
    mark_shape = extra.integers(len(SHAPES), size=(n, m))
    mark_color = extra.integers(len(COLORS), size=(n, m))
    mark_xy = extra.uniform(0.08, 0.92, size=(n, m, 2))
    mark_r = extra.uniform(*_MARK_RADIUS, size=(n, m))
    specs = []
    for i in range(n):
        row, col = divmod(int(position[i]), 3)
        lo, hi = _RADIUS[SIZES[size[i]]]
        marks = tuple(
            Mark(SHAPES[mark_shape[i, j]], colors[mark_color[i, j]], float(mark_xy[i, j, 0]), float(mark_xy[i, j, 1]),
                 float(mark_r[i, j]))
            for j in range(m)
        )  # fmt: skip
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
                named=tuple(a for a, keep in zip(ATTRIBUTES, named[i], strict=True) if keep),
                marks=marks,
            )
        )
    return specs


def _paint(pen, shape: str, cx: float, cy: float, r: float, fill: tuple[int, int, int]) -> None:
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        h = r * 0.85
        pen.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    elif shape == "triangle":
        pen.polygon([(cx, cy - r), (cx - r * 0.95, cy + r * 0.8), (cx + r * 0.95, cy + r * 0.8)], fill=fill)
    elif shape == "diamond":
        pen.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=fill)
    elif shape == "cross":
        w = r * 0.35
        pen.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        pen.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(shape)


def draw(spec: ShapeSpec, image_size: int = 64):
    """Render one sample as an RGB ``PIL.Image`` of ``image_size`` × ``image_size`` pixels.

    The undescribed marks (if any) are drawn first, the described shape over them.
    """
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (image_size, image_size), (spec.background,) * 3)
    pen = ImageDraw.Draw(image)
    s = image_size
    for mark in spec.marks:
        _paint(pen, mark.shape, mark.cx * s, mark.cy * s, mark.radius * s, COLORS[mark.color])
    _paint(pen, spec.shape, spec.cx * s, spec.cy * s, spec.radius * s, COLORS[spec.color])
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
    describe : float in (0, 1], default 1
        Probability that a caption names each attribute (at least one is named); 1: every
        caption names all four.
    undescribed_marks : int, default 0
        Extra small marks per image that no caption mentions.
    long_tail : float, default 0
        Exponent a ≥ 0 of the attribute distribution, P(value k) ∝ (k + 1)^−a; 0: uniform.

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

    def __init__(self, n: int, seed: int = 0, image_size: int = 64, *, describe: float = 1.0,
                 undescribed_marks: int = 0, long_tail: float = 0.0) -> None:
        if int(n) != n or n < 1:
            raise InputError(f"the shapes dataset needs at least 1 sample, got {n!r}; pass shapes=N with N >= 1")
        if image_size < 8:
            raise InputError(f"shape images need at least 8 pixels a side, got image_size={image_size}")
        describe = check_positive(describe, "describe", upper=1.0)
        undescribed_marks = check_count(undescribed_marks, "undescribed_marks", minimum=0)
        long_tail = float(check_scalar(long_tail, "long_tail", min_val=0.0, max_val=10.0))
        self.n = int(n)
        self.seed = int(seed)
        self.image_size = int(image_size)
        self.describe = float(describe)
        self.undescribed_marks = int(undescribed_marks)
        self.long_tail = float(long_tail)
        self.specs = _draw_specs(self.n, self.seed, self.describe, self.undescribed_marks, self.long_tail)
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

    def options(self) -> dict[str, float | int]:
        """The generator options that differ from the plain data (empty for the plain data)."""
        given = {"describe": self.describe, "undescribed_marks": self.undescribed_marks, "long_tail": self.long_tail}
        plain = {"describe": 1.0, "undescribed_marks": 0, "long_tail": 0.0}
        return {k: v for k, v in given.items() if v != plain[k]}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.options().items())
        return f"CaptionedShapes(n={self.n}, seed={self.seed}, image_size={self.image_size}{extra})"


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
    # the captions file appears last and whole: a folder that has one is complete
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "caption"])
        for i in chosen:
            image, caption = data[i]
            name = data.file_name(i)
            image.save(image_dir / name)
            writer.writerow([name, caption])
    return csv_path
