"""Simulations of SPEC §3 and synthetic stores (``clipgeo simulate``).

* :func:`thin_shell_study`: the thin-shell results by sampling — the norm of an
  isotropic vector in R^n concentrates at sqrt(n) with O(1) spread (Gaussian and
  the log-concave Laplace / uniform laws), and for an anisotropic cloud the
  centred norm concentrates at sqrt(tr C).
* :func:`simulate_store`: a double-ellipsoid store with known ground truth
  (:func:`clipgeo.synthetic.double_ellipsoid`), written like any other store so
  every tool runs on it without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import atomic_path, write_json
from .errors import InputError
from .provenance import provenance


@dataclass(frozen=True)
class ThinShellConfig:
    """Defaults of :func:`thin_shell_study` (and of ``clipgeo simulate thin-shell``).

    Attributes
    ----------
    dims : tuple of int
        Dimensions sampled.
    n_samples : int
        Samples per dimension and law.
    seed : int
    """

    dims: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128, 256, 512)
    n_samples: int = 2000
    seed: int = 0


@dataclass(frozen=True)
class DoubleEllipsoidConfig:
    """Defaults of :func:`simulate_store` (and of ``clipgeo simulate double-ellipsoid``).

    Attributes
    ----------
    n : int
        Image/text pairs.
    dim : int
        Embedding dimension.
    offset_ratio : float
        ``||m|| / ||σ||`` of both ellipsoids.
    separation : float
        d' of each planted modality-separating feature.
    separating_features : int
        How many features separate the modalities.
    unit_norm : bool
        L2-normalise the rows (as many embedding dumps are).
    seed : int
    """

    n: int = 2000
    dim: int = 64
    offset_ratio: float = 1.0
    separation: float = 8.0
    separating_features: int = 2
    unit_norm: bool = False
    seed: int = 0


_TS = ThinShellConfig
_DE = DoubleEllipsoidConfig
#: above this many values per modality (pairs × dim), ``simulate_store`` writes shard by shard instead of
#: drawing every row at once (the in-memory generator holds several float64 copies: ~8 GB at 400,000 × 512)
STREAM_ABOVE = 16_000_000


def anisotropic_shell_table(dims: Sequence[int], n_samples: int = _TS.n_samples, *, seed: int = _TS.seed):
    """Centred norms of anisotropic clouds vs sqrt(tr C) (SPEC §3, last claim).

    For each dimension the per-axis variances are long-tailed (log-normal, mean
    ≈ 0.1 as the paper measures for CLIP), the axes randomly rotated and the cloud
    shifted far from the origin.

    Returns
    -------
    pandas.DataFrame
        One row per dim: ``mean_centered_norm``, ``std_centered_norm`` (ddof = 1),
        ``sqrt_trace_cov`` (population value), ``relative_thickness``.
    """
    import numpy as np
    import pandas as pd

    from .synthetic import random_rotation, sample_anisotropic

    rows = []
    for j, dim in enumerate(dims):
        rng = np.random.default_rng(seed + j)
        variances = rng.lognormal(mean=np.log(0.1) - 0.5, sigma=1.0, size=int(dim))
        mean = rng.normal(size=int(dim)) * np.sqrt(variances.sum() / dim) * 3
        x = sample_anisotropic(n_samples, variances, mean=mean, rotation=random_rotation(int(dim), seed=seed + j),
                               seed=seed + 100 + j)
        centred = np.linalg.norm(x - x.mean(axis=0), axis=1)
        rows.append({
            "dim": int(dim),
            "mean_centered_norm": float(centred.mean()),
            "std_centered_norm": float(centred.std(ddof=1)),
            "sqrt_trace_cov": float(np.sqrt(variances.sum())),
            "relative_thickness": float(centred.std(ddof=1) / centred.mean()),
        })
    return pd.DataFrame(rows)


def thin_shell_study(
    out: str | Path,
    dims: Sequence[int] = _TS.dims,
    *,
    n_samples: int = _TS.n_samples,
    seed: int = _TS.seed,
    dpi: int | None = None,
) -> dict[str, Path]:
    """Sample the thin-shell theory for ``dims`` and write tables, a figure and its JSON into ``out``.

    Returns
    -------
    dict of str to Path
        ``isotropic`` and ``anisotropic`` (CSV tables), ``figure`` (``thin_shell.png``) and ``json``
        (``thin_shell.json``: the plotted tables, ``n_samples`` and the provenance).
    """
    from .plotting import save_figure
    from .plotting._simulation import thin_shell_study_figure
    from .plotting._style import DEFAULT_DPI
    from .synthetic import thin_shell_curve

    dims = sorted({int(d) for d in dims})
    if not dims or dims[0] < 1:
        raise InputError(f"dims must be positive integers, e.g. 2,10,100,512; got {dims}")
    if n_samples < 2:
        raise InputError(f"n_samples must be at least 2, got {n_samples}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    iso = thin_shell_curve(dims, n_samples, seed=seed)
    aniso = anisotropic_shell_table(dims, n_samples, seed=seed)
    files = {"isotropic": out / "thin_shell_isotropic.csv", "anisotropic": out / "thin_shell_anisotropic.csv"}
    for key, table in (("isotropic", iso), ("anisotropic", aniso)):
        with atomic_path(files[key]) as tmp:
            table.to_csv(tmp, index=False)
    caption = f"simulation: {n_samples} samples per dimension and law, seed {seed} (clipgeo simulate thin-shell)"
    fig, data = thin_shell_study_figure(iso, aniso, caption=caption)
    data["n_samples"] = n_samples
    config = {"dims": dims, "n_samples": n_samples, "seed": seed}
    written = save_figure(fig, data, out, "thin_shell", formats=("png",), dpi=dpi or DEFAULT_DPI,
                          provenance=provenance(config))  # fmt: skip
    files["figure"], files["json"] = written[0], written[1]
    return files


def simulate_store(
    out: str | Path,
    *,
    n: int = _DE.n,
    dim: int = _DE.dim,
    offset_ratio: float = _DE.offset_ratio,
    separation: float = _DE.separation,
    separating_features: int = _DE.separating_features,
    unit_norm: bool = _DE.unit_norm,
    seed: int = _DE.seed,
    store_dtype: str = "float32",
) -> tuple[Path, dict[str, Any]]:
    """Write a synthetic double-ellipsoid store; returns its path and the ground truth summary.

    Above :data:`STREAM_ABOVE` values per modality (``n * dim``) the rows are drawn and written shard by shard
    (:mod:`clipgeo._simulate_stream`, bounded memory): same population and ground truth, other draws.
    """
    import numpy as np

    from .store import StoreMeta, write_store
    from .synthetic import double_ellipsoid, synthetic_captions

    if n < 2 or dim < 2:
        raise InputError(f"n and dim must be at least 2, got n={n}, dim={dim}")
    if store_dtype not in ("float32", "float16"):
        raise InputError(f"store_dtype must be float32 or float16, got {store_dtype!r}")
    streamed = n * dim > STREAM_ABOVE
    image, text, truth = double_ellipsoid(
        2 if streamed else n, dim, offset_ratio=offset_ratio, separation=separation,
        separating_features=separating_features, unit_norm=unit_norm, seed=seed,
    )  # streamed: only the population (means, covariances) is used
    truth_dict = {
        "separating_features": [int(k) for k in truth.separating_features],
        "separation": float(truth.separation),
        "offset_ratio_image": float(truth.offset_ratio_image),
        "offset_ratio_text": float(truth.offset_ratio_text),
        "sqrt_trace_cov_image": truth.sqrt_trace_image,
        "sqrt_trace_cov_text": truth.sqrt_trace_text,
        "raw_centroid_distance": truth.raw_centroid_distance,
        "median_odd_image": float(np.median(truth.odd_image)),
        "median_odd_text": float(np.median(truth.odd_text)),
        "tilt_block": int(truth.tilt_block),
        "tilt_rho": float(truth.tilt_rho),
        "unit_norm": bool(truth.unit_norm),
    }
    config = {"n": n, "dim": dim, "offset_ratio": offset_ratio, "separation": separation,
              "separating_features": separating_features, "unit_norm": unit_norm, "seed": seed,
              "store_dtype": store_dtype, "streamed": streamed}
    meta = StoreMeta(model="synthetic-double-ellipsoid", dim=dim, normalized=unit_norm, store_dtype=store_dtype,
                     source=f"clipgeo.synthetic.double_ellipsoid(seed={seed})",
                     **provenance({**config, "ground_truth": truth_dict}))
    if streamed:
        from ._simulate_stream import stream_double_ellipsoid

        return stream_double_ellipsoid(out, truth, n, meta, truth_dict, seed=seed), truth_dict
    path = write_store(out, meta, image=image, text=text, captions=synthetic_captions(n, seed=seed),
                       text_image_ids=[str(i) for i in range(n)])
    write_json(Path(out) / "ground_truth.json", truth_dict, indent=1)
    return path, truth_dict
