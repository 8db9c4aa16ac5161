"""Mahalanobis shells (SPEC §4): the rows lie on an ellipsoidal shell, not a spherical one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._result import Result
from ._validation import check_embeddings, single_blas_thread


@dataclass(frozen=True, repr=False)
class MahalanobisShellResult(Result):
    """Mahalanobis distances of one modality to its own Ledoit–Wolf Gaussian.

    Attributes
    ----------
    mean, std, cv : float
        Mean, std (ddof = 1) and ``std / mean`` of ``d_M``.
    euclidean_mean, euclidean_std, euclidean_cv : float
        The same for the centred Euclidean norm ``||x - m||``.
    shrinkage : float
        Ledoit–Wolf shrinkage coefficient used.
    thinner_than_euclidean : bool
        ``cv < euclidean_cv``: the ellipsoidal shell is relatively thinner.
    distances : ndarray of shape (n,)
        ``d_M(x_i)``.
    centered_norms : ndarray of shape (n,)
    """

    n: int
    dim: int
    mean: float
    std: float
    cv: float
    euclidean_mean: float
    euclidean_std: float
    euclidean_cv: float
    shrinkage: float
    thinner_than_euclidean: bool
    distances: np.ndarray
    centered_norms: np.ndarray

    _arrays = ("distances", "centered_norms")


def mahalanobis_shell(X: object) -> MahalanobisShellResult:
    """Mahalanobis distances ``d_M(x) = sqrt((x - μ)ᵀ Σ⁻¹ (x - μ))`` under a Ledoit–Wolf fit.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Raw embeddings of one modality (n >= 2; n may be smaller than d).

    Returns
    -------
    MahalanobisShellResult

    Notes
    -----
    ``μ, Σ`` come from ``sklearn.covariance.LedoitWolf()`` with default
    arguments fitted on ``X`` (so ``μ`` is the sample mean and ``Σ`` the
    shrunk maximum-likelihood covariance, ddof = 0).  ``Σ⁻¹`` is the same
    pseudo-inverse as its ``precision_`` (eigenvalues below
    ``λ_max · d · eps`` dropped), computed with numpy's ``eigh`` so that one
    BLAS library does all the work.  For a Gaussian with n >> d, ``d_M`` concentrates at
    ``sqrt(d)``.  ``cv`` uses ddof = 1 like every spread in clipgeo.
    """
    from sklearn.covariance import LedoitWolf

    x = check_embeddings(X, "X", warn_unit=True)
    lw = LedoitWolf(store_precision=False).fit(x)  # defaults otherwise; Σ⁻¹ below
    xc = x - lw.location_
    # Σ⁻¹ as sklearn's precision_ (a pseudo-inverse), via numpy's eigh: Σ = V diag(λ) Vᵀ
    with single_blas_thread():
        lam, vec = np.linalg.eigh(lw.covariance_)
    cutoff = lam.max() * len(lam) * np.finfo(np.float64).eps
    inv = np.divide(1.0, lam, out=np.zeros_like(lam), where=lam > cutoff)
    proj = xc @ vec  # (n, d) coordinates along the axes of the ellipsoid
    squared = np.einsum("ij,ij,j->i", proj, proj, inv)
    distances = np.sqrt(np.maximum(squared, 0.0))
    euclid = np.linalg.norm(x - x.mean(axis=0), axis=1)
    mean, std = float(distances.mean()), float(distances.std(ddof=1))
    e_mean, e_std = float(euclid.mean()), float(euclid.std(ddof=1))
    cv = std / mean if mean > 0 else float("nan")
    e_cv = e_std / e_mean if e_mean > 0 else float("nan")
    return MahalanobisShellResult(
        n=len(x),
        dim=x.shape[1],
        mean=mean,
        std=std,
        cv=cv,
        euclidean_mean=e_mean,
        euclidean_std=e_std,
        euclidean_cv=e_cv,
        shrinkage=float(lw.shrinkage_),
        thinner_than_euclidean=bool(cv < e_cv),
        distances=distances,
        centered_norms=euclid,
    )
