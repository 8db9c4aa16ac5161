"""Training benchmark: the `tiny` CLIP on captioned shapes, on this machine's CPU (or GPU).

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py [--shapes 6000] [--epochs 3] [--batch-size 64] [--dir DIR]

(On a CPU shared with other jobs, one thread per process avoids OpenMP threads
spin-waiting on each other, which made steps 10× slower in our measurements.)

1. ``clipgeo train --shapes N --model tiny ...`` in a fresh process (the real
   command): wall time, training-loop time, optimizer steps/s, peak RSS.
   Target: ≤ 5 minutes of training.
2. Baseline measured in the same run: a bare training loop (same model, batch,
   AdamW; pre-transformed tensors, no data loading, no logging) → the trainer's
   steps/s as a fraction of it.
3. Held-out recall@1 of the trained model vs chance (target ≥ 5 × chance) and
   vs the untrained model (the step-0 row of metrics.csv, same held-out batch).
4. The modality gap as ``clipgeo analyze`` measures it: the held-out shapes are
   embedded with the trained and the untrained (same seed) weights — with
   ``clipgeo extract`` when that command exists, else with the library and
   ``clipgeo import`` — and each store is analyzed.

Prints a Markdown table for BENCHMARKS.md and writes ``DIR/bench_train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

BARE_LOOP_CHILD = """
import json, sys, time, torch, warnings
warnings.simplefilter("ignore")
from clipgeo.models import load_model
from clipgeo.train import ClipLoss
batch, steps = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
m = load_model("tiny", "none").model.train()
images = torch.randn(batch, 3, 32, 32)
texts = torch.randint(1, 1000, (batch, 32))
opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
loss_fn = ClipLoss(learnable=False)
def step():
    loss = loss_fn(m.encode_image(images), m.encode_text(texts), logit_scale=m.logit_scale.exp())
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(5):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - t)}))
"""

UNTRAINED_CHILD = """
import sys, torch, warnings
warnings.simplefilter("ignore")
from clipgeo.models import load_model
from clipgeo.train.checkpoint import save_weights
from clipgeo.runtime import seed_all
seed_all(int(sys.argv[2]))  # the trainer seeds exactly like this before building the model
save_weights(sys.argv[1], load_model("tiny", "none").model.state_dict())
"""

EMBED_CHILD = """
import sys, numpy as np, pandas as pd, torch, warnings
warnings.simplefilter("ignore")
from PIL import Image
from clipgeo.models import load_model
weights, folder, out = sys.argv[1:4]
loaded = load_model("tiny", checkpoint=weights)
table = pd.read_csv(f"{folder}/captions.csv")
images = torch.stack([loaded.preprocess_val(Image.open(f"{folder}/images/{f}").convert("RGB")) for f in table.file_name])
with torch.no_grad():
    np.save(f"{out}/image.npy", loaded.model.encode_image(images, normalize=False).numpy())
    np.save(f"{out}/text.npy", loaded.model.encode_text(loaded.tokenizer(list(table.caption)), normalize=False).numpy())
