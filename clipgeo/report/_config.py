"""The options of one analysis run: :class:`AnalyzeConfig`, checked once, recorded in the report's provenance.

Imports only the standard library at module level, so ``clipgeo analyze`` reads its option defaults from
here without importing numpy (the checks of :mod:`clipgeo.validation` load when a config is made).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..errors import InputError

#: algorithms of the exact conformity (both give the same numbers; see clipgeo.analyzers.conformity)
CONFORMITY_METHODS = ("exact", "mean")


@dataclass(frozen=True)
class AnalyzeConfig:
    """What :func:`clipgeo.report.analyze` runs, and with which settings.

    Attributes
    ----------
    temperature : float
        τ of the centroid-shift contrastive loss (SPEC §8).
    alphas : tuple of float or None
        Centroid shifts (also the cosine-gradient shifts); None: the SPEC grid -1.0 … 1.0 step 0.1.
    batch_size : int
        Pairs per batch of the centroid-shift loss (>= 2).
    conformity : {"exact", "mean"}
        Algorithm of the exact conformity: the pairwise sum (O(N² d)) or the unit-mean identity (O(N d)).
    max_rows_conformity : int or None
        Above this many rows a modality's exact conformity uses the O(N d) identity (None: no limit).
    linear_cv : bool
        Run the cross-validated linear classifier over all features (the slowest step).
    cv_folds : int
        Folds of that classifier.
    top_k_pairs : int
        The best feature pair is searched among this many top single features.
    kl_bins : int
        Histogram bins of the conformity KL.
    gradient_samples : int
        Image rows sampled per shift for the cosine gradient.
    uniformity_rows : int or None
        Rows sampled for the Wang–Isola uniformity (None: all).
    n_extremes : int
        Highest- and lowest-conformity rows listed per modality.
    seed : int
        Seed of the CV folds, the sampled subsets and the thin-shell simulation.
    bootstrap : int
        Bootstrap draws of the headline intervals (SPEC §12); 0 turns the bootstrap off.
    features : tuple of int or None
        Features (0-based) whose raw values are kept for the figures besides the top-ranked ones
        (``clipgeo figures --features 92,133``); each must be below the embeddings' dimension.
    """

    temperature: float = 0.01
    alphas: tuple[float, ...] | None = None
    batch_size: int = 1024
    conformity: str = "exact"
    max_rows_conformity: int | None = 50_000
    linear_cv: bool = True
    cv_folds: int = 5
    top_k_pairs: int = 10
    kl_bins: int = 64
    gradient_samples: int = 256
    uniformity_rows: int | None = 4096
    n_extremes: int = 5
    seed: int = 0
    bootstrap: int = 200
    features: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        from ..validation import check_count, check_positive  # numpy: only when a config is made, not for its defaults

        object.__setattr__(self, "temperature", check_positive(self.temperature, "temperature"))
        if self.alphas is not None:
            try:
                alphas = tuple(float(a) for a in self.alphas)
            except (TypeError, ValueError):
                raise InputError(f"alphas must be a list of numbers, got {self.alphas!r}; pass shifts such as -1, 0, 1") from None
            if not alphas or not all(math.isfinite(a) for a in alphas):
                raise InputError(f"alphas must be a non-empty list of finite shifts, got {self.alphas!r}; pass e.g. -1, 0, 1")
            if len(set(alphas)) < 2:
                raise InputError(
                    f"alphas has one point ({alphas[0]:g}); a sweep needs at least 2 distinct shifts, e.g. -1:1:0.1 (the default)"
                )
            object.__setattr__(self, "alphas", alphas)
        if self.features is not None:
            from ..validation import check_features

            object.__setattr__(self, "features", tuple(check_features(self.features)) or None)
        if self.conformity not in CONFORMITY_METHODS:
            raise InputError(f"conformity {self.conformity!r} is not known; use {' or '.join(CONFORMITY_METHODS)}")
        # the other sizes are checked by the analyzers that use them
        object.__setattr__(self, "batch_size", check_count(self.batch_size, "batch_size", minimum=2))
        n_boot = check_count(self.bootstrap, "bootstrap", minimum=0)
        if n_boot == 1:
            raise InputError("bootstrap must be 0 (off) or at least 2 draws, got 1; pass e.g. 200 (the default)")
        object.__setattr__(self, "bootstrap", n_boot)
        if self.max_rows_conformity is not None:
            rows = check_count(self.max_rows_conformity, "max_rows_conformity", minimum=2)
            object.__setattr__(self, "max_rows_conformity", rows)

    @classmethod
    def from_options(cls, config: AnalyzeConfig | None = None, **options: Any) -> AnalyzeConfig:
        """``config`` (default: the defaults) with ``options`` replacing fields; unknown names are refused."""
        base = cls() if config is None else config
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(f"unknown analyze option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return dataclasses.replace(base, **options) if options else base

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON values (``alphas`` a list)."""
        out = dataclasses.asdict(self)
        out["alphas"] = None if self.alphas is None else list(self.alphas)
        out["features"] = None if self.features is None else list(self.features)
        return out
