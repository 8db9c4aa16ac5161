"""Instance discrimination with a memory bank (Wu et al. 2018), and PIRL as a configuration of it.

Every training sample ``i`` owns one unit vector ``v̄_i`` in a memory bank of
``N`` rows.  The non-parametric softmax

    P(i | v) = exp(v̄_i · v / τ) / Z,        Z = Σ_j exp(v̄_j · v / τ)

treats each sample as its own class.  Summing over all ``N`` rows is too
expensive, so it is approximated with ``K ≪ N`` negatives drawn uniformly from
the bank, either by noise-contrastive estimation (``loss="nce"``, the paper's
choice) or by a sampled softmax over the positive and the ``K`` negatives
(``loss="softmax"``, the form later papers such as PIRL and CMC use).

NCE (Wu et al. eq. 5–6).  With noise distribution ``P_n = 1/N`` and ``K``
noise samples per data sample, the posterior that ``i`` came from the data is
``h(i, v) = P(i|v) / (P(i|v) + K/N)`` and

    L_NCE = −log h(i, v) − Σ_{k=1..K} log(1 − h(j_k, v)),   j_k ~ U{0..N−1}.

``Z`` is estimated once, by Monte Carlo on the first batch
(``Z ≈ N · mean_{b,k} exp(v̄_{j_k} · v_b / τ)`` over the negatives), and then
held constant, as in the paper.

After each forward the bank rows of the batch are moved towards the new
features, ``v̄_i ← normalize(m · v̄_i + (1 − m) · v_i)`` (``m = 0.5`` in the
paper; ``m = 0`` replaces the row).

PIRL (Misra & van der Maaten 2020) is this objective with two views: the anchor
is the transformed image ``v_It``, the positive the bank row of the untransformed
image, and the loss mixes the two anchors,
``L = λ · L(v_It) + (1 − λ) · L(v_I)``, with the bank updated from ``v_I``
(``λ = 0.5`` in the paper).  Pass ``transformed=`` and ``pirl_weight=λ``.  PIRL's
jigsaw transformation is replaced by the usual augmentations
(:mod:`clipgeo.train.augment`), and its two projection heads by the encoder itself.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import InputError
from ...validation import check_count, check_fraction, check_positive
from ..distributed import gather
from ..objective import ObjectiveContext
from ._base import ViewsObjective, resolve
from ._common import check_features, unit

LOSSES = ("nce", "softmax")


class MemoryBank(nn.Module):
    """One unit vector per training sample, updated with a momentum.

    Parameters
    ----------
    size : int
        Number of training samples ``N`` (rows).
    dim : int
        Feature dimension ``d``.
    momentum : float in [0, 1)
        ``m`` in ``v̄_i ← normalize(m · v̄_i + (1 − m) · v_i)``; 0 replaces the row.
    seed : int
        Seed of the random unit vectors the bank starts from.

    Attributes
    ----------
    vectors : Tensor of shape (size, dim)
        The bank (a buffer: saved in checkpoints, never trained by gradient).
    """

    def __init__(self, size: int, dim: int, momentum: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        self.size = check_count(size, "memory bank size", minimum=2)
        self.dim = check_count(dim, "feature dim")
        self.momentum = check_fraction(momentum, "memory bank momentum")
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("vectors", unit(torch.randn(self.size, self.dim, generator=generator)))

    def check_indices(self, indices: torch.Tensor) -> None:
        """Raise :class:`InputError` unless ``indices`` (B,) are distinct sample ids in [0, size)."""
        if indices.ndim != 1 or indices.dtype not in (torch.int32, torch.int64):
            raise InputError(f"sample indices must be a 1-D integer tensor, got shape {tuple(indices.shape)} {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.size):
            raise InputError(
                f"sample indices must lie in [0, {self.size}), got [{int(indices.min())}, {int(indices.max())}]; "
                "build the memory bank with one row per training sample"
            )
        if torch.unique(indices).numel() != indices.numel():
            raise InputError("sample indices repeat within a batch; draw each sample at most once per batch")

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        """The bank rows ``v̄_i`` of ``indices`` (B,), shape (B, dim), a detached copy."""
        return self.vectors[indices].clone()

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor) -> None:
        """Move rows ``indices`` (B,) towards ``features`` (B, dim) (normalised first).

        Under ``torchrun`` the rows and indices of every rank are gathered first, so every
        rank's bank receives every rank's rows (the single-process update of the full batch).
        """
        indices, features = gather(indices), gather(features)  # (W*B,), (W*B, dim)
        new = unit(self.momentum * self.vectors[indices] + (1.0 - self.momentum) * unit(features.detach().float()))
        self.vectors[indices] = new.to(self.vectors.dtype)

    def sample(self, batch: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` row ids per anchor drawn uniformly with replacement, shape (batch, k)."""
        return torch.randint(0, self.size, (batch, k), generator=generator, device=self.vectors.device)


