"""The captioned-shapes dataset: determinism, captions that describe the pixels, folder output."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from clipgeo.data.shapes import COLORS, POSITIONS, SHAPES, CaptionedShapes, draw
from clipgeo.errors import InputError


def shape_pixels(image: Image.Image, background: int) -> np.ndarray:
    """Boolean mask of the pixels that are not the background grey."""
    a = np.asarray(image).astype(int)
    return np.any(a != background, axis=-1)


def test_deterministic_by_seed():
    a, b = CaptionedShapes(30, seed=7), CaptionedShapes(30, seed=7)
    assert a.captions == b.captions
    for i in (0, 13, 29):
        assert np.array_equal(np.asarray(a[i][0]), np.asarray(b[i][0]))
    c = CaptionedShapes(30, seed=8)
    assert c.captions != a.captions
    assert len(set(a.captions)) > 10  # the captions vary


def test_caption_template_and_labels():
    data = CaptionedShapes(200, seed=0)
    for spec, caption, label in zip(data.specs, data.captions, data.labels, strict=True):
        assert caption == f"a {spec.size} {spec.color} {spec.shape} at the {spec.position}"
        assert SHAPES[label] == spec.shape
    # every attribute value occurs
    assert {s.shape for s in data.specs} == set(SHAPES)
    assert {s.color for s in data.specs} == set(COLORS)
    assert {s.position for s in data.specs} == set(POSITIONS)
    image, caption = data[3]
    assert image.size == (64, 64) and image.mode == "RGB"
    assert caption == data.captions[3]


def test_pixels_match_the_caption():
    data = CaptionedShapes(120, seed=1, image_size=96)
    areas = {(shape, size): [] for shape in SHAPES for size in ("small", "large")}
    for i, spec in enumerate(data.specs):
        image, _ = data[i]
        mask = shape_pixels(image, spec.background)
        assert mask.any()
        pixels = np.asarray(image)[mask]
        # the shape is painted in the named colour
        assert np.array_equal(np.unique(pixels, axis=0), np.array([COLORS[spec.color]]))
        # its centre of mass lies in the named cell of the 3 x 3 grid
        ys, xs = np.nonzero(mask)
        row, col = int(ys.mean() * 3 // 96), int(xs.mean() * 3 // 96)
        assert POSITIONS[3 * row + col] == spec.position, (i, spec)
        areas[spec.shape, spec.size].append(mask.sum())
    for shape in SHAPES:  # a large shape covers more pixels than any small one of its kind
        assert max(areas[shape, "small"]) < min(areas[shape, "large"]), shape


def test_shapes_are_distinguishable():
    # same colour, position and radius: the five shapes give five different masks
    base = CaptionedShapes(1, seed=0).specs[0]
    masks = []
    for shape in SHAPES:
        spec = type(base)(**{**base.__dict__, "shape": shape})
        masks.append(shape_pixels(draw(spec, 64), spec.background))
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).sum() > 10, (SHAPES[i], SHAPES[j])


def test_write_folder_and_csv(tmp_path):
    data = CaptionedShapes(12, seed=3)
    csv_path = data.write(tmp_path / "out", indices=[2, 5, 7])
    assert csv_path == tmp_path / "out" / "captions.csv"
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["caption"] for r in rows] == [data.captions[i] for i in (2, 5, 7)]
    assert list(rows[0]) == ["file_name", "caption"]
    for r, i in zip(rows, (2, 5, 7), strict=True):
        written = Image.open(tmp_path / "out" / "images" / r["file_name"])
        assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(data[i][0]))  # PNG is lossless


def test_sequence_protocol_and_errors():
    data = CaptionedShapes(5)
    assert len(data) == 5 and len(list(data)) == 5
    assert data[-1][1] == data.captions[4]
    assert [c for _, c in data[1:3]] == data.captions[1:3]
    with pytest.raises(IndexError):
        data[5]
    with pytest.raises(InputError, match="at least 1"):
        CaptionedShapes(0)
