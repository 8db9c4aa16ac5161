"""`clipgeo extract`: images and captions through an open_clip model into a store."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer

from ._app import app, echo_json, warn


def _source(coco_captions, coco_images, images, captions, dataset, split, image_column, text_column, texts,
            captions_per_image):
    """The one input the options describe (exactly one kind must be given)."""
    from .. import data
    from ..errors import InputError

    kinds = {
        "--coco-captions/--coco-images": coco_captions is not None or coco_images is not None,
        "--images/--captions": images is not None or captions is not None,
        "--dataset": dataset is not None,
        "--texts": texts is not None,
    }
    given = [k for k, v in kinds.items() if v]
    if not given:
        raise InputError(
            "no input given; pass --coco-captions FILE --coco-images DIR, --images DIR [--captions FILE], "
            "--dataset ID_OR_PATH or --texts FILE"
        )
    if len(given) > 1:
        raise InputError(f"give one input kind, not {' and '.join(given)}; run one extraction per store")
    if given[0].startswith("--coco"):
        if coco_captions is None or coco_images is None:
            raise InputError("COCO input needs both --coco-captions FILE.json and --coco-images DIR")
        return data.coco(coco_captions, coco_images, captions_per_image)
    if given[0].startswith("--images"):
        if images is None:
            raise InputError("--captions needs --images DIR (the folder the file_name column refers to)")
        return data.folder(images, captions, captions_per_image)
    if dataset is not None:
        return data.hf_dataset(dataset, split, image_column, text_column, captions_per_image)
    return data.texts(texts)


@app.command("extract")
def extract_cmd(
    out: Path = typer.Option(..., "--out", help="Store directory to write (re-run the same command to resume)."),
    coco_captions: Optional[Path] = typer.Option(None, "--coco-captions", help="MS-COCO captions_*.json."),
    coco_images: Optional[Path] = typer.Option(None, "--coco-images", help="Folder with the COCO images."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of images (searched recursively)."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="CSV/TSV/JSONL with columns file_name, caption."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Hugging Face dataset: hub id or local file/folder."),
    split: str = typer.Option("train", "--split", help="Split of --dataset."),
    image_column: Optional[str] = typer.Option(None, "--image-column", help="Image column of --dataset."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Caption column of --dataset."),
    texts: Optional[Path] = typer.Option(None, "--texts", help="Captions only: .txt (one per line) or CSV/JSONL."),
    captions_per_image: str = typer.Option("all", "--captions-per-image", help="all or first."),
    model: str = typer.Option("ViT-B-32", "--model", help="open_clip architecture, or 'tiny'."),
    pretrained: Optional[str] = typer.Option(
        None, "--pretrained", help="open_clip tag, or 'none' (random init). Default: openai, or none with --checkpoint."
    ),
    checkpoint: Optional[Path] = typer.Option(
        None, "--checkpoint", help="Local .pt/.safetensors state dict; add --pretrained TAG when it holds TAG's weights."
    ),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per batch (and captions per text batch)."),
    num_workers: Optional[int] = typer.Option(None, "--num-workers", help="Decoding processes (default: CPUs - 1, at most 8)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, fp16 or bf16 (autocast)."),
    store_dtype: str = typer.Option("float32", "--store-dtype", help="float32 or float16 on disk."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images (records)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random initialisation (--pretrained none)."),
    shard_size: int = typer.Option(2048, "--shard-size", help="Records per shard (the unit of resume)."),
    decode: str = typer.Option(
        "pil", "--decode", help="pil (exact), draft (PIL JPEG draft mode), torchvision (libjpeg-turbo in workers) "
        "or device (JPEGs decoded on the GPU); the last three are faster, pixels differ slightly."
    ),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Skip images with more pixels (default: PIL's bomb limit)."),
    decode_timeout: float = typer.Option(30.0, "--decode-timeout", help="Seconds before one image is skipped."),
    trim_text: bool = typer.Option(True, "--trim-text/--no-trim-text", help="Run the text tower only to the longest caption."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Embed images and captions with an open_clip model (raw features, before normalisation) into a store.

    \b
    Examples:
      clipgeo extract --coco-captions annotations/captions_val2017.json --coco-images val2017 --out coco_vitb32
      clipgeo extract --images photos/ --captions captions.csv --model ViT-B-32 --pretrained openai --out store
      torchrun --nproc-per-node 4 -m clipgeo extract --coco-captions ... --coco-images ... --out store
    """
    import os

    from ..extract import ExtractOptions, extract

    source = _source(coco_captions, coco_images, images, captions, dataset, split, image_column, text_column, texts,
                     captions_per_image)
    if pretrained is None:
        pretrained = "none" if checkpoint is not None else "openai"
    options = ExtractOptions(
        model=model,
        pretrained=pretrained,
        checkpoint=str(checkpoint) if checkpoint is not None else None,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        precision=precision,
        store_dtype=store_dtype,
        limit=limit,
        seed=seed,
        shard_size=shard_size,
        trim_text=trim_text,
        decode=decode,
        max_pixels=max_pixels,
        decode_timeout=decode_timeout,
        progress=progress,
    )
    rank = int(os.environ.get("RANK", "0") or 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        summary = extract(source, out, options)
    if rank != 0:
        return
    for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)):
        warn(message)
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
