"""Synthetic embeddings with known ground truth: double ellipsoids and thin-shell samplers.

:func:`double_ellipsoid` draws paired "image" and "text" rows from two
Gaussian (or Laplace) ellipsoids whose means, covariances (with a planted
tilt), separating features and offset from the origin are chosen, and returns
them with a :class:`DoubleEllipsoidTruth` holding the exact population values
the analyzers should recover.  The thin-shell samplers draw the isotropic and
anisotropic clouds of SPEC §3.  Tests, benchmarks, ``clipgeo simulate`` and
the demo all use these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError
from .validation import check_count, check_fraction, rows_are_unit

DISTRIBUTIONS = ("gaussian", "laplace", "uniform")


def _standard(rng: np.random.Generator, shape: tuple[int, ...], distribution: str) -> np.ndarray:
    """Zero-mean, unit-variance i.i.d. draws: Gaussian, or the log-concave Laplace / uniform."""
    if distribution == "gaussian":
        return rng.standard_normal(shape)
    if distribution == "laplace":
        return rng.laplace(0.0, 1.0 / np.sqrt(2.0), size=shape)  # variance 2 b² = 1
    if distribution == "uniform":
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=shape)  # variance 1
    raise InputError(f"unknown distribution {distribution!r}; use one of {', '.join(DISTRIBUTIONS)}")


# -- thin-shell samplers (SPEC §3) -----------------------------------------------------------------


def sample_isotropic(n: int, dim: int, distribution: str = "gaussian", *, seed: int | None = 0) -> np.ndarray:
    """``n`` isotropic rows in R^dim with i.i.d. zero-mean unit-variance coordinates.

    Parameters
    ----------
    n, dim : int
    distribution : {"gaussian", "laplace", "uniform"}
        Laplace and uniform are log-concave: their norm shell stays thin too.
    seed : int or None

    Returns
    -------
    ndarray of shape (n, dim)
        ``E||x||² = dim``; ``||x||`` concentrates at ``sqrt(dim)``.
    """
    return _standard(np.random.default_rng(seed), (int(n), int(dim)), distribution)


def sample_anisotropic(
    n: int,
    variances: np.ndarray,
    *,
    mean: np.ndarray | None = None,
    rotation: np.ndarray | None = None,
    distribution: str = "gaussian",
    seed: int | None = 0,
) -> np.ndarray:
    """Rows ``mean + R diag(sqrt(variances)) z`` with z isotropic: an ellipsoidal cloud.

    Parameters
    ----------
    n : int
    variances : ndarray of shape (d,)
        Variances along the axes of the ellipsoid.
    mean : ndarray of shape (d,), optional
    rotation : ndarray of shape (d, d), optional
        Orthogonal matrix whose columns are the axes (default: the coordinate axes).
    distribution : {"gaussian", "laplace", "uniform"}
    seed : int or None

    Returns
    -------
    ndarray of shape (n, d)
        Covariance ``R diag(variances) Rᵀ``; ``E||x - mean||² = sum(variances)``.
    """
    variances = np.asarray(variances, dtype=np.float64)
    z = _standard(np.random.default_rng(seed), (int(n), len(variances)), distribution) * np.sqrt(variances)
    if rotation is not None:
        z = z @ np.asarray(rotation, dtype=np.float64).T
    if mean is not None:
        z = z + np.asarray(mean, dtype=np.float64)
    return z


def random_rotation(dim: int, *, seed: int | None = 0) -> np.ndarray:
    """A random orthogonal (dim, dim) matrix (Haar measure, QR with sign fix)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def thin_shell_curve(
    dims: tuple[int, ...] | list[int] | np.ndarray = (2, 4, 8, 16, 32, 64, 128, 256, 512),
    n_samples: int = 2000,
    distributions: tuple[str, ...] = DISTRIBUTIONS,
    *,
    seed: int = 0,
):
    """Norm statistics of isotropic samples for growing dimension (the thin-shell theory figure).

    Returns
    -------
    pandas.DataFrame
        One row per (distribution, dim): ``mean_norm``, ``std_norm`` (ddof = 1),
        ``sqrt_dim`` and ``relative_thickness = std_norm / mean_norm``.
    """
    import pandas as pd

    rows = []
    for k, distribution in enumerate(distributions):
        for j, dim in enumerate(dims):
            norms = np.linalg.norm(sample_isotropic(n_samples, int(dim), distribution, seed=seed + 1000 * k + j), axis=1)
            rows.append(
                {
                    "distribution": distribution,
                    "dim": int(dim),
                    "mean_norm": float(norms.mean()),
                    "std_norm": float(norms.std(ddof=1)),
                    "sqrt_dim": float(np.sqrt(dim)),
                    "relative_thickness": float(norms.std(ddof=1) / norms.mean()),
                }
            )
    return pd.DataFrame(rows)


