"""Whitening and likelihood (SPEC §12; Betser, Levi & Gilboa, ICML 2025, "Whitened CLIP").

:class:`Whitener` fits ``W = V Λ^{-1/2}`` to one modality's raw rows, maps rows to whitened coordinates
``z = (x - m) W`` and scores them with the Gaussian log-likelihood; :func:`whitening` measures how Gaussian
the whitened coordinates are and how well a fit on half the rows explains the other half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import log_ndtr, ndtri

from ..errors import InputError
from ._blocks import column_mean, float_rows, row_blocks, rows64
from ._result import Result
from ._threads import single_blas_thread

#: eigenvalues below this fraction of the largest are raised to it (SPEC §12)
EIGENVALUE_FLOOR = 1e-6
#: Stephens' critical value of the Anderson–Darling statistic (normal, mean and variance estimated) at 5 %,
#: before the small-sample factor 1 / (1 + 0.75/n + 2.25/n²) (the table scipy.stats.anderson uses)
_AD_CRITICAL_5 = 0.752
_LOG_2PI = float(np.log(2.0 * np.pi))


class Whitener:
    """Gaussian model of one modality: ``z = (x - m) W`` with ``W = V Λ^{-1/2}``.

    Parameters
    ----------
    eigenvalue_floor : float
        Eigenvalues of C below ``eigenvalue_floor · λ_max`` are raised to it.
    shrinkage : {"auto", "ledoit-wolf", "none"}
        Covariance estimate: ``"auto"`` uses scikit-learn's Ledoit–Wolf estimate when ``n <= d`` (the plain
        covariance is singular) and the plain one (ddof = 1) otherwise.

    Attributes
    ----------
    mean_ : ndarray of shape (d,)
    eigenvalues_ : ndarray of shape (d,)
        Eigenvalues of C, descending, after the floor.
    components_ : ndarray of shape (d, d)
        Eigenvectors V as columns, in the order of ``eigenvalues_``.
    whitening_matrix_ : ndarray of shape (d, d)
        ``W = V Λ^{-1/2}``.
    n_features_in_, n_samples_fit_, n_floored_ : int
    ledoit_wolf_ : bool
        Whether the Ledoit–Wolf estimate was used.

    Examples
    --------
    >>> w = Whitener().fit(coco_image_rows)                      # doctest: +SKIP
    >>> w.log_likelihood(generated_image_rows).mean()            # doctest: +SKIP
    """

    def __init__(self, eigenvalue_floor: float = EIGENVALUE_FLOOR, shrinkage: str = "auto") -> None:
        if shrinkage not in ("auto", "ledoit-wolf", "none"):
            raise InputError(f"unknown shrinkage {shrinkage!r}; use 'auto', 'ledoit-wolf' or 'none'")
        floor = float(eigenvalue_floor)
        if not (np.isfinite(floor) and 0 < floor < 1):
            raise InputError(f"eigenvalue_floor must lie in (0, 1), got {eigenvalue_floor}")
        self.eigenvalue_floor = floor
        self.shrinkage = shrinkage

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, X: object) -> Whitener:
        """Estimate m and C from the rows of ``X`` (shape (n, d), n >= 2); returns ``self``."""
        return self._fit_rows(float_rows(X, "X"))

    def _fit_rows(self, x: np.ndarray, rows: np.ndarray | None = None) -> Whitener:
        """:meth:`fit` on ``x[rows]`` (default all rows) with one float64 copy of them, centred in place."""
        n, d = (len(x) if rows is None else len(rows)), x.shape[1]
        mean = column_mean(x, rows=rows)
        use_lw = self.shrinkage == "ledoit-wolf" or (self.shrinkage == "auto" and n <= d)
        if use_lw:
            from sklearn.covariance import LedoitWolf

            with single_blas_thread():
                cov = LedoitWolf().fit(rows64(x, rows)).covariance_
        else:
            xc = np.array(x if rows is None else x[rows], dtype=np.float64)
            xc -= mean
            cov = (xc.T @ xc) / (n - 1)
            del xc
        return self._set(mean, cov, n_samples=n, ledoit_wolf=use_lw)

    def fit_moments(self, mean: object, covariance: object, n_samples: int = 0) -> Whitener:
        """Set the model from a known mean (d,) and covariance (d, d) instead of rows; returns ``self``."""
        m = np.asarray(mean, dtype=np.float64)
        c = np.asarray(covariance, dtype=np.float64)
        if m.ndim != 1 or c.shape != (len(m), len(m)):
            raise InputError(f"mean has shape {m.shape} and covariance {c.shape}; expected (d,) and (d, d)")
        if not (np.isfinite(m).all() and np.isfinite(c).all()):
            raise InputError("mean or covariance holds NaN or inf")
        return self._set(m, 0.5 * (c + c.T), n_samples=int(n_samples), ledoit_wolf=False)

    def _set(self, mean: np.ndarray, cov: np.ndarray, *, n_samples: int, ledoit_wolf: bool) -> Whitener:
        with single_blas_thread():
            lam, vec = np.linalg.eigh(cov)
        lam, vec = lam[::-1], vec[:, ::-1]  # descending
        top = float(lam[0])
        if not top > 0:
            raise InputError("the covariance is zero (all rows identical); nothing to whiten")
        floor = self.eigenvalue_floor * top
        self.n_floored_ = int((lam < floor).sum())
        lam = np.maximum(lam, floor)
        self.mean_ = mean
        self.eigenvalues_ = lam
        self.components_ = vec
        self.whitening_matrix_ = vec / np.sqrt(lam)[None, :]
        self.n_features_in_ = len(mean)
        self.n_samples_fit_ = n_samples
        self.ledoit_wolf_ = bool(ledoit_wolf)
        self._log_norm = -0.5 * float(np.sum(_LOG_2PI + np.log(lam)))
        return self

    # -- using -------------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not hasattr(self, "whitening_matrix_"):
            raise InputError("this Whitener is not fitted; call .fit(X) first (or Whitener.from_arrays)")

    def _check(self, X: object) -> np.ndarray:
        self._require_fitted()
        x = float_rows(X, "X", min_rows=1)  # float32 rows stay float32: widened block by block
        if x.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has dimension {x.shape[1]} but the whitener was fitted on {self.n_features_in_}-dimensional "
                "rows; score rows of the same model (and modality) it was fitted on"
            )
        return x

    def transform(self, X: object) -> np.ndarray:
        """Whitened coordinates ``z = (x - m) W``, shape (n, d); coordinate k follows the k-th largest axis."""
        x = self._check(X)
        out = np.empty((len(x), self.n_features_in_))
        for sl in row_blocks(len(x)):
            out[sl] = (rows64(x, sl) - self.mean_) @ self.whitening_matrix_
        return out

    def _scores(self, x: np.ndarray, rows: np.ndarray, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Log-likelihood of the rows ``x[rows]`` (n,) and their first ``k`` whitened coordinates (n, k), by blocks."""
        ll, first = np.empty(len(rows)), np.empty((len(rows), k))
        for sl in row_blocks(len(rows)):
            z = (rows64(x, rows[sl]) - self.mean_) @ self.whitening_matrix_
            ll[sl] = -0.5 * np.einsum("ij,ij->i", z, z) + self._log_norm
            first[sl] = z[:, :k]
        return ll, first

    def fit_transform(self, X: object) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def log_likelihood(self, X: object) -> np.ndarray:
        """Gaussian log-density of each row, shape (n,): ``-½ ||z||² - ½ Σ_k log(2π λ_k)`` (nats)."""
        x = self._check(X)
        return self._scores(x, np.arange(len(x)))[0]

    def score(self, X: object) -> float:
        """Mean log-likelihood of the rows of ``X``."""
        return float(self.log_likelihood(X).mean())

    # -- persistence as plain arrays (the CLI writes them to .npz) ------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted model as arrays: ``mean``, ``eigenvalues``, ``components``, ``whitening_matrix``, settings."""
        self._require_fitted()
        return {
            "mean": self.mean_,
            "eigenvalues": self.eigenvalues_,
            "components": self.components_,
            "whitening_matrix": self.whitening_matrix_,
            "eigenvalue_floor": np.float64(self.eigenvalue_floor),
            "n_samples_fit": np.int64(self.n_samples_fit_),
            "n_floored": np.int64(self.n_floored_),
            "ledoit_wolf": np.bool_(self.ledoit_wolf_),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> Whitener:
        """A fitted Whitener from :meth:`to_arrays` output (e.g. ``np.load("W.npz")``)."""
        missing = [k for k in ("mean", "eigenvalues", "components") if k not in arrays]
        if missing:
            raise InputError(f"not a whitener file: missing {', '.join(missing)} (write one with `clipgeo whiten`)")
        w = cls(
            eigenvalue_floor=float(arrays["eigenvalue_floor"]) if "eigenvalue_floor" in arrays else EIGENVALUE_FLOOR
        )
        lam = np.asarray(arrays["eigenvalues"], dtype=np.float64)
        vec = np.asarray(arrays["components"], dtype=np.float64)
        w.mean_ = np.asarray(arrays["mean"], dtype=np.float64)
        w.eigenvalues_, w.components_ = lam, vec
        w.whitening_matrix_ = vec / np.sqrt(lam)[None, :]
        w.n_features_in_ = len(w.mean_)
        w.n_samples_fit_ = int(arrays["n_samples_fit"]) if "n_samples_fit" in arrays else 0
        w.n_floored_ = int(arrays["n_floored"]) if "n_floored" in arrays else 0
        w.ledoit_wolf_ = bool(arrays["ledoit_wolf"]) if "ledoit_wolf" in arrays else False
        w._log_norm = -0.5 * float(np.sum(_LOG_2PI + np.log(lam)))
        return w

    def __repr__(self) -> str:
        if not hasattr(self, "n_features_in_"):
            return f"Whitener(eigenvalue_floor={self.eigenvalue_floor:g}, shrinkage={self.shrinkage!r})"
        return (
            f"Whitener(d={self.n_features_in_}, fitted on {self.n_samples_fit_} rows, "
            f"ledoit_wolf={self.ledoit_wolf_}, floored={self.n_floored_})"
        )


def anderson_darling_normal(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anderson–Darling statistic for normality of each column (mean and variance estimated), vectorised.

    Parameters
    ----------
    z : ndarray of shape (n, k)

    Returns
    -------
    statistic : ndarray of shape (k,)
        ``A² = -n - (1/n) Σ_i (2i - 1) [log Φ(y_(i)) + log(1 - Φ(y_(n+1-i)))]`` of the standardised
        sorted column (std with ddof = 1), as :func:`scipy.stats.anderson` computes it.
    critical_5 : ndarray of shape (k,)
        The 5 % critical value ``0.752 / (1 + 0.75/n + 2.25/n²)`` (Stephens); normality is rejected above it.
    """
    n = len(z)
    y = np.sort(z, axis=0)
    y = (y - y.mean(axis=0)) / y.std(axis=0, ddof=1)
    i = np.arange(1, n + 1, dtype=np.float64)[:, None]
    terms = (2 * i - 1) * (log_ndtr(y) + log_ndtr(-y[::-1]))
    stat = -n - terms.sum(axis=0) / n
    critical = np.full(z.shape[1], _AD_CRITICAL_5 / (1.0 + 0.75 / n + 2.25 / n**2))
    return stat, critical


def gaussianity(z: object, alpha: float = 0.05) -> tuple[float, float]:
    """Fractions of the columns of ``z`` (n, k) that pass D'Agostino–Pearson and Anderson–Darling at 5 %.

    D'Agostino–Pearson (:func:`scipy.stats.normaltest`) passes when p > ``alpha``; Anderson–Darling when
    the statistic is below its 5 % critical value (``alpha`` other than 0.05 is not tabulated here).
    Needs n >= 20.
    """
    from scipy.stats import normaltest

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 20:
        raise InputError(f"the Gaussianity tests need at least 20 rows, got shape {z.shape}")
    if abs(alpha - 0.05) > 1e-12:
        raise InputError(f"alpha must be 0.05 (the tabulated Anderson–Darling level), got {alpha}")
    p = normaltest(z, axis=0).pvalue
    stat, crit = anderson_darling_normal(z)
    return float(np.mean(p > alpha)), float(np.mean(stat < crit))


#: whitened coordinates tested at a time by :func:`whitening` (the tests' temporaries: a few (n, 32) arrays)
_GAUSSIANITY_COLUMNS = 32


def _column_gaussianity(z: np.ndarray) -> tuple[float, float]:
    """:func:`gaussianity` of the whitened rows ``z`` (n, d), tested a block of columns at a time.

    Both tests treat every column on its own, so the pass rates are those of the whole array; the
    tests' full-size temporaries (centred, squared, sorted copies) shrink to the block's.
    """
    from scipy.stats import normaltest

    d = z.shape[1]
    passed_p, passed_ad = np.empty(d, dtype=bool), np.empty(d, dtype=bool)
    for start in range(0, d, _GAUSSIANITY_COLUMNS):
        cols = slice(start, min(start + _GAUSSIANITY_COLUMNS, d))
        block = np.ascontiguousarray(z[:, cols])
        passed_p[cols] = normaltest(block, axis=0).pvalue > 0.05
        stat, crit = anderson_darling_normal(block)
        passed_ad[cols] = stat < crit
    return float(np.mean(passed_p)), float(np.mean(passed_ad))


@dataclass(frozen=True, repr=False)
class WhiteningResult(Result):
    """How Gaussian one modality is once whitened, and its held-out likelihood.

    Attributes
    ----------
    n, dim : int
    ledoit_wolf : bool
        Whether the fit on all rows used the Ledoit–Wolf covariance (n <= d).
    n_floored : int
        Eigenvalues raised to the floor in that fit.
    dagostino_pass_rate, anderson_pass_rate : float
        Fraction of the d whitened coordinates (all rows, fitted on all rows) passing each normality test at
        5 %.  For Gaussian rows both are about 0.95 (each test rejects 5 % of true normals).
    mean_log_likelihood : float
        Mean log-likelihood of the fit half under its own fit (nats per row).
    heldout_mean_log_likelihood : float
        Mean log-likelihood of the held-out half under the fit half's model; much lower than the in-sample
        value means the Gaussian over-fits (n not ≫ d).
    n_fit, n_heldout : int
    heldout_log_likelihood : ndarray of shape (n_heldout,)
    qq_theoretical : ndarray of shape (n_heldout,)
        Standard normal quantiles ``Φ⁻¹((i - 0.5) / n_heldout)``.
    qq_sample : ndarray of shape (k, n_heldout)
        Sorted held-out whitened coordinates 0 … k-1 (the largest-variance axes of the fit half).
    """

    n: int
    dim: int
    ledoit_wolf: bool
    n_floored: int
    dagostino_pass_rate: float
    anderson_pass_rate: float
    mean_log_likelihood: float
    heldout_mean_log_likelihood: float
    n_fit: int
    n_heldout: int
    heldout_log_likelihood: np.ndarray
    qq_theoretical: np.ndarray
    qq_sample: np.ndarray

    _arrays = ("heldout_log_likelihood", "qq_theoretical", "qq_sample")


def whitening(
    X: object,
    *,
    heldout_fraction: float = 0.5,
    seed: int = 0,
    qq_coordinates: int = 3,
    covariance: object = None,
) -> WhiteningResult:
    """Whiten one modality; Gaussianity of the whitened coordinates and held-out log-likelihood.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Raw embeddings of one modality (n >= 40).
    heldout_fraction : float
        Fraction of the rows (seeded split) scored under a fit on the others.
    seed : int
        Seed of the split.
    qq_coordinates : int
        Whitened coordinates kept for the QQ-plot.
    covariance : array-like of shape (d, d), optional
        C of all rows (ddof = 1) when already computed; used for the fit on all rows when n > d.

    Returns
    -------
    WhiteningResult
    """
    x = float_rows(X, "X", min_rows=40)  # float32 rows stay float32: widened block by block
    if not 0 < heldout_fraction < 1:
        raise InputError(f"heldout_fraction must lie in (0, 1), got {heldout_fraction}")
    n, d = x.shape
    if covariance is not None and n > d:
        full = Whitener().fit_moments(column_mean(x), covariance, n_samples=n)
    else:
        full = Whitener()._fit_rows(x)
    dag, ad = _column_gaussianity(full.transform(x))  # the one (n, d) float64 array
    perm = np.random.default_rng(seed).permutation(n)
    n_held = min(max(int(round(heldout_fraction * n)), 20), n - 20)
    held, fit_rows = np.sort(perm[:n_held]), np.sort(perm[n_held:])
    half = Whitener()._fit_rows(x, fit_rows)
    k = int(min(max(qq_coordinates, 0), d))
    ll_held, z_held = half._scores(x, held, k)
    return WhiteningResult(
        n=n,
        dim=d,
        ledoit_wolf=full.ledoit_wolf_,
        n_floored=full.n_floored_,
        dagostino_pass_rate=dag,
        anderson_pass_rate=ad,
        mean_log_likelihood=float(half._scores(x, fit_rows)[0].mean()),
        heldout_mean_log_likelihood=float(ll_held.mean()),
        n_fit=len(fit_rows),
        n_heldout=n_held,
        heldout_log_likelihood=ll_held,
        qq_theoretical=ndtri((np.arange(1, n_held + 1) - 0.5) / n_held),
        qq_sample=np.sort(z_held, axis=0).T.copy(),
    )
