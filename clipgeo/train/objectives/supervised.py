"""Supervised softmax with one prototype per class: the labelled baseline.

Each class ``c`` has a learnable prototype ``w_c``; the logits of a feature
``z`` are ``w_c · z + b_c`` (a linear classifier), or, with ``cosine=True``,
``cos(w_c, z) / τ`` (normalised prototypes, as in the non-parametric and
prototype-based objectives).  The loss is the cross-entropy with the labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InputError
from ...validation import check_count, check_positive
from ..objective import ObjectiveContext
from ..probe import label_names, shape_labels
from ._base import ViewsObjective
from ._common import check_features, unit


class SupervisedSoftmax(nn.Module):
    """Softmax cross-entropy against one prototype per class.

    Parameters
    ----------
    dim : int
        Feature dimension.
    n_classes : int
        Number of classes (>= 2).
    cosine : bool
        Cosine logits ``cos(w_c, z) / τ`` instead of ``w_c · z + b_c``.
    temperature : float
        ``τ`` for ``cosine=True``.
    seed : int
        Seed of the initial prototypes.
    """

    def __init__(self, dim: int, n_classes: int, cosine: bool = False, temperature: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        self.dim = check_count(dim, "feature dim")
        self.n_classes = check_count(n_classes, "n_classes", minimum=2)
        self.cosine = bool(cosine)
        self.temperature = check_positive(temperature, "temperature")
        generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / self.dim**0.5  # nn.Linear's default range
        self.prototypes = nn.Parameter((torch.rand(self.n_classes, self.dim, generator=generator) * 2 - 1) * bound)
        self.bias = None if self.cosine else nn.Parameter(torch.zeros(self.n_classes))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits of features (B, d): shape (B, n_classes)."""
        if self.cosine:
            return unit(features.float()) @ unit(self.prototypes).T / self.temperature
        return features.float() @ self.prototypes.T + self.bias

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of features (B, d) with integer labels (B,) in [0, n_classes); 0-d Tensor."""
        check_features("features", features, self.dim)
        if labels.shape != (len(features),) or labels.is_floating_point():
            raise InputError(f"labels must be an integer tensor of shape ({len(features)},), got {tuple(labels.shape)} {labels.dtype}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.n_classes):
            raise InputError(
                f"labels must lie in [0, {self.n_classes}), got [{int(labels.min())}, {int(labels.max())}]; "
                "build the objective with n_classes = number of classes"
            )
        return F.cross_entropy(self.logits(features), labels.long())


class SupervisedObjective(ViewsObjective):
    """``--objective supervised``: the image tower trained to classify a label of the data.

    Both augmented views of an image are classified (mean of the two losses).

    Parameters
    ----------
    ctx : ObjectiveContext
    label : str
        ``"shape"``: the source's ``labels``; ``"color"``/``"colour"``, ``"size"``,
        ``"position"``: that attribute of the captioned shapes.
    cosine, temperature
        See :class:`SupervisedSoftmax`.
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "supervised"

    def __init__(
        self, ctx: ObjectiveContext, label: str = "shape", cosine: bool = False, temperature: float = 0.1, **augment_options
    ) -> None:
        super().__init__(ctx, **augment_options)
        self.label = label
        n_classes = ctx.num_classes if label == "shape" else len(label_names(label))
        if n_classes < 2:
            raise InputError("the supervised objective needs labelled data with 2+ classes; train on shapes=N")
        self.loss = SupervisedSoftmax(self.dim, n_classes, cosine=cosine, temperature=temperature, seed=ctx.config.seed)

    def make_dataset(self, source: Sequence, indices: Sequence[int], train: bool) -> torch.utils.data.Dataset:
        dataset = super().make_dataset(source, indices, train)
        if self.label != "shape":
            dataset.labels = shape_labels(source, self.label)[np.asarray(indices, dtype=np.int64)]
        elif dataset.labels is None:
            raise InputError("the training data carries no labels for the supervised objective; train on shapes=N")
        return dataset

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        labels = batch["label"]
        z_1, z_2 = self.encode(batch["view1"]), self.encode(batch["view2"])  # (B, d) each
        loss = 0.5 * (self.loss(z_1, labels) + self.loss(z_2, labels))
        accuracy = (self.loss.logits(z_1.detach()).argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "train_accuracy": accuracy}
