"""What the single-modality objectives share as trainer objectives (see :mod:`clipgeo.train.trainer`).

An image objective trains the open_clip image tower (``model.encode_image``,
raw output) on two augmented views of each image (:func:`clipgeo.train.augment.augment`);
the text tower is left as it is.  The held-out metrics and ``clipgeo compare``
treat the two views as the two "modalities": the gap between views, thin shell,
offset and conformity of each view.  The loss acts on the tower's output
itself (as CLIP's does), except where a head is part of the method (BYOL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..augment import CLIP_MEAN, CLIP_STD, augment
from ..data import ViewsDataset
from ..objective import Objective, ObjectiveContext


def _normalisation(transform: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of the ``Normalize`` step of a torchvision ``Compose`` (CLIP's if there is none)."""
    for step in getattr(transform, "transforms", []):
        if type(step).__name__ == "Normalize":
            return tuple(float(m) for m in step.mean), tuple(float(s) for s in step.std)
    return CLIP_MEAN, CLIP_STD


def resolve(value: int | None, default: int) -> int:
    """``value``, or ``default`` when it is None."""
    return default if value is None else int(value)


class ViewsObjective(Objective):
    """Base of the image objectives: two augmented views per image, image tower, raw embeddings.

    Parameters
    ----------
    ctx : ObjectiveContext
    crop_scale : float
        Smallest share of the image area a random crop keeps (SimCLR: 0.08; 0.5 here, where a
        shape covers a few percent of a 32-px image and smaller crops often lose it).
    jitter : float
        Colour-jitter strength (0 switches it off).
    grayscale_p, blur_p : float
        Probabilities of grayscale and Gaussian blur (blur off by default: SimCLR leaves it out
        for 32-px CIFAR images too).
    """

    data_kind = "views"
    pair_names = ("view1", "view2")
    find_unused_parameters = True  # the text tower gets no gradient

    def __init__(
        self,
        ctx: ObjectiveContext,
        crop_scale: float = 0.5,
        jitter: float = 0.5,
        grayscale_p: float = 0.2,
        blur_p: float = 0.0,
    ) -> None:
        super().__init__(ctx)
        mean, std = _normalisation(ctx.loaded.preprocess_val)
        self.augmentation = augment(
            ctx.loaded.image_size, scale=(crop_scale, 1.0), strength=jitter, grayscale_p=grayscale_p, blur_p=blur_p,
            mean=mean, std=std,
        )  # fmt: skip
        self.dim = int(ctx.loaded.embed_dim)

    @property
    def encoder(self) -> torch.nn.Module:
        """The image tower: images (B, 3, H, W) -> raw embeddings (B, d)."""
        return self.model.visual

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Raw embeddings (B, d) of images (B, 3, H, W)."""
        return self.model.encode_image(images, normalize=False)

    def make_dataset(self, source: Sequence, indices: Sequence[int], train: bool) -> torch.utils.data.Dataset:
        # training and held-out: two draws of the augmentation per image
        return ViewsDataset(source, indices, self.augmentation)

    def embed_pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(batch["view1"]), self.encode(batch["view2"])