table.caption.to_csv(f"{out}/captions.csv", index=False)
"""


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(map(str, cmd))}\n{proc.stderr[-3000:]}")
    return proc


def clipgeo(*args) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "clipgeo", *args])


def has_command(name: str) -> bool:
    proc = subprocess.run([sys.executable, "-m", "clipgeo", name, "--help"], capture_output=True, text=True)
    return proc.returncode == 0


def store_of(weights: Path, heldout: Path, work: Path) -> Path:
    """Embed the held-out shapes with ``weights`` into a clipgeo store; returns the store path."""
    store = work / "store"
    if has_command("extract"):
        clipgeo("extract", "--model", "tiny", "--checkpoint", weights, "--images", heldout / "images",
                "--captions", heldout / "captions.csv", "--out", store)  # fmt: skip
        return store
    work.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-c", EMBED_CHILD, weights, heldout, work])
    clipgeo("import", "--image", work / "image.npy", "--text", work / "text.npy", "--captions", work / "captions.csv",
            "--model-name", "tiny", "--out", store)  # fmt: skip
    return store


def analyze_gap(store: Path, out: Path) -> dict[str, float]:
    clipgeo("analyze", store, "--out", out, "--no-linear-cv")
    report = json.loads((out / "report.json").read_text())
    found: dict[str, float] = {}

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("l2_centroid_distance", "raw_centroid_distance", "mean_matched_cosine") and isinstance(v, (int, float)):
                    found.setdefault(k, float(v))
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(report)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--heldout", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clipgeo-bench-train"))
    args = parser.parse_args()

    import torch

    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    run_dir = args.dir / "run"
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_before": os.getloadavg(),
    }
    command = [sys.executable, "-m", "clipgeo", "train", "--shapes", args.shapes, "--model", "tiny", "--epochs",
               args.epochs, "--batch-size", args.batch_size, "--lr", args.lr, "--heldout", args.heldout, "--seed",
               args.seed, "--log-every", 50, "--out", run_dir, "--quiet"]  # fmt: skip
    print("machine:", json.dumps(machine))
    print("command:", " ".join(map(str, command[1:])).replace("-m clipgeo", "clipgeo"))

    start = time.perf_counter()
    run(command)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_rss_mb = usage.ru_maxrss / 1024
    cpu_s = usage.ru_utime + usage.ru_stime  # CPU time of `clipgeo train` (less sensitive to a loaded machine)
    meta = json.loads((run_dir / "config.json").read_text())
    train_s = meta["train_seconds"]
    steps = meta["resolved"]["total_steps"]
    import pandas as pd

    frame = pd.read_csv(run_dir / "metrics.csv")
    first, last = frame.iloc[0], frame.iloc[-1]

    bare = json.loads(run([sys.executable, "-c", BARE_LOOP_CHILD, args.batch_size, 100]).stdout)

    untrained = args.dir / "untrained.safetensors"
    run([sys.executable, "-c", UNTRAINED_CHILD, untrained, args.seed])
    heldout = run_dir / "heldout_shapes"
    gaps = {
        "trained": analyze_gap(store_of(run_dir / "model.safetensors", heldout, args.dir / "trained"),
                               args.dir / "trained" / "report"),
        "untrained": analyze_gap(store_of(untrained, heldout, args.dir / "untrained"), args.dir / "untrained" / "report"),
    }  # fmt: skip

    result = {
        "machine": machine,
        "load_average_after": os.getloadavg(),
        "wall_s": wall,
        "cpu_s": cpu_s,
        "train_loop_s": train_s,
        "steps": int(steps),
        "steps_per_s": steps / train_s,
        "bare_loop_steps_per_s": bare["steps_per_s"],
        "peak_rss_mb": peak_rss_mb,
        "chance_r1": float(last["chance_r1"]),
        "trained": {k: float(last[k]) for k in ("r1_image_to_text", "r1_text_to_image", "l2_centroid_distance", "loss")},
        "untrained": {k: float(first[k]) for k in ("r1_image_to_text", "r1_text_to_image", "l2_centroid_distance")},
        "analyze": gaps,
    }
    (args.dir / "bench_train.json").write_text(json.dumps(result, indent=2))

    chance = result["chance_r1"]
    tr, un = result["trained"], result["untrained"]
    print()
    print("| quantity | untrained (step 0) | trained | ratio / target |")
    print("|---|---|---|---|")
    print(f"| training time (loop / whole command) | – | {train_s:.0f} s / {wall:.0f} s | ≤ 300 s: {'met' if train_s <= 300 else 'NOT met'} |")
    print(f"| optimizer steps, steps/s | – | {steps}, {steps / train_s:.2f} | {steps / train_s / bare['steps_per_s']:.2f} × bare loop ({bare['steps_per_s']:.2f} steps/s) |")
    print(f"| CPU time of `clipgeo train` (user + sys) | – | {cpu_s:.0f} s | – |")
    print(f"| peak RSS of `clipgeo train` | – | {peak_rss_mb:.0f} MB | – |")
    print(f"| held-out R@1 image→text (chance {chance:.4f}) | {un['r1_image_to_text']:.3f} | {tr['r1_image_to_text']:.3f} | {tr['r1_image_to_text'] / chance:.0f} × chance (target ≥ 5) |")
    print(f"| held-out R@1 text→image | {un['r1_text_to_image']:.3f} | {tr['r1_text_to_image']:.3f} | {tr['r1_text_to_image'] / chance:.0f} × chance |")
    print(f"| l2 centroid distance, trainer log | {un['l2_centroid_distance']:.4f} | {tr['l2_centroid_distance']:.4f} | {tr['l2_centroid_distance'] / un['l2_centroid_distance']:.2f} × untrained |")
    ga, gu = gaps["trained"], gaps["untrained"]
    if "l2_centroid_distance" in ga and "l2_centroid_distance" in gu:
        print(f"| l2 centroid distance, `clipgeo analyze` | {gu['l2_centroid_distance']:.4f} | {ga['l2_centroid_distance']:.4f} | {ga['l2_centroid_distance'] / gu['l2_centroid_distance']:.2f} × untrained |")
    if "raw_centroid_distance" in ga and "raw_centroid_distance" in gu:
        print(f"| raw centroid distance, `clipgeo analyze` | {gu['raw_centroid_distance']:.3f} | {ga['raw_centroid_distance']:.3f} | – |")
    print(f"\nload average before/after: {machine['load_average_before']} / {result['load_average_after']}")
    print(f"results: {args.dir / 'bench_train.json'}")


if __name__ == "__main__":
    main()
