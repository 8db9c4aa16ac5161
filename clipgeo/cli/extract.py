"""`clipgeo extract`: images and captions through an open_clip model into a store."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from ..data import open_source
from ..extract import ExtractOptions
from ..runtime import PRECISIONS
from ._app import app, echo_json, warn
from ._options import as_flags, defaults, flag_errors

DATA = defaults(open_source)
D = defaults(ExtractOptions)


@app.command("extract")
def extract_cmd(
    out: Path = typer.Option(..., "--out", help="Store directory to write (re-run the same command to resume)."),
    coco_captions: Optional[Path] = typer.Option(None, "--coco-captions", help="MS-COCO captions_*.json."),
    coco_images: Optional[Path] = typer.Option(None, "--coco-images", help="Folder with the COCO images."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of images (searched recursively)."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="CSV/TSV/JSONL with columns file_name, caption."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Hugging Face dataset: hub id or local file/folder."),
    split: str = typer.Option(DATA["split"], "--split", help="Split of --dataset."),
    image_column: Optional[str] = typer.Option(None, "--image-column", help="Image column of --dataset."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Caption column of --dataset."),
    texts: Optional[Path] = typer.Option(None, "--texts", help="Captions only: .txt (one per line) or CSV/JSONL."),
    captions_per_image: str = typer.Option(DATA["captions_per_image"], "--captions-per-image", help="all or first."),
    model: str = typer.Option(D["model"], "--model", help="open_clip architecture, or 'tiny'."),
    pretrained: Optional[str] = typer.Option(
        D["pretrained"], "--pretrained", help="open_clip tag, or 'none' (random init). Default: openai, or none with --checkpoint."
    ),
    checkpoint: Optional[Path] = typer.Option(
        D["checkpoint"], "--checkpoint", help="Local .pt/.safetensors state dict; add --pretrained TAG when it holds TAG's weights."
    ),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", help="Images per batch (and captions per text batch)."),
    num_workers: Optional[int] = typer.Option(D["num_workers"], "--num-workers", help="Decoding processes (default: CPUs - 1, at most 8)."),
    device: str = typer.Option(D["device"], "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(
        D["precision"], "--precision",
        help=f"{', '.join(PRECISIONS)}: fp16/bf16 autocast the model (weights stay fp32); auto: fp16 on CUDA.",
    ),
    store_dtype: str = typer.Option(D["store_dtype"], "--store-dtype", help="float32 or float16 on disk."),
    limit: Optional[int] = typer.Option(D["limit"], "--limit", help="Only the first N images (records)."),
    seed: int = typer.Option(D["seed"], "--seed", help="Seed of the random initialisation (--pretrained none)."),
    shard_size: int = typer.Option(D["shard_size"], "--shard-size", help="Records per shard (the unit of resume)."),
    decode: str = typer.Option(
        D["decode"], "--decode", help="pil (exact), draft (PIL JPEG draft mode), torchvision (libjpeg-turbo in workers) "
        "or device (JPEGs decoded on the GPU); the last three are faster, pixels differ slightly."
    ),
    max_pixels: Optional[int] = typer.Option(D["max_pixels"], "--max-pixels", help="Skip images with more pixels (default: PIL's bomb limit)."),
    decode_timeout: float = typer.Option(D["decode_timeout"], "--decode-timeout", help="Seconds before one image is skipped."),
    trim_text: bool = typer.Option(D["trim_text"], "--trim-text/--no-trim-text", help="Run the text tower only to the longest caption."),
    progress: Optional[bool] = typer.Option(D["progress"], "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Embed images and captions with an open_clip model (raw features, before normalisation) into a store.

    \b
    Examples:
      clipgeo extract --coco-captions annotations/captions_val2017.json --coco-images val2017 --out coco_vitb32
      clipgeo extract --images photos/ --captions captions.csv --model ViT-B-32 --pretrained openai --out store
      torchrun --nproc-per-node 4 -m clipgeo extract --coco-captions ... --coco-images ... --out store
    """
    with flag_errors(extract_cmd):
        _run(**locals())


def _run(*, out, coco_captions, coco_images, images, captions, dataset, split, image_column, text_column, texts,
         captions_per_image, as_json, **options) -> None:
    from ..extract import extract

    source, _ = open_source(coco_captions=coco_captions, coco_images=coco_images, images=images, captions=captions,
                            dataset=dataset, split=split, image_column=image_column, text_column=text_column,
                            texts=texts, captions_per_image=captions_per_image,
                            kinds=("folder", "coco", "dataset", "texts"))  # fmt: skip
    if options["checkpoint"] is not None:
        options["checkpoint"] = str(options["checkpoint"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        summary = extract(source, out, ExtractOptions(**options))
    if summary["rank"] != 0:
        return
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        warn(as_flags(message, extract_cmd))  # the library's parameter names as this command's flags
    if as_json:
        echo_json(summary)
        return
    rows = summary["rows"]
    if summary["status"] == "already complete":
        typer.echo(f"{out} is already complete ({rows['image']} image rows, {rows['text']} text rows); nothing to do")
        return
    typer.echo(
        f"wrote {out}: {rows['image']} image rows, {rows['text']} text rows in {summary['shards']} shards "
        f"({summary['shards_written']} written now, {summary['shards_resumed']} already done)"
    )
    typer.echo(
        f"time {summary['seconds']:.1f} s, {summary['pairs']} pairs, {summary['pairs_per_s']:.1f} pairs/s "
        f"on {summary['device']} x{summary['world_size']}"
    )
    for modality in ("image", "text"):
        counts = summary["skipped"][modality]
        if counts:
            typer.echo(f"skipped {modality}s: " + ", ".join(f"{n} {reason}" for reason, n in counts.items()))
    if summary["truncated_captions"]:
        typer.echo(f"truncated captions: {summary['truncated_captions']} (longer than the model's context; cut)")
