"""Spectrum (SPEC §12): the eigenvalues of one modality's covariance and the dimension they span."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ._blocks import column_mean, float_rows
from ._result import Result
from ._threads import single_blas_thread


def spectrum_summary(eigenvalues: np.ndarray) -> dict[str, float | int]:
    """Effective rank, participation ratio and 90 % / 99 % dimensions of descending eigenvalues ``λ`` of C.

    ``effective_rank = exp(H(p))`` with ``p_k = σ_k / Σ σ`` and ``σ_k = sqrt(λ_k)`` (the singular values of
    the centred rows up to the factor sqrt(n - 1)), ``0 log 0 = 0`` (RankMe); ``participation_ratio =
    (Σλ)² / Σλ²``; ``dims_q`` = fewest leading eigenvalues holding a fraction q of Σλ.
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = float(lam.sum())
    if total <= 0:
        return {"effective_rank": 0.0, "participation_ratio": 0.0, "dims_90": 0, "dims_99": 0}
    sigma = np.sqrt(lam)
    p = sigma / sigma.sum()
    nz = p[p > 0]
    cum = np.cumsum(lam) / total
    # a relative slack of 1e-12 keeps dims_q exact when the cumulative share lands on q up to rounding
    dims = lambda q: int(min(np.searchsorted(cum, q - 1e-12) + 1, len(lam)))  # noqa: E731
    return {
        "effective_rank": float(np.exp(-np.sum(nz * np.log(nz)))),
        "participation_ratio": float(total**2 / np.sum(lam * lam)),
        "dims_90": dims(0.90),
        "dims_99": dims(0.99),
    }


@dataclass(frozen=True, repr=False)
class SpectrumResult(Result):
    """Eigen-spectrum of one modality's covariance.

    Attributes
    ----------
    n, dim : int
    effective_rank : float
        RankMe: ``exp`` of the entropy of the normalised singular values of the centred rows (1 … d).
    participation_ratio : float
        ``(Σλ)² / Σλ²`` (1 … d).
    dims_90, dims_99 : int
        Leading eigen-directions holding 90 % and 99 % of the variance ``tr C``.
    top_share : float
        ``λ_1 / Σλ``.
    eigenvalues : ndarray of shape (d,)
        Eigenvalues of C (ddof = 1), descending; those beyond rank n - 1 are 0 up to rounding (clipped at 0).
    """

    n: int
    dim: int
    effective_rank: float
    participation_ratio: float
    dims_90: int
    dims_99: int
    top_share: float
    eigenvalues: np.ndarray

    _arrays = ("eigenvalues",)


def spectrum(X: object, *, covariance: object = None) -> SpectrumResult:
    """Eigenvalues of the covariance of one modality, its effective rank and participation ratio.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Embeddings of one modality (raw or unit; the spectrum is of whatever is given).
    covariance : array-like of shape (d, d), optional
        C of these rows (ddof = 1) when already computed (e.g. ``off_diagonal_dominance(X).covariance``).

    Returns
    -------
    SpectrumResult
    """
    x = float_rows(X, "X")
    n, d = x.shape
    if covariance is None:
        xc = np.array(x, dtype=np.float64)  # the one full-size copy, centred in place
        xc -= column_mean(x)
        cov = (xc.T @ xc) / (n - 1)
        del xc
    else:
        cov = np.asarray(covariance, dtype=np.float64)
        if cov.shape != (d, d):
            raise InputError(f"covariance has shape {cov.shape}; expected ({d}, {d}) for {d}-dimensional rows")
    with single_blas_thread():
        lam = np.linalg.eigvalsh(cov)[::-1]
    lam = np.clip(lam, 0.0, None)
    summary = spectrum_summary(lam)
    return SpectrumResult(
        n=n,
        dim=d,
        top_share=float(lam[0] / lam.sum()) if lam.sum() > 0 else 0.0,
        eigenvalues=lam,
        **summary,
    )