# -- double ellipsoids -----------------------------------------------------------------------------


def _tilted_covariance(std: np.ndarray, block: int, rho: float) -> np.ndarray:
    """``diag(std) R diag(std)`` with R equicorrelated (ρ) inside consecutive blocks of ``block`` features."""
    d = len(std)
    corr = np.eye(d)
    if block > 1 and rho != 0:
        for start in range(0, d, block):
            stop = min(start + block, d)
            corr[start:stop, start:stop] = rho
            np.fill_diagonal(corr[start:stop, start:stop], 1.0)
    return corr * std[:, None] * std[None, :]


def _off_diagonal_dominance(cov: np.ndarray) -> np.ndarray:
    diag = np.abs(np.diag(cov))
    return (np.abs(cov).sum(axis=1) - diag) / diag


@dataclass(frozen=True)
class DoubleEllipsoidTruth:
    """Population values of a :func:`double_ellipsoid` draw (before any unit normalisation).

    Attributes
    ----------
    mean_image, mean_text : ndarray of shape (d,)
    cov_image, cov_text : ndarray of shape (d, d)
    separating_features : tuple of int
        Features on which the modality means differ by ``separation`` pooled
        standard deviations (0-based): the planted "modality label" features.
    separation : float
        ``d'`` of every separating feature: ``(m_img,k - m_txt,k) / σ_k``.
    offset_ratio_image, offset_ratio_text : float
        ``||m|| / ||σ||`` of each modality.
    odd_image, odd_text : ndarray of shape (d,)
        Off-diagonal dominance of the true covariances.
    tilt_block, tilt_rho : int, float
        The planted tilt: equicorrelation ρ inside consecutive blocks.
    pair_correlation : float
        Correlation between the latent draws of matched rows.
    distribution : str
    unit_norm : bool
        Whether the returned rows were L2-normalised.
    """

    mean_image: np.ndarray
    mean_text: np.ndarray
    cov_image: np.ndarray
    cov_text: np.ndarray
    separating_features: tuple[int, ...]
    separation: float
    offset_ratio_image: float
    offset_ratio_text: float
    odd_image: np.ndarray
    odd_text: np.ndarray
    tilt_block: int
    tilt_rho: float
    pair_correlation: float
    distribution: str
    unit_norm: bool
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return len(self.mean_image)

    @property
    def sqrt_trace_image(self) -> float:
        return float(np.sqrt(np.trace(self.cov_image)))

    @property
    def sqrt_trace_text(self) -> float:
        return float(np.sqrt(np.trace(self.cov_text)))

    @property
    def raw_centroid_distance(self) -> float:
        return float(np.linalg.norm(self.mean_image - self.mean_text))


