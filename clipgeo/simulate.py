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

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .provenance import provenance


def anisotropic_shell_table(dims: Sequence[int], n_samples: int = 2000, *, seed: int = 0):
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


def thin_shell_study(out: str | Path, dims: Sequence[int], *, n_samples: int = 2000, seed: int = 0) -> dict[str, Path]:
    """Sample the thin-shell theory for ``dims`` and write tables, JSON and a figure into ``out``."""
    from .synthetic import thin_shell_curve

    dims = sorted({int(d) for d in dims})
    if not dims or dims[0] < 1:
        raise InputError("--dims needs positive integers, e.g. --dims 2,10,100,512")
    if n_samples < 2:
        raise InputError("--n-samples must be at least 2")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    iso = thin_shell_curve(dims, n_samples, seed=seed)
    aniso = anisotropic_shell_table(dims, n_samples, seed=seed)
    files = {"isotropic": out / "thin_shell_isotropic.csv", "anisotropic": out / "thin_shell_anisotropic.csv"}
    iso.to_csv(files["isotropic"], index=False)
    aniso.to_csv(files["anisotropic"], index=False)
    files["json"] = out / "thin_shell.json"
    files["json"].write_text(json.dumps({
        "isotropic": iso.to_dict("records"),
        "anisotropic": aniso.to_dict("records"),
        "n_samples": n_samples,
        "provenance": provenance({"dims": dims, "n_samples": n_samples, "seed": seed}),
    }, indent=1) + "\n")
    files["figure"] = _thin_shell_figure(iso, aniso, out / "thin_shell.png")
    return files


def _thin_shell_figure(iso, aniso, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting._style import REFERENCE, SERIES, style

    with style():
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
        for k, (dist, group) in enumerate(iso.groupby("distribution", sort=False)):
            axes[0].plot(group["dim"], group["mean_norm"], marker="o", color=SERIES[k], label=dist)
            axes[1].plot(group["dim"], group["std_norm"], marker="o", color=SERIES[k], label=dist)
        dims = np.sort(iso["dim"].unique())
        axes[0].plot(dims, np.sqrt(dims), "--", color=REFERENCE, label="sqrt(n)")
        axes[0].set(xscale="log", yscale="log", xlabel="dimension n", ylabel="mean ||x||", title="isotropic: mean norm ≈ sqrt(n)")
        axes[1].set(xscale="log", xlabel="dimension n", ylabel="std ||x||", ylim=(0, None), title="isotropic: spread stays O(1)")
        axes[2].plot(aniso["dim"], aniso["mean_centered_norm"], marker="o", color=SERIES[1], label="mean ||x − m||")
        axes[2].plot(aniso["dim"], aniso["sqrt_trace_cov"], "--", color=REFERENCE, label="sqrt(tr C)")
        axes[2].set(xscale="log", yscale="log", xlabel="dimension n", ylabel="norm",
                    title="anisotropic: centred norm ≈ sqrt(tr C)")
        for ax in axes:
            ax.legend()
        fig.savefig(path, dpi=120, metadata={"Software": None})
        plt.close(fig)
    return path


def simulate_store(
    out: str | Path,
    *,
    n: int = 2000,
    dim: int = 64,
    offset_ratio: float = 1.0,
    separation: float = 8.0,
    separating_features: int = 2,
    unit_norm: bool = False,
    seed: int = 0,
) -> tuple[Path, dict[str, Any]]:
    """Write a synthetic double-ellipsoid store; returns its path and the ground truth summary."""
    from .store import StoreMeta, write_store
    from .synthetic import double_ellipsoid, synthetic_captions

    if n < 2 or dim < 2:
        raise InputError("--n and --dim must be at least 2")
    image, text, truth = double_ellipsoid(
        n, dim, offset_ratio=offset_ratio, separation=separation, separating_features=separating_features,
        unit_norm=unit_norm, seed=seed,
    )
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
              "separating_features": separating_features, "unit_norm": unit_norm, "seed": seed}
    meta = StoreMeta(model="synthetic-double-ellipsoid", dim=dim, normalized=unit_norm,
                     source=f"clipgeo.synthetic.double_ellipsoid(seed={seed})",
                     **provenance({**config, "ground_truth": truth_dict}))
    path = write_store(out, meta, image=image, text=text, captions=synthetic_captions(n, seed=seed),
                       text_image_ids=[str(i) for i in range(n)])
    (Path(out) / "ground_truth.json").write_text(json.dumps(truth_dict, indent=1) + "\n")
    return path, truth_dict
