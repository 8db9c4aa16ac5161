"""`clipgeo simulate thin-shell` and `clipgeo simulate double-ellipsoid`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..simulate import DoubleEllipsoidConfig, ThinShellConfig, simulate_store
from ._app import app
from ._options import defaults, flag_errors

TS = defaults(ThinShellConfig)
DE = defaults(DoubleEllipsoidConfig)
STORE = defaults(simulate_store)

simulate_app = typer.Typer(help="Simulations: thin-shell theory, synthetic double-ellipsoid stores.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")


def _dims(text: str) -> list[int]:
    from ..errors import InputError

    try:
        dims = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        dims = []
    if not dims or min(dims) < 1:
        raise InputError(f"--dims takes comma-separated positive integers (e.g. 2,10,100,512), got {text!r}")
    return dims


@simulate_app.command("thin-shell")
def thin_shell_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for the tables, JSON and figure."),
    dims: str = typer.Option(",".join(map(str, TS["dims"])), "--dims", help="Comma-separated dimensions."),
    n_samples: int = typer.Option(TS["n_samples"], "--n-samples", help="Samples per dimension and law."),
    seed: int = typer.Option(TS["seed"], "--seed"),
) -> None:
    """SPEC §3 by sampling: isotropic norms ≈ sqrt(n) with O(1) spread; anisotropic centred norms ≈ sqrt(tr C)."""
    from ..simulate import thin_shell_study

    with flag_errors(thin_shell_cmd):
        files = thin_shell_study(out, _dims(dims), n_samples=n_samples, seed=seed)
    import pandas as pd

    iso = pd.read_csv(files["isotropic"])
    for _, row in iso[iso["distribution"] == "gaussian"].iterrows():
        typer.echo(f"gaussian n={int(row['dim']):>4}: ||x|| = {row['mean_norm']:.3f} ± {row['std_norm']:.3f} "
                   f"(sqrt(n) = {row['sqrt_dim']:.3f})")
    typer.echo(f"wrote {', '.join(str(p) for p in files.values())}")


@simulate_app.command("double-ellipsoid")
def double_ellipsoid_cmd(
    out: Path = typer.Option(..., "--out", help="Store directory to write."),
    n: int = typer.Option(DE["n"], "--n", help="Image/text pairs."),
    dim: int = typer.Option(DE["dim"], "--dim", help="Embedding dimension."),
    gap: float = typer.Option(DE["separation"], "--gap", help="d' of each planted modality-separating feature."),
    offset: float = typer.Option(DE["offset_ratio"], "--offset", help="||m|| / ||σ|| of both ellipsoids."),
    separating_features: int = typer.Option(DE["separating_features"], "--separating-features", help="How many features separate the modalities."),
    unit_norm: bool = typer.Option(DE["unit_norm"], "--unit-norm", help="L2-normalise the rows (as many embedding dumps are)."),
    seed: int = typer.Option(DE["seed"], "--seed"),
    store_dtype: str = typer.Option(STORE["store_dtype"], "--store-dtype", help="float32 or float16 on disk (float16 halves a large store)."),
) -> None:
    """Write a synthetic store with known ground truth (ground_truth.json beside the shards); streams for large --n."""
    with flag_errors(double_ellipsoid_cmd, aliases={"offset_ratio": "offset", "separation": "gap"}):
        path, truth = simulate_store(out, n=n, dim=dim, offset_ratio=offset, separation=gap,
                                     separating_features=separating_features, unit_norm=unit_norm, seed=seed,
                                     store_dtype=store_dtype)
    typer.echo(f"wrote {path}: {n} pairs, dim {dim}; planted separating features {truth['separating_features']}, "
               f"offset ratio {truth['offset_ratio_image']:.2f}; ground truth in {path / 'ground_truth.json'}")