def double_ellipsoid(
    n: int = 1000,
    dim: int = 64,
    *,
    offset_ratio: float = 1.0,
    separating_features: tuple[int, ...] | list[int] | int = 2,
    separation: float = 8.0,
    tilt_block: int = 8,
    tilt_rho: float = 0.5,
    std_range: tuple[float, float] = (0.2, 0.5),
    text_std_scale: float = 1.0,
    pair_correlation: float = 0.8,
    distribution: str = "gaussian",
    unit_norm: bool = False,
    dtype: np.dtype | type = np.float32,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, DoubleEllipsoidTruth]:
    """Draw ``n`` matched image/text pairs from two offset, tilted ellipsoids with known truth.

    Parameters
    ----------
    n : int
        Pairs (row i of image matches row i of text).
    dim : int
    offset_ratio : float
        ``||m|| / ||σ||`` of both modalities (the paper measures ≈ 1).
    separating_features : int or sequence of int
        The planted modality-label features (0-based), or how many to pick at
        random.  Must leave ``offset_ratio`` reachable (see Raises).
    separation : float
        ``d'`` of each separating feature: image mean ``+separation/2 σ_k``,
        text mean ``-separation/2 σ_k`` around a shared value (8 → a single
        threshold separates ≈ 100 %).
    tilt_block, tilt_rho : int, float
        Planted tilt: correlation ``tilt_rho`` between features of the same
        consecutive block of ``tilt_block``; row dominance ≈ ``(block-1) ρ``.
    std_range : (float, float)
        Per-feature standard deviations are drawn log-uniformly in this range;
        the separating features get the smallest one.
    text_std_scale : float
        Text standard deviations are the image ones times this.
    pair_correlation : float
        Matched rows share latent draws with this correlation (0: independent).
    distribution : {"gaussian", "laplace", "uniform"}
        Law of the latent coordinates (unit variance).
    unit_norm : bool
        L2-normalise the returned rows (the truth stays the raw population's).
    dtype : numpy dtype
    seed : int

    Returns
    -------
    image : ndarray of shape (n, dim)
    text : ndarray of shape (n, dim)
    truth : DoubleEllipsoidTruth

    Raises
    ------
    InputError
        When the separating shifts alone already exceed ``offset_ratio``
        (with the defaults this happens below dim ≈ 16: pass fewer separating
        features, a smaller ``separation`` or a larger ``offset_ratio``).
    """
    n = check_count(n, "n", minimum=2)
    dim = check_count(dim, "dim")
    if not -1.0 / max(tilt_block - 1, 1) < tilt_rho < 1.0:
        raise InputError(f"tilt_rho={tilt_rho} does not give a valid correlation for blocks of {tilt_block}")
    if distribution not in DISTRIBUTIONS:
        raise InputError(f"unknown distribution {distribution!r}; use one of {', '.join(DISTRIBUTIONS)}")
    pair_correlation = check_fraction(pair_correlation, "pair_correlation", closed_right=True)
    rng = np.random.default_rng(seed)
    if isinstance(separating_features, (int, np.integer)):
        sep = tuple(int(k) for k in np.sort(rng.choice(dim, size=int(separating_features), replace=False)))
    else:
        sep = tuple(int(k) for k in separating_features)
    if any(not 0 <= k < dim for k in sep):
        raise InputError(f"separating features {sep} must lie in 0..{dim - 1}")

    std_img = np.exp(rng.uniform(np.log(std_range[0]), np.log(std_range[1]), size=dim))
    std_img[list(sep)] = std_range[0]  # modality-label features are narrow: a large d' costs little offset
    std_txt = std_img * float(text_std_scale)
    cov_img = _tilted_covariance(std_img, tilt_block, tilt_rho)
    cov_txt = _tilted_covariance(std_txt, tilt_block, tilt_rho)

    # shared direction (zero on the separating features), plus ±separation/2 pooled σ on those
    sep_idx = np.array(sep, dtype=np.int64)
    base = rng.standard_normal(dim)
    base[sep_idx] = 0.0
    pooled = np.sqrt((std_img**2 + std_txt**2) / 2)
    shift = np.zeros(dim)
    shift[sep_idx] = separation / 2 * pooled[sep_idx]

    def place(std: np.ndarray, sign: float) -> np.ndarray:
        # scale the shared direction so that ||c·base + sign·shift|| = offset_ratio ||std|| (base ⟂ shift)
        need = offset_ratio**2 * float(std @ std) - float(shift @ shift)
        if need < 0 or not np.any(base):
            raise InputError(
                f"offset_ratio={offset_ratio} is too small for {len(sep)} separating feature(s) at separation "
                f"{separation}; raise offset_ratio or lower separation"
            )
        return np.sqrt(need) / np.linalg.norm(base) * base + sign * shift

    mean_img, mean_txt = place(std_img, +1.0), place(std_txt, -1.0)

    z_img = _standard(rng, (n, dim), distribution)
    z_txt = pair_correlation * z_img + np.sqrt(1 - pair_correlation**2) * _standard(rng, (n, dim), distribution)
    chol_img = np.linalg.cholesky(cov_img)
    chol_txt = np.linalg.cholesky(cov_txt)
    image = mean_img + z_img @ chol_img.T
    text = mean_txt + z_txt @ chol_txt.T
    if unit_norm:
        image /= np.linalg.norm(image, axis=1, keepdims=True)
        text /= np.linalg.norm(text, axis=1, keepdims=True)

    config = {
        "n": n, "dim": dim, "offset_ratio": offset_ratio, "separating_features": list(sep),
        "separation": separation, "tilt_block": tilt_block, "tilt_rho": tilt_rho, "std_range": list(std_range),
        "text_std_scale": text_std_scale, "pair_correlation": pair_correlation, "distribution": distribution,
        "unit_norm": unit_norm, "seed": seed,
    }  # fmt: skip
    truth = DoubleEllipsoidTruth(
        mean_image=mean_img,
        mean_text=mean_txt,
        cov_image=cov_img,
        cov_text=cov_txt,
        separating_features=sep,
        separation=float(separation),
        offset_ratio_image=float(np.linalg.norm(mean_img) / np.linalg.norm(std_img)),
        offset_ratio_text=float(np.linalg.norm(mean_txt) / np.linalg.norm(std_txt)),
        odd_image=_off_diagonal_dominance(cov_img),
        odd_text=_off_diagonal_dominance(cov_txt),
        tilt_block=int(tilt_block),
        tilt_rho=float(tilt_rho),
        pair_correlation=float(pair_correlation),
        distribution=distribution,
        unit_norm=bool(unit_norm),
        config=config,
    )
    return image.astype(dtype, copy=False), text.astype(dtype, copy=False), truth


