"""Options of the captioned shapes: information asymmetry, undescribed marks, long tail; the plain data unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from clipgeo.data.shapes import ATTRIBUTES, COLORS, POSITIONS, SHAPES, SIZES, CaptionedShapes, tail_probabilities
from clipgeo.errors import InputError


def test_plain_data_draws_the_documented_sequence():
    """Defaults: attributes are the first four uniform integer draws of default_rng(seed), as before the options."""
    n, seed = 50, 5
    rng = np.random.default_rng(seed)
    shape, color, size, position = (rng.integers(k, size=n) for k in (len(SHAPES), len(COLORS), len(SIZES), len(POSITIONS)))
    data = CaptionedShapes(n, seed=seed)
    colors = list(COLORS)
    for i, spec in enumerate(data.specs):
        assert (spec.shape, spec.color, spec.size, spec.position) == (
            SHAPES[shape[i]], colors[color[i]], SIZES[size[i]], POSITIONS[position[i]])
        assert spec.named == ATTRIBUTES and spec.marks == ()
    assert data.options() == {} and repr(data) == "CaptionedShapes(n=50, seed=5, image_size=64)"


def test_describe_names_a_random_subset_of_the_attributes():
    data = CaptionedShapes(4000, seed=1, describe=0.5)
    plain = CaptionedShapes(4000, seed=1)
    named = np.array([[a in s.named for a in ATTRIBUTES] for s in data.specs])
    assert named.any(axis=1).all()  # at least one attribute per caption
    # P(named) = 0.5, plus the re-drawn empty subsets (1/16 of the rows get one more): 0.5 + 1/64
    assert named.mean() == pytest.approx(0.5 + 1 / 64, abs=0.02)
    for spec, caption, full in zip(data.specs[:200], data.captions[:200], plain.specs[:200], strict=True):
        assert (spec.shape, spec.color, spec.position) == (full.shape, full.color, full.position)  # same images
        words = caption.split()
        assert (spec.color in words) == ("color" in spec.named)
        assert (spec.shape in words) == ("shape" in spec.named) and ("shape" in words) != ("shape" in spec.named)
        assert caption.endswith(f"at the {spec.position}") == ("position" in spec.named)
        assert words[0] == ("an" if words[1][0] in "aeiou" else "a")
    from collections import Counter

    # short captions ("a circle") recur far more often than any full one
    assert Counter(data.captions).most_common(1)[0][1] > 5 * Counter(plain.captions).most_common(1)[0][1]


def test_undescribed_marks_change_the_images_not_the_captions():
    plain, marked = CaptionedShapes(30, seed=2), CaptionedShapes(30, seed=2, undescribed_marks=2)
    assert marked.captions == plain.captions
    differ = 0
    for i in range(30):
        assert len(marked.specs[i].marks) == 2
        assert all(m.radius < 0.07 for m in marked.specs[i].marks)  # smaller than any described shape
        differ += not np.array_equal(np.asarray(marked[i][0]), np.asarray(plain[i][0]))
    assert differ >= 28  # a mark may hide under the shape now and then


def test_long_tail_follows_the_power_law():
    p = tail_probabilities(len(SHAPES), 1.5)
    assert p == pytest.approx(np.arange(1, 6) ** -1.5 / np.sum(np.arange(1, 6) ** -1.5))
    data = CaptionedShapes(6000, seed=3, long_tail=1.5)
    counts = np.bincount(data.labels, minlength=len(SHAPES)) / len(data)
    assert counts == pytest.approx(p, abs=0.02)
    assert len(set(data.captions)) < len(set(CaptionedShapes(6000, seed=3).captions))
    assert tail_probabilities(4, 0.0) == pytest.approx([0.25] * 4)


@pytest.mark.parametrize(
    ("options", "needle"),
    [({"describe": 0}, "describe"), ({"describe": 1.5}, "describe"), ({"undescribed_marks": -1}, "undescribed_marks"),
     ({"long_tail": -1.0}, "long_tail")],
)
def test_bad_options(options, needle):
    with pytest.raises(InputError, match=needle):
        CaptionedShapes(10, **options)
