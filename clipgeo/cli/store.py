"""`clipgeo import` and `clipgeo info`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional

import typer

from ..store import import_embeddings, read_store
from ._app import app, echo_json, warn
from ._options import flag_errors

# the library's defaults, not restated here
IMPORT = {name: p.default for name, p in inspect.signature(import_embeddings).parameters.items()}
READ = {name: p.default for name, p in inspect.signature(read_store).parameters.items()}


@app.command("import")
def import_cmd(
    out: Path = typer.Option(..., "--out", help="Store directory to write."),
    image: Optional[str] = typer.Option(IMPORT["image"], "--image", help="Image embeddings: FILE or FILE:KEY (.npy .npz .pt .parquet .csv)."),
    text: Optional[str] = typer.Option(IMPORT["text"], "--text", help="Text embeddings: FILE or FILE:KEY."),
    pairs: Optional[str] = typer.Option(IMPORT["pairs"], "--pairs", help="Text row -> image row map (one column, -1 = none) or (text_row, image_row) pairs."),
    captions: Optional[str] = typer.Option(IMPORT["captions"], "--captions", help="One caption per text row: .txt/.json/.jsonl/.csv/.parquet[:COLUMN]."),
    image_paths: Optional[str] = typer.Option(IMPORT["image_paths"], "--image-paths", help="One path per image row, same formats as --captions."),
    model_name: str = typer.Option(IMPORT["model_name"], "--model-name", help="Name of the model that produced the embeddings."),
    pretrained: Optional[str] = typer.Option(IMPORT["pretrained"], "--pretrained", help="Pretrained tag of that model, if any."),
    store_dtype: Optional[str] = typer.Option(IMPORT["store_dtype"], "--store-dtype", help="float32 or float16 (default: float16 only if the inputs are)."),
    overwrite: bool = typer.Option(IMPORT["overwrite"], "--overwrite", help="Replace a store of the same model in --out."),
    clip_retrieval: Optional[Path] = typer.Option(
        None, "--clip-retrieval", help="A clip-retrieval / embedding-reader folder (img_emb/, text_emb/, metadata/) instead of --image/--text."
    ),
) -> None:
    """Turn embeddings computed elsewhere into a clipgeo store (read and written chunk by chunk)."""
    from ..errors import InputError
    from ..store import summary as store_summary

    if clip_retrieval is not None:
        from ..store import import_clip_retrieval

        if image is not None or text is not None or pairs is not None:
            raise InputError("--clip-retrieval reads the embeddings and pairs from its folder; drop --image/--text/--pairs")
        with flag_errors(import_cmd, aliases={"folder": "clip_retrieval"}):
            path = import_clip_retrieval(out, clip_retrieval, model_name=model_name, pretrained=pretrained,
                                         store_dtype=store_dtype, overwrite=overwrite)
    else:
        with flag_errors(import_cmd):
            path = import_embeddings(
                out,
                image=image,
                text=text,
                pairs=pairs,
                captions=captions,
                image_paths=image_paths,
                model_name=model_name,
                pretrained=pretrained,
                store_dtype=store_dtype,
                overwrite=overwrite,
            )
    s = store_summary(path)  # from the manifest: the rows are not read again
    typer.echo(
        f"wrote {path}: {s.rows['image']} image rows, {s.rows['text']} text rows, "
        f"{s.run.get('n_pairs', 0)} pairs, dim {s.dim}, {s.store_dtype}"
    )
    if s.normalized:
        warn("rows are already unit-norm: raw-space analyses (thin shell, offsets, Mahalanobis shells) are degenerate; "
             "extract raw features with `clipgeo extract` for those")


@app.command("info")
def info_cmd(
    store: Path = typer.Argument(..., help="Store directory."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of text."),
    allow_incomplete: bool = typer.Option(
        READ["allow_incomplete"], "--allow-incomplete", help="Describe the finished shards of an unfinished store."
    ),
) -> None:
    """Counts, dimension, model, provenance and norm statistics of a store."""
    from ..store import summarize_store

    with flag_errors(info_cmd):
        summary = summarize_store(store, allow_incomplete=allow_incomplete)  # batch by batch: any size
    if as_json:
        echo_json(summary)
    else:
        lines = [
            f"store      {store}",
            f"model      {summary['model']}",
            f"dim        {summary['dim']} ({summary['store_dtype']} on disk)",
            f"rows       {summary['n_image']} image, {summary['n_text']} text, {summary['n_pairs']} pairs",
            f"source     {summary['source']}",
            f"created    {summary['provenance']['created']} by: {summary['provenance']['command']}",
        ]
        for modality in ("image", "text"):
            s = summary["norms"][modality]
            if s:
                lines.append(
                    f"{modality:<10} ||x|| mean {s['mean']:.4g}  std {s['std']:.3g}  min {s['min']:.4g}  max {s['max']:.4g}"
                )
        if summary["skipped"]:
            lines.append("skipped    " + ", ".join(f"{n} {reason}" for reason, n in summary["skipped"].items()))
        typer.echo("\n".join(lines))
    for message in summary["warnings"]:
        warn(message)