def synthetic_captions(n: int, *, seed: int = 0) -> list[str]:
    """Short placeholder captions ``"synthetic pair i"`` (so reports can show extreme examples)."""
    return [f"synthetic pair {i}" for i in range(n)]


def embedding_set(
    image: np.ndarray | None,
    text: np.ndarray | None,
    *,
    captions: list[str] | None = None,
    image_paths: list[str] | None = None,
    text_image_index: np.ndarray | None = None,
    model: str = "synthetic",
    source: str = "clipgeo.synthetic",
    normalized: bool | None = None,
):
    """Wrap arrays into a :class:`clipgeo.store.EmbeddingSet` (no file written).

    Parameters
    ----------
    image : ndarray of shape (n_image, d) or None
    text : ndarray of shape (n_text, d) or None
    captions : list of str, optional
        One per text row.
    image_paths : list of str, optional
        One per image row.
    text_image_index : ndarray of int, shape (n_text,), optional
        Image row of every text row (-1: none).  Default: row i ↔ row i when
        both modalities have the same number of rows, otherwise unpaired.
    model, source : str
        Recorded in the set's :class:`~clipgeo.store.StoreMeta`.
    normalized : bool, optional
        Whether rows are unit-norm; detected when not given.
    """
    from .store import EmbeddingSet, StoreMeta

    if image is None and text is None:
        raise InputError("image and text are both None; pass image rows, text rows or both")
    dim = (image if image is not None else text).shape[1]
    image = np.empty((0, dim), np.float32) if image is None else np.asarray(image)
    text = np.empty((0, dim), np.float32) if text is None else np.asarray(text)
    if text_image_index is None:
        same = len(image) == len(text)
        text_image_index = np.arange(len(text)) if same else np.full(len(text), -1)
    if normalized is None:
        normalized = (len(image) == 0 or rows_are_unit(image)) and (len(text) == 0 or rows_are_unit(text))
    dtype = "float16" if image.dtype == np.float16 else "float32"
    meta = StoreMeta(model=model, dim=dim, store_dtype=dtype, normalized=bool(normalized), source=source)
    return EmbeddingSet(
        image=image,
        text=text,
        image_ids=np.array([str(i) for i in range(len(image))], dtype=object),
        text_ids=np.array([str(i) for i in range(len(text))], dtype=object),
        image_paths=np.array(image_paths if image_paths is not None else [""] * len(image), dtype=object),
        captions=np.array(captions if captions is not None else [""] * len(text), dtype=object),
        text_image_index=np.asarray(text_image_index, dtype=np.int64),
        meta=meta,
    )