def nce_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor, log_z: float | torch.Tensor, n_data: int) -> torch.Tensor:
    """Noise-contrastive estimation loss of the non-parametric softmax (Wu et al. 2018, eq. 6).

    Parameters
    ----------
    pos_logits : Tensor of shape (B,)
        ``v̄_i · v / τ`` for each anchor and its own bank row.
    neg_logits : Tensor of shape (B, K)
        ``v̄_j · v / τ`` for the ``K`` uniformly drawn noise rows.
    log_z : float or 0-d Tensor
        log of the normalising constant ``Z``.
    n_data : int
        Bank size ``N`` (noise distribution ``1/N``).

    Returns
    -------
    0-d Tensor: ``mean_b [−log h_pos − Σ_k log(1 − h_neg,k)]`` with ``h = P / (P + K/N)``.
    """
    k = neg_logits.shape[1]
    log_noise = math.log(k / n_data)  # log(K · P_n)
    log_p_pos = pos_logits - log_z
    log_p_neg = neg_logits - log_z
    # −log h = log(1 + K P_n / P) ; −log(1 − h) = log(1 + P / (K P_n))
    per_anchor = F.softplus(log_noise - log_p_pos) + F.softplus(log_p_neg - log_noise).sum(dim=1)
    return per_anchor.mean()


