"""``clipgeo train``: train or fine-tune a CLIP and log its geometry over training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..data import open_source
from ..errors import InputError
from ..runtime import PRECISIONS
from ..train.config import TrainConfig
from ._app import app
from ._options import defaults, flag_errors

DATA = defaults(open_source)
D = defaults(TrainConfig)
#: library parameter -> this command's option, where the names differ
ALIASES = {"warmup_steps": "warmup"}


@app.command("train")
def train_command(
    out: Path = typer.Option(..., "--out", help="RUN_DIR: checkpoint.pt, model.safetensors, metrics.csv, curves.png, config.json."),
    shapes: Optional[int] = typer.Option(None, "--shapes", help="Train on N built-in captioned shapes (deterministic by --seed)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Folder of images (with --captions: CSV/TSV/JSONL file_name,caption)."),
    captions: Optional[Path] = typer.Option(None, "--captions", help="Captions table for --images."),
    coco_captions: Optional[Path] = typer.Option(None, "--coco-captions", help="COCO captions json (with --coco-images)."),
    coco_images: Optional[Path] = typer.Option(None, "--coco-images", help="Image folder of --coco-captions."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Hugging Face dataset id or local parquet/json/csv/folder."),
    split: str = typer.Option(DATA["split"], "--split", help="Split of --dataset."),
    image_column: Optional[str] = typer.Option(None, "--image-column", help="Image column of --dataset."),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Caption column of --dataset."),
    captions_per_image: str = typer.Option(DATA["captions_per_image"], "--captions-per-image", help="all: one pair per caption; first: one per image."),
    model: str = typer.Option(D["model"], "--model", help="open_clip architecture, or 'tiny' (CPU-sized)."),
    pretrained: str = typer.Option(D["pretrained"], "--pretrained", help="open_clip pretrained tag to fine-tune, or 'none' (random init)."),
    checkpoint: Optional[Path] = typer.Option(D["checkpoint"], "--checkpoint", help="Initial weights from a local state dict / .safetensors."),
    objective: str = typer.Option(
        D["objective"], "--objective", "--loss",
        help="clip, simclr, moco, memory-bank, pirl, local-aggregation, swav, simcse, byol, barlow-twins, vicreg or supervised.",
    ),
    objective_option: Optional[list[str]] = typer.Option(
        None, "--objective-option", help="KEY=VALUE passed to the objective (VALUE read as JSON if it parses); repeatable."
    ),
    temperature: Optional[float] = typer.Option(
        D["temperature"], "--temperature", help="Fixed CLIP temperature τ > 0 (logit scale 1/τ, not learned), e.g. 0.01."
    ),
    init_temperature: Optional[float] = typer.Option(
        D["init_temperature"], "--init-temperature",
        help="Start of the learnable CLIP logit scale, 1/τ₀ (e.g. 0.07) [default: the model's own].",
    ),
    init: str = typer.Option(D["init"], "--init", help="random: the model as loaded; centred: each tower's outputs shifted to mean 0 at step 0."),
    epochs: int = typer.Option(D["epochs"], "--epochs", help="Epochs to train."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", help="Batch size (per process under torchrun)."),
    lr: float = typer.Option(D["lr"], "--lr", help="Peak learning rate of AdamW."),
    weight_decay: float = typer.Option(D["weight_decay"], "--weight-decay", help="AdamW weight decay (not on gains, biases, logit scale)."),
    grad_clip: Optional[float] = typer.Option(D["grad_clip"], "--grad-clip", help="Clip the gradient norm at this value [default: no clipping]."),
    warmup: Optional[int] = typer.Option(D["warmup_steps"], "--warmup", help="Linear warm-up steps [default: 5% of all steps]."),
    heldout: Optional[int] = typer.Option(D["heldout"], "--heldout", help="Held-out samples for the metrics [default: min(256, N/10)]."),
    log_every: int = typer.Option(D["log_every"], "--log-every", help="Log metrics every this many steps (and after every epoch)."),
    seed: int = typer.Option(D["seed"], "--seed", help="Seed of the data, split, initialisation and shuffling."),
    device: str = typer.Option(D["device"], "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(
        D["precision"], "--precision",
        help=f"{', '.join(PRECISIONS)}: fp16/bf16 autocast (fp16 with a gradient scaler; weights stay fp32); auto: fp16 on CUDA.",
    ),
    workers: int = typer.Option(D["workers"], "--workers", help="DataLoader worker processes."),
    augment: bool = typer.Option(D["augment"], "--augment/--no-augment", help="Random crops of open_clip's training transform."),
    resume: bool = typer.Option(D["resume"], "--resume", help="Continue the run in --out from its checkpoint."),
    stop_after_epochs: Optional[int] = typer.Option(
        D["stop_after_epochs"], "--stop-after-epochs", help="Train at most this many epochs now; continue later with --resume."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress lines."),
) -> None:
    """Train an open_clip model on paired data; writes checkpoints, metrics.csv and curves.png into --out."""
    with flag_errors(train_command, ALIASES):
        _run(**locals())


def _run(*, out, shapes, images, captions, coco_captions, coco_images, dataset, split, image_column, text_column,
         captions_per_image, checkpoint, objective, objective_option, warmup, quiet, **options) -> None:
    from ..train.trainer import train

    source, data = open_source(
        shapes=shapes, images=images, captions=captions, coco_captions=coco_captions, coco_images=coco_images,
        dataset=dataset, split=split, image_column=image_column, text_column=text_column,
        captions_per_image=captions_per_image, seed=options["seed"], kinds=("shapes", "folder", "coco", "dataset"),
        pairs=True, what="training data",
    )  # fmt: skip
    config = TrainConfig(
        out=str(out),
        checkpoint=None if checkpoint is None else str(checkpoint),
        objective=objective,
        objective_options=_objective_options(objective, objective_option or []),
        warmup_steps=warmup,
        data=data,
        **options,
    )
    result = train(config, source, progress=not quiet)
    if result.rank != 0:
        return
    m = result.metrics
    names = result.pair_names
    r_ab, r_ba = m.get(f"r1_{names[0]}_to_{names[1]}"), m.get(f"r1_{names[1]}_to_{names[0]}")
    typer.echo(f"trained {result.steps} steps in {result.seconds:.1f} s -> {result.run_dir}")
    if r_ab is not None:
        typer.echo(
            f"held-out R@1 {names[0]}->{names[1]} {r_ab:.3f}, {names[1]}->{names[0]} {r_ba:.3f} "
            f"(chance {m['chance_r1']:.3f}); l2 centroid distance {m['l2_centroid_distance']:.3f}"
        )
    if result.weights.is_file():
        typer.echo(f"weights: {result.weights}")
    if shapes is not None and result.finished:
        heldout_dir = result.run_dir / "heldout_shapes"
        source.write(heldout_dir, indices=result.heldout_indices)
        typer.echo(
            f"held-out shapes: {heldout_dir} (clipgeo extract --model {config.model} --checkpoint {result.weights} "
            f"--images {heldout_dir / 'images'} --captions {heldout_dir / 'captions.csv'} ...)"
        )


def _objective_options(objective: str, pairs: list[str]) -> dict:
    """``["queue_size=1024", "temperature=0.2"]`` -> keyword options, checked against the objective."""
    import inspect
    import json

    from ..train.objective import get_objective

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"objective_option takes KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    if options:
        known: list[str] = []
        for cls in get_objective(objective).__mro__:  # follow **kwargs up to the class that takes them
            if "__init__" not in vars(cls):
                continue
            params = inspect.signature(cls.__init__).parameters.values()
            named = (p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
            known += [p.name for p in named if p.name not in ("self", "ctx")]
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(
                f"objective {objective!r} has no option {', '.join(unknown)}; its options are {', '.join(known) or 'none'}"
            )
    return options
