"""Extraction benchmark: end-to-end `clipgeo extract` vs the model alone vs a naive loop.

    # CPU (this machine): ViT-B-32, random weights, the 99 coco_mini photos
    python benchmarks/bench_extract.py
    # GPU machine: fp16, more data (the photos repeated), decode levers measured too
    python benchmarks/bench_extract.py --device cuda --precision fp16 --batch-size 512 --num-workers 15 \\
        --repeat-data 200 --decode-levers
    # or real MS-COCO val2017
    python benchmarks/bench_extract.py --device cuda --precision fp16 --batch-size 512 --num-workers 15 \\
        --coco-captions annotations/captions_val2017.json --coco-images val2017 --decode-levers

Measured in one run, on the same model, batch size, precision and device:

1. **model-only**: images decoded and preprocessed beforehand (uint8 tensors in
   memory), captions tokenised beforehand; timed = host-to-device copy,
   normalisation, ``encode_image`` per batch, and the captions sorted by length
   and run through the *same trimmed* text tower clipgeo uses (so ratio 1 is
   against the best model-only figure, not a padded one).
2. **end-to-end**: :func:`clipgeo.extract.extract` into a fresh store — file
   reading, decoding, preprocessing, tokenising, model, writing Parquet; the
   time is the extraction loop, with the model built once and shared with
   model-only (so both run the same, equally warm weights).
3. **naive**: one image and one caption per forward pass, no workers, captions
   padded to the full context (how the paper's notebook extracts), on the first
   ``--naive-limit`` images.

The three are interleaved in each of ``--repeat`` repetitions (model-only and
end-to-end in ABBA order) and the ratios are the medians of the per-repetition
ratios, so that a machine whose load changes (a shared CI box) hits both sides
of a ratio alike.

A *pair* is one image–caption pair (COCO: 5 per image with the default
``--captions-per-image all``), or an image alone when it has no caption; the
naive loop encodes each image once and each caption on its own.  Ratios printed: end-to-end / model-only (target
>= 0.9) and end-to-end / naive (target >= 3).  With ``--decode-levers``, the
decode-only rate of each decoding option (PIL full, PIL JPEG draft, torchvision
``decode_jpeg`` on CPU and, on CUDA, batched on the GPU) is measured too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COCO_MINI = REPO.parent / "shared" / "realdata" / "coco_mini"


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def repeated(source, times: int):
    """The records of ``source`` ``times`` over (ids suffixed ``~r``), to time large runs on small data."""
    from clipgeo.data.sources import CaptionedSource, Record

    if times <= 1:
        return source

    class Repeated(CaptionedSource):
        kind, has_images = source.kind, source.has_images
        description = f"{source.description} x{times}"

        def __len__(self) -> int:
            return len(source) * times

        def __getitem__(self, index):
            r, i = divmod(index, len(source))
            rec = source[i]
            return Record(
                image_id=None if rec.image_id is None else f"{rec.image_id}~{r}",
                image=rec.image,
                path=rec.path,
                captions=rec.captions,
                caption_ids=tuple(f"{c}~{r}" for c in rec.caption_ids),
            )

        @property
        def fingerprint(self) -> str:
            return f"{source.fingerprint}x{times}"

    return Repeated()


def pairs_of(source) -> int:
    return sum(max(1, len(source[i].captions)) for i in range(len(source)))


def model_only(source, loaded, device, precision: str, batch_size: int) -> dict:
    """Throughput of the model alone on pre-decoded, pre-tokenised inputs (same trimming as clipgeo)."""
    import torch

    from clipgeo.data import load_image
    from clipgeo.extract._loader import pil_to_uint8, split_preprocess
    from clipgeo.extract._pipeline import _encode_texts
    from clipgeo.runtime import autocast

    pil, normalizer = split_preprocess(loaded.preprocess_val)
    images, captions, decoded = [], [], {}
    for i in range(len(source)):
        record = source[i]
        if record.image not in decoded:  # repeated data: decode each distinct file once
            image, _ = load_image(record.image)
            decoded[record.image] = None if image is None else pil_to_uint8(pil(image))
        if decoded[record.image] is not None:
            images.append(decoded[record.image])
        captions.extend(c for c in record.captions if c)
    images = torch.stack(images)
    tokens = loaded.tokenizer(captions, context_length=loaded.context_length)
    model = loaded.model
    if device.type == "cuda":
        images = images.pin_memory()
    with torch.inference_mode():
        # warm-up (kernels, allocator)
        with autocast(device, precision):
            model.encode_image(normalizer(images[:batch_size].to(device)), normalize=False)
        _encode_texts(model, tokens[:batch_size], batch_size, device, precision, True)
        _sync(device)
        start = time.perf_counter()
        for s in range(0, len(images), batch_size):
            x = normalizer(images[s : s + batch_size].to(device, non_blocking=True))
            with autocast(device, precision):
                model.encode_image(x, normalize=False).float()
        _encode_texts(model, tokens, batch_size, device, precision, True)
        _sync(device)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": len(images), "captions": len(captions)}


def text_trimming(source, loaded, device, precision: str, batch_size: int) -> dict:
    """Captions/s of the text tower: padded to the context (``encode_text``) vs clipgeo's length-sorted trimming."""
    import torch

    from clipgeo.extract._pipeline import _encode_texts
    from clipgeo.runtime import autocast

    captions = [c for i in range(len(source)) for c in source[i].captions if c]
    tokens = loaded.tokenizer(captions, context_length=loaded.context_length)
    model = loaded.model
    rates = {}
    with torch.inference_mode():
        for name, trim in (("padded", False), ("trimmed", True)):
            _encode_texts(model, tokens[:batch_size], batch_size, device, precision, trim)  # warm-up
            _sync(device)
            start = time.perf_counter()
            if trim:
                _encode_texts(model, tokens, batch_size, device, precision, True)
            else:  # plain encode_text in source order, as open_clip users do
                for s in range(0, len(tokens), batch_size):
                    with autocast(device, precision):
                        model.encode_text(tokens[s : s + batch_size].to(device), normalize=False)
            _sync(device)
            rates[name] = len(captions) / (time.perf_counter() - start)
    return {"captions": len(captions), "captions_per_s": rates, "speedup": rates["trimmed"] / rates["padded"]}


