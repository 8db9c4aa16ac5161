"""Image augmentations of the self-supervised literature (SimCLR's recipe), from torchvision.

One random view of a ``PIL.Image``:

1. random resized crop to ``image_size`` (area ``scale``, aspect 3/4 … 4/3);
2. horizontal flip with probability ½;
3. colour jitter (brightness, contrast, saturation ``jitter``, hue ``jitter / 4``)
   with probability ``jitter_p``;
4. grayscale with probability ``grayscale_p``;
5. Gaussian blur (kernel ≈ 10 % of the side, σ ∈ [0.1, 2]) with probability ``blur_p``;
6. to tensor and normalised with the model's mean and std (CLIP's by default).

``strength`` scales the colour jitter as in SimCLR (1.0 = 0.8 brightness /
contrast / saturation, 0.2 hue).  The shapes data carries colour labels:
colour jitter and grayscale make a view-invariant objective discard colour,
which the linear probe then shows.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError

# CLIP's (OpenAI's) normalisation, the default of open_clip models
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def augment(
    image_size: int,
    *,
    scale: tuple[float, float] = (0.2, 1.0),
    strength: float = 0.5,
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    blur_p: float = 0.5,
    flip: bool = True,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
):
    """A random augmentation ``PIL.Image -> Tensor (3, image_size, image_size)``.

    Parameters
    ----------
    image_size : int
        Output side in pixels (the model's input size, 32 for ``tiny``).
    scale : (float, float)
        Range of the crop's share of the image area.
    strength : float
        Colour-jitter strength ``s``: brightness/contrast/saturation ``0.8 s``, hue ``0.2 s`` (hue capped at 0.5).
    jitter_p, grayscale_p, blur_p : float in [0, 1]
        Probabilities of colour jitter, grayscale and blur.
    flip : bool
        Random horizontal flip.
    mean, std : 3 floats
        Normalisation of the model.

    Returns
    -------
    torchvision.transforms.Compose
    """
    from torchvision import transforms as T

    if int(image_size) != image_size or image_size < 4:
        raise InputError(f"augmentation image_size must be an integer >= 4, got {image_size!r}")
    lo, hi = scale
    if not 0 < lo <= hi <= 1:
        raise InputError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")
    for name, p in (("jitter_p", jitter_p), ("grayscale_p", grayscale_p), ("blur_p", blur_p)):
        if not 0 <= p <= 1:
            raise InputError(f"{name} must lie in [0, 1], got {p}")
    if strength < 0:
        raise InputError(f"colour-jitter strength must be >= 0, got {strength}")
    kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)  # odd, ≈ 10 % of the side
    steps = [T.RandomResizedCrop(int(image_size), scale=(lo, hi), interpolation=T.InterpolationMode.BICUBIC, antialias=True)]
    if flip:
        steps.append(T.RandomHorizontalFlip())
    if strength > 0 and jitter_p > 0:
        s = float(strength)
        steps.append(T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5))], p=jitter_p))
    if grayscale_p > 0:
        steps.append(T.RandomGrayscale(p=grayscale_p))
    if blur_p > 0:
        steps.append(T.RandomApply([T.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur_p))
    steps += [T.ToTensor(), T.Normalize(tuple(mean), tuple(std))]
    return T.Compose(steps)


def plain(image_size: int, *, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD):
    """The deterministic evaluation transform: resize, centre crop, normalise -> Tensor (3, size, size)."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(int(image_size), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(int(image_size)),
            T.ToTensor(),
            T.Normalize(tuple(mean), tuple(std)),
        ]
    )
