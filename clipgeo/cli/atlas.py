"""`clipgeo atlas`: a Parquet table of every embedding with its geometry, for Apple's Embedding Atlas."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..atlas import atlas_table, open_atlas
from ..errors import InputError
from ._app import app
from ._options import defaults, flag_errors

D = {**defaults(atlas_table), "host": defaults(open_atlas)["host"]}


@app.command("atlas")
def atlas_cmd(
    store: Path = typer.Argument(..., help="Store directory (written by `clipgeo extract` or `clipgeo import`)."),
    out: Path = typer.Option(..., "--out", help="The Parquet file to write (e.g. table.parquet)."),
    analysis: Optional[Path] = typer.Option(
        None,
        "--analysis",
        help="A `clipgeo analyze` output of this store: its per-row numbers are used, not recomputed.",
    ),
    n_features: int = typer.Option(
        D["n_features"], "--features", help="Columns feature_<k> for this many of the most separating features."
    ),
    neighbors: int = typer.Option(
        D["neighbors"], "--neighbors", help="Nearest neighbours per row (cosine, itself included; 0: no column)."
    ),
    umap: Optional[bool] = typer.Option(
        None, "--umap/--no-umap", help="Add umap_x, umap_y (default: when umap-learn is installed)."
    ),
    seed: int = typer.Option(D["seed"], "--seed", help="Seed of the Mahalanobis folds and the UMAP."),
    allow_incomplete: bool = typer.Option(
        D["allow_incomplete"], "--allow-incomplete", help="Read the finished shards of an unfinished store."
    ),
    thumbnails: Optional[int] = typer.Option(
        None,
        "--thumbnails",
        help="Pixels a side of the image thumbnails Atlas shows (0: none; default 96 when the images can be read).",
    ),
    image_root: Optional[Path] = typer.Option(
        None, "--image-root", help="Folder that relative image paths are relative to (default: the store's source)."
    ),
    open_: bool = typer.Option(
        False, "--open", help="Start embedding-atlas on the table (needs clipgeo[atlas]); otherwise print the command."
    ),
    host: str = typer.Option(D["host"], "--host", help="Address embedding-atlas listens on with --open."),
    port: Optional[int] = typer.Option(None, "--port", help="Port of embedding-atlas with --open (default: its own)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Write one row per image and caption with its norms, Mahalanobis distance, conformity, PCA and neighbours."""
    import shlex

    from ..atlas import atlas_command, atlas_installed, write_atlas

    for flag, value in (("--features", n_features), ("--neighbors", neighbors), ("--thumbnails", thumbnails or 0)):
        if value < 0:
            raise InputError(f"{flag} must be 0 or more, got {value}")
    from .._progress import quiet_scope

    with flag_errors(atlas_cmd, aliases={"n_features": "features"}), quiet_scope(quiet):
        run = write_atlas(
            store, out, analysis, n_features=n_features, neighbors=neighbors, umap=umap, seed=seed,
            allow_incomplete=allow_incomplete, thumbnails=thumbnails, image_root=image_root,
        )  # fmt: skip
    typer.echo(f"wrote {run.path}: {run.rows} rows, columns {', '.join(run.columns)}")
    command = shlex.join(atlas_command(run.path, columns=run.columns))
    if not open_:
        typer.echo(f"explore it with: {command}")
        return
    if atlas_installed() is None:
        typer.echo("embedding-atlas is not installed (pip install 'clipgeo[atlas]'); run this once it is:")
        typer.echo(f"  {command}")
        return
    typer.echo(
        f"starting: {shlex.join(atlas_command(run.path, columns=run.columns, host=host, port=port))}  (Ctrl-C stops it)"
    )
    proc = open_atlas(run.path, host=host, port=port, columns=run.columns)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=10)
        raise