def naive(source, loaded, device, limit: int) -> dict:
    """One image and one caption per forward pass, in the main process, full-context captions."""
    import torch
    from PIL import Image

    model = loaded.model
    n = min(limit, len(source))
    pairs = 0
    with torch.inference_mode():
        start = time.perf_counter()
        for i in range(n):
            record = source[i]
            try:
                image = loaded.preprocess_val(Image.open(record.image).convert("RGB")).unsqueeze(0).to(device)
                model.encode_image(image, normalize=False).float().cpu()
            except OSError:
                pass
            for caption in record.captions:  # each caption on its own, the image once
                model.encode_text(loaded.tokenizer([caption]).to(device), normalize=False).float().cpu()
            pairs += max(1, len(record.captions))
        _sync(device)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "pairs": pairs}


def end_to_end(source, options_kw: dict, workdir: Path, loaded) -> dict:
    """`clipgeo.extract.extract` into a fresh store, with the same (already built) model as model-only."""
    from clipgeo.extract import ExtractOptions, extract

    out = workdir / "store"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = extract(source, out, ExtractOptions(**options_kw), loaded=loaded)
    wall = time.perf_counter() - start
    return {"seconds": summary["seconds"], "wall": wall, "pairs": summary["pairs"],
            "rows": summary["rows"], "num_workers": summary["num_workers"]}