def sampled_softmax_loss(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the positive against ``K`` negatives: ``mean_b −log softmax([pos, neg_1..K])_0``.

    pos_logits : (B,), neg_logits : (B, K); returns a 0-d Tensor.
    """
    logits = torch.cat([pos_logits[:, None], neg_logits], dim=1)  # (B, 1 + K)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


class InstanceDiscriminationLoss(nn.Module):
    """Memory-bank instance discrimination (NCE or sampled softmax); PIRL with ``transformed=``.

    Parameters
    ----------
    n_data : int
        Number of training samples ``N`` (one bank row each).
    dim : int
        Feature dimension.
    n_negatives : int
        ``K`` noise rows per anchor (4096 in the paper); must be < ``n_data``.
    temperature : float
        ``τ`` (0.07 in the paper).
    momentum : float in [0, 1)
        Bank update momentum (0.5 in the paper; 0 replaces the rows).
    loss : {"nce", "softmax"}
        NCE with a constant ``Z`` estimated on the first batch, or sampled softmax.
    pirl_weight : float in [0, 1]
        ``λ``, the weight of the transformed-view anchor when ``transformed`` is given (0.5 in PIRL).
    seed : int
        Seed of the initial bank.
    """

    def __init__(
        self,
        n_data: int,
        dim: int,
        n_negatives: int = 4096,
        temperature: float = 0.07,
        momentum: float = 0.5,
        loss: str = "nce",
        pirl_weight: float = 0.5,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise InputError(f"unknown memory-bank loss {loss!r}; use one of {', '.join(LOSSES)}")
        self.bank = MemoryBank(n_data, dim, momentum=momentum, seed=seed)
        self.n_negatives = check_count(n_negatives, "n_negatives")
        if self.n_negatives >= n_data:
            raise InputError(
                f"n_negatives ({n_negatives}) must be smaller than the number of training samples ({n_data}); lower it"
            )
        self.temperature = check_positive(temperature, "temperature")
        self.loss = loss
        self.pirl_weight = check_fraction(pirl_weight, "pirl_weight", closed_right=True)
        self.register_buffer("log_z", torch.tensor(float("nan")))  # NCE normaliser, set on the first batch

    @property
    def n_data(self) -> int:
        return self.bank.size

    def logits(self, anchors: torch.Tensor, indices: torch.Tensor, negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positive logits (B,) and negative logits (B, K) of unit ``anchors`` (B, d) against the bank."""
        positives = self.bank(indices)  # (B, d)
        noise = self.bank.vectors[negatives]  # (B, K, d), a copy
        pos = (anchors * positives).sum(dim=1) / self.temperature
        neg = torch.einsum("bd,bkd->bk", anchors, noise) / self.temperature
        return pos, neg

    def _loss(self, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        if self.loss == "softmax":
            return sampled_softmax_loss(pos, neg)
        if torch.isnan(self.log_z):
            # Z ≈ N · E_j exp(v̄_j · v / τ), Monte Carlo over this batch's noise rows
            noise = gather(neg.detach().double().flatten())  # every rank's noise: the same Z on every rank
            estimate = torch.logsumexp(noise, 0) - math.log(noise.numel()) + math.log(self.n_data)
            self.log_z.fill_(float(estimate))
        return nce_loss(pos, neg, self.log_z, self.n_data)

    def forward(
        self,
        features: torch.Tensor,
        indices: torch.Tensor,
        transformed: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
        update: bool = True,
    ) -> torch.Tensor:
        """Loss of a batch; then (if ``update``) the batch's bank rows move towards ``features``.

        Parameters
        ----------
        features : Tensor of shape (B, d)
            Encoder output of the samples (normalised here).
        indices : LongTensor of shape (B,)
            Their sample ids (bank rows), distinct.
        transformed : Tensor of shape (B, d), optional
            PIRL: features of a transformed view of the same samples.
        negatives : LongTensor of shape (B, K), optional
            Noise rows to use instead of drawing them (tests, reproducibility).
        update : bool
            Update the bank rows with ``features`` after computing the loss.

        Returns
        -------
        0-d Tensor.
        """
        check_features("features", features, self.bank.dim)
        self.bank.check_indices(indices)
        if len(indices) != len(features):
            raise InputError(f"{len(features)} feature rows but {len(indices)} sample indices; pass one index per row")
        if negatives is None:
            negatives = self.bank.sample(len(features), self.n_negatives)
        v = unit(features.float())
        pos, neg = self.logits(v, indices, negatives)
        loss = self._loss(pos, neg)
        if transformed is not None:
            check_features("transformed", transformed, self.bank.dim)
            pos_t, neg_t = self.logits(unit(transformed.float()), indices, negatives)
            loss = self.pirl_weight * self._loss(pos_t, neg_t) + (1.0 - self.pirl_weight) * loss
        if update:
            self.bank.update(indices, v)
        return loss


class MemoryBankObjective(ViewsObjective):
    """``--objective memory-bank``: instance discrimination of the image tower (``pirl=True``: PIRL).

    One augmented view per image trains against the bank (Wu et al.); with
    ``pirl=True`` the second view is the transformed image of PIRL.

    Parameters
    ----------
    ctx : ObjectiveContext
    n_negatives : int, optional
        ``K`` (default ``min(4096, num_train // 2)``).
    temperature, momentum, loss, pirl_weight
        See :class:`InstanceDiscriminationLoss`.
    pirl : bool
        Use the second view as PIRL's transformed image.
    **augment_options
        See :class:`~clipgeo.train.objectives._base.ViewsObjective`.
    """

    name = "memory-bank"

    def __init__(
        self,
        ctx: ObjectiveContext,
        n_negatives: int | None = None,
        temperature: float = 0.07,
        momentum: float = 0.5,
        loss: str = "nce",
        pirl: bool = False,
        pirl_weight: float = 0.5,
        **augment_options,
    ) -> None:
        super().__init__(ctx, **augment_options)
        self.pirl = bool(pirl)
        self.loss = InstanceDiscriminationLoss(
            ctx.num_train, self.dim, n_negatives=resolve(n_negatives, min(4096, max(1, ctx.num_train // 2))),
            temperature=temperature, momentum=momentum, loss=loss, pirl_weight=pirl_weight, seed=ctx.config.seed,
        )  # fmt: skip

    def training_step(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        features = self.encode(batch["view1"])  # (B, d)
        transformed = self.encode(batch["view2"]) if self.pirl else None  # (B, d)
        return {"loss": self.loss(features, batch["index"], transformed=transformed)}


class PIRLObjective(MemoryBankObjective):
    """``--objective pirl``: the memory-bank objective with ``pirl=True`` (PIRL's invariance loss)."""

    name = "pirl"

    def __init__(self, ctx: ObjectiveContext, **options) -> None:
        options.setdefault("pirl", True)
        super().__init__(ctx, **options)
