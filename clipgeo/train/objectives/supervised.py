"""Supervised softmax with one prototype per class: the labelled baseline.

Each class ``c`` has a learnable prototype ``w_c``; the logits of a feature
``z`` are ``w_c · z + b_c`` (a linear classifier), or, with ``cosine=True``,
``cos(w_c, z) / τ`` (normalised prototypes, as in the non-parametric and
prototype-based objectives).  The loss is the cross-entropy with the labels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InputError
from ._common import check_count, check_features, check_positive, unit


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
        self.dim = check_count("feature dim", dim)
        self.n_classes = check_count("n_classes", n_classes, minimum=2)
        self.cosine = bool(cosine)
        self.temperature = check_positive("temperature", temperature)
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