def decode_levers(source, loaded, device, limit: int) -> dict:
    """Images/s of each way to get from a JPEG file to the model's input size (decode + resize + crop)."""
    import torch
    import torchvision
    from torchvision.transforms.v2 import functional as F

    from clipgeo.data import load_image
    from clipgeo.extract._loader import split_preprocess

    pil, _ = split_preprocess(loaded.preprocess_val)
    size = loaded.image_size
    paths = [source[i].image for i in range(min(limit, len(source))) if str(source[i].image).lower().endswith((".jpg", ".jpeg"))]
    blobs = [Path(p).read_bytes() for p in paths]
    results = {}

    def timed(name, fn):
        start = time.perf_counter()
        fn()
        _sync(device)
        results[name] = len(paths) / (time.perf_counter() - start)

    timed("pil_full", lambda: [pil(load_image(p)[0]) for p in paths])
    timed("pil_draft", lambda: [pil(load_image(p, draft_size=size)[0]) for p in paths])
    datas = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]

    def tv_cpu():
        for data in datas:
            x = torchvision.io.decode_jpeg(data, mode=torchvision.io.ImageReadMode.RGB)
            F.center_crop(F.resize(x, size, interpolation=F.InterpolationMode.BICUBIC, antialias=True), size)

    timed("torchvision_cpu", tv_cpu)
    if device.type == "cuda":
        def tv_gpu(batch=256):
            for s in range(0, len(datas), batch):
                decoded = torchvision.io.decode_jpeg(datas[s : s + batch], mode=torchvision.io.ImageReadMode.RGB,
                                                     device=device)
                for x in decoded:
                    F.center_crop(F.resize(x, size, interpolation=F.InterpolationMode.BICUBIC, antialias=True), size)

        tv_gpu(8)  # warm-up (nvjpeg handles)
        timed("torchvision_gpu_nvjpeg", tv_gpu)
    return {"images": len(paths), "images_per_s": {k: round(v, 1) for k, v in results.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco-captions", type=Path, default=COCO_MINI / "annotations" / "captions_val2017.json")
    parser.add_argument("--coco-images", type=Path, default=COCO_MINI / "val2017")
    parser.add_argument("--captions-per-image", default="all", choices=["all", "first"])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default="none", help="random weights by default (no download)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--decode", default="pil", choices=["pil", "draft", "torchvision", "device"])
    parser.add_argument("--repeat-data", type=int, default=1, help="run over the records this many times")
    parser.add_argument("--repeat", type=int, default=6, help="timed repetitions; the median is reported")
    parser.add_argument("--naive-limit", type=int, default=None,
                        help="images for the naive loop in each repetition (default: all on CPU, 2000 on GPU)")
    parser.add_argument("--decode-levers", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch

    from clipgeo.data import coco
    from clipgeo.models import load_model
    from clipgeo.runtime import resolve_device

    device = resolve_device(args.device)
    base = coco(args.coco_captions, args.coco_images, args.captions_per_image)
    source = repeated(base, args.repeat_data)
    pairs = pairs_of(source)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_model(args.model, args.pretrained, device="cpu")
    loaded.model.to(device).eval()

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, GPU {gpu}, Python "
          f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"data: {len(source)} images ({len(base)} distinct x{args.repeat_data}), {pairs} pairs; model {args.model} "
          f"({args.pretrained}), {args.precision}, batch {args.batch_size}, device {device}")

    options = dict(model=args.model, pretrained=args.pretrained, device=str(device.type), precision=args.precision,
                   batch_size=args.batch_size, num_workers=args.num_workers, shard_size=4096, decode=args.decode,
                   progress=False)
    results: dict = {"pairs": pairs}
    with tempfile.TemporaryDirectory(prefix="clipgeo-bench-extract-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = {"model_only": [], "end_to_end": [], "naive": [], "paired_ratio": [], "paired_speedup": []}
        limit = args.naive_limit or (2000 if device.type == "cuda" else len(source))
        for rep in range(args.repeat):  # interleaved (ABBA), so that a drifting machine load hits all alike
            for kind in ("model_only", "end_to_end") if rep % 2 == 0 else ("end_to_end", "model_only"):
                if kind == "model_only":
                    m = model_only(source, loaded, device, args.precision, args.batch_size)
                    runs["model_only"].append(pairs / m["seconds"])
                else:
                    e = end_to_end(source, options, Path(tmp), loaded)
                    runs["end_to_end"].append(e["pairs"] / e["seconds"])
            n = naive(source, loaded, device, limit)
            runs["naive"].append(n["pairs"] / n["seconds"])
            runs["paired_ratio"].append(runs["end_to_end"][-1] / runs["model_only"][-1])
            runs["paired_speedup"].append(runs["end_to_end"][-1] / runs["naive"][-1])
        results["naive"] = statistics.median(runs["naive"])
        results["model_only"] = statistics.median(runs["model_only"])
        results["end_to_end"] = statistics.median(runs["end_to_end"])
        results["runs"] = runs
        results["end_to_end_workers"] = e["num_workers"]
        results["end_to_end_wall_s"] = round(e["wall"], 2)
        results["text_trimming"] = text_trimming(base, loaded, device, args.precision, args.batch_size)
        if args.decode_levers:
            results["decode_levers"] = decode_levers(source, loaded, device, 5000)
    ratio_model = statistics.median(runs["paired_ratio"])
    ratio_naive = statistics.median(runs["paired_speedup"])
    results["ratio_end_to_end_over_model_only"] = ratio_model
    results["speedup_over_naive"] = ratio_naive
    print(f"model-only   {results['model_only']:9.1f} pairs/s  (runs: {', '.join(f'{v:.1f}' for v in runs['model_only'])})")
    print(f"end-to-end   {results['end_to_end']:9.1f} pairs/s  (runs: {', '.join(f'{v:.1f}' for v in runs['end_to_end'])}; "
          f"{results['end_to_end_workers']} workers; last call {results['end_to_end_wall_s']} s in all)")
    print(f"naive loop   {results['naive']:9.1f} pairs/s  (runs: {', '.join(f'{v:.1f}' for v in runs['naive'])}; "
          f"{min(limit, len(source))} images each)")
    print(f"ratio end-to-end / model-only = {ratio_model:.2f}  (target >= 0.9; median of the per-repetition "
          f"ratios {', '.join(f'{v:.2f}' for v in runs['paired_ratio'])})")
    print(f"speed-up over the naive loop  = {ratio_naive:.2f}x (target >= 3; median of "
          f"{', '.join(f'{v:.2f}' for v in runs['paired_speedup'])})")
    trim = results["text_trimming"]
    print(f"text tower alone ({trim['captions']} captions): padded to the context "
          f"{trim['captions_per_s']['padded']:.1f}/s, trimmed {trim['captions_per_s']['trimmed']:.1f}/s "
          f"= {trim['speedup']:.1f}x")
    if "decode_levers" in results:
        levers = results["decode_levers"]
        print(f"decode only ({levers['images']} JPEGs, one process): "
              + ", ".join(f"{k} {v:.0f} img/s" for k, v in levers["images_per_s"].items()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
