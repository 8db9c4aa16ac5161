"""``clipgeo whiten``: fit a Gaussian whitener to one modality of a store, save it, score other stores."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import InputError
from ._app import app

MODALITIES = ("image", "text")


def _rows(store: Path, modality: str):
    from ..store import read_store

    es = read_store(store)
    x = es.image if modality == "image" else es.text
    if x is None or len(x) == 0:
        other = "text" if modality == "image" else "image"
        raise InputError(f"{store} has no {modality} rows; pick the other modality with --modality {other}")
    return es, x


@app.command("whiten")
def whiten_cmd(
    store: Path = typer.Argument(..., help="Store whose rows the whitener is fitted on (e.g. COCO embeddings)."),
    out: Path = typer.Option(
        ..., "--out", help="The fitted whitener: an .npz file (mean, eigenvalues, components, W)."
    ),
    modality: str = typer.Option("image", "--modality", help="image or text."),
    score: Optional[list[Path]] = typer.Option(
        None, "--score", help="Store(s) whose rows are scored under the fit (repeatable)."
    ),
) -> None:
    """Fit W = V Λ^(-1/2) (Whitened CLIP) to one modality and score the rows of other stores by log-likelihood."""
    import json

    import numpy as np

    from .._io import atomic_path, to_jsonable, write_json
    from ..analyzers import Whitener, gaussianity
    from ..provenance import provenance

    if modality not in MODALITIES:
        raise InputError(f"--modality {modality!r} is not known; use image or text")
    if out.suffix != ".npz":
        raise InputError(f"--out {out} must end in .npz (the whitener is saved as numpy arrays)")
    es, x = _rows(store, modality)
    whitener = Whitener().fit(x)
    ll = whitener.log_likelihood(x)
    lines = [
        f"fitted on {len(x)} {modality} rows of {es.meta.model_id}, d = {whitener.n_features_in_}"
        + (" (Ledoit–Wolf covariance: n <= d)" if whitener.ledoit_wolf_ else "")
        + (f", {whitener.n_floored_} eigenvalue(s) floored" if whitener.n_floored_ else ""),
        f"  in-sample mean log-likelihood {ll.mean():.2f} nats per row",
    ]
    if len(x) >= 20:
        dag, ad = gaussianity(whitener.transform(x))
        lines.append(
            f"  whitened coordinates passing at 5 %: D'Agostino–Pearson {100 * dag:.1f} %, Anderson–Darling {100 * ad:.1f} %"
        )

    scored = []
    for other in score or []:
        es2, y = _rows(other, modality)
        if y.shape[1] != whitener.n_features_in_:
            raise InputError(
                f"{other} has {y.shape[1]}-dimensional {modality} rows but the whitener was fitted on "
                f"{whitener.n_features_in_}-dimensional rows of {store}; score a store of the same model"
            )
        scores = whitener.log_likelihood(y)
        path = out.with_name(f"{out.stem}.{Path(other).name}.scores.csv")
        ids = es2.image_ids if modality == "image" else es2.text_ids
        import pandas as pd

        frame = pd.DataFrame({"row": np.arange(len(y)), "log_likelihood": scores})
        if ids is not None and len(ids) == len(y):
            frame.insert(1, "id", ids)
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.9g")
        scored.append({"store": str(other), "scores": str(path), "mean": float(scores.mean())})
        lines.append(
            f"  scored {other}: {len(y)} rows, mean log-likelihood {scores.mean():.2f} "
            f"(median {np.median(scores):.2f}; fitted rows {ll.mean():.2f}) -> {path}"
        )

    meta = provenance({"store": str(store), "modality": modality, "model": es.meta.model_id, "scored": scored})
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **whitener.to_arrays(), provenance=np.array(json.dumps(to_jsonable(meta))))
    write_json(out.with_suffix(".json"), meta)
    lines.append(f"wrote {out} (load with clipgeo.Whitener.from_arrays(numpy.load(path)))")
    typer.echo("\n".join(lines))
