"""The self-supervised augmentations: shapes, randomness, known special cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipgeo.data.shapes import CaptionedShapes
from clipgeo.errors import InputError
from clipgeo.train.augment import CLIP_MEAN, CLIP_STD, augment, plain


@pytest.fixture(scope="module")
def image():
    return CaptionedShapes(1, seed=3, image_size=64)[0][0]


def unnormalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor(CLIP_STD)[:, None, None] + torch.tensor(CLIP_MEAN)[:, None, None]


def test_views_have_the_model_shape_and_differ(image):
    torch.manual_seed(0)
    t = augment(32)
    a, b = t(image), t(image)
    assert a.shape == b.shape == (3, 32, 32) and a.dtype == torch.float32
    assert not torch.allclose(a, b)
    torch.manual_seed(5)
    c = t(image)
    torch.manual_seed(5)
    torch.testing.assert_close(t(image), c)  # seeded: reproducible


def test_everything_off_is_the_plain_transform(image):
    t = augment(32, scale=(1.0, 1.0), strength=0.0, grayscale_p=0.0, blur_p=0.0, flip=False)
    torch.testing.assert_close(t(image), plain(32)(image), atol=1e-5, rtol=0)


def test_flip_only_gives_the_image_or_its_mirror(image):
    t = augment(32, scale=(1.0, 1.0), strength=0.0, grayscale_p=0.0, blur_p=0.0, flip=True)
    reference = plain(32)(image)
    seen = set()
    torch.manual_seed(0)
    for _ in range(20):
        view = t(image)
        if torch.allclose(view, reference, atol=1e-5):
            seen.add("same")
        elif torch.allclose(view, reference.flip(-1), atol=1e-5):
            seen.add("mirror")
        else:
            pytest.fail("a flip-only view is neither the image nor its mirror")
    assert seen == {"same", "mirror"}


def test_grayscale_always_gives_equal_channels(image):
    torch.manual_seed(0)
    raw = unnormalise(augment(32, grayscale_p=1.0, blur_p=0.0)(image))
    torch.testing.assert_close(raw[0], raw[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(raw[1], raw[2], atol=1e-5, rtol=0)


def test_colour_jitter_changes_colour_statistics(image):
    plain_view = unnormalise(plain(32)(image))
    torch.manual_seed(1)
    t = augment(32, scale=(1.0, 1.0), strength=1.0, jitter_p=1.0, grayscale_p=0.0, blur_p=0.0, flip=False)
    means = np.array([unnormalise(t(image)).mean(dim=(1, 2)).numpy() for _ in range(10)])
    assert np.abs(means - plain_view.mean(dim=(1, 2)).numpy()).max() > 0.02


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"scale": (0.5, 0.2)}, "scale"), ({"blur_p": 2.0}, "blur_p"), ({"strength": -1.0}, "strength")],
)
def test_bad_arguments(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        augment(32, **kwargs)
    with pytest.raises(InputError, match="image_size"):
        augment(2)
