"""Objectives benchmark: every objective trains the `tiny` towers on captioned shapes; linear probes and geometry.

    python benchmarks/bench_objectives.py [--shapes 2000] [--epochs 20] [--batch-size 64] [--lr 2e-3]
                                          [--objectives simclr,moco,...] [--dir /tmp/clipgeo-bench-objectives]

For each objective, in one process, with the same data, split, seed and optimiser:

1. ``clipgeo.train.trainer.train`` (what ``clipgeo train --objective NAME`` runs): training-loop
   seconds per optimizer step; the baseline measured in the same run is SimCLR's seconds per step
   (ratio = cost of the objective relative to plain NT-Xent).
2. ``clipgeo.train.compare.compare_runs`` on all runs (what ``clipgeo compare`` runs): linear-probe
   accuracy (logistic regression on frozen features, 25 % of fresh shapes held out) on the shape and
   colour labels, and the geometry of the two views (or image/text, dropout passes); the baseline is the
   same architecture with random weights, probed in the same run (ratio = trained / random accuracy).

Prints the machine, the command and a Markdown table for BENCHMARKS.md; writes ``DIR/compare.*`` and
``DIR/bench_objectives.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
import warnings
from pathlib import Path

ALL = ["simclr", "moco", "memory-bank", "pirl", "local-aggregation", "swav", "byol", "supervised", "simcse", "clip"]


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--objectives", default=",".join(ALL))
    parser.add_argument("--n-eval", type=int, default=1000, help="shapes embedded for the geometry")
    parser.add_argument("--n-probe", type=int, default=2000, help="shapes for the linear probes")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clipgeo-bench-objectives"))
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore")
    from clipgeo.data.shapes import CaptionedShapes
    from clipgeo.train import TrainConfig, train
    from clipgeo.train.compare import compare_runs, write_comparison

    objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    if "simclr" not in objectives:
        objectives.insert(0, "simclr")  # the baseline of the time ratios
    print(f"machine: {machine()}")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    source = CaptionedShapes(args.shapes, seed=0)
    # warm-up (lazy imports, first-call allocations), not timed
    train(TrainConfig(out=str(args.dir / "_warmup"), objective="simclr", epochs=1, batch_size=8, heldout=4,
                      device="cpu"), CaptionedShapes(20, seed=1))  # fmt: skip
    timing: dict[str, dict] = {}
    for name in objectives:
        config = TrainConfig(
            out=str(args.dir / name), objective=name, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            heldout=min(200, args.shapes // 10), log_every=10**9, device="cpu", seed=0,
        )  # fmt: skip
        result = train(config, source)
        timing[name] = {"steps": result.steps, "seconds": result.seconds, "s_per_step": result.seconds / result.steps,
                        "final_loss": result.metrics.get("loss")}  # fmt: skip
        print(f"trained {name:<18} {result.steps} steps in {result.seconds:7.1f} s ({timing[name]['s_per_step']:.3f} s/step)",
              flush=True)  # fmt: skip
    started = time.perf_counter()
    comparison = compare_runs([args.dir / n for n in objectives], n=args.n_eval, n_probe=args.n_probe)
    compare_seconds = time.perf_counter() - started
    paths = write_comparison(comparison, args.dir)
    rows = {r["run"]: r for r in comparison.rows}
    base_step = timing["simclr"]["s_per_step"]

    lines = [
        f"{args.shapes} shapes ({min(200, args.shapes // 10)} held out), {args.epochs} epochs, batch {args.batch_size}, "
        f"AdamW lr {args.lr:g}, `tiny` towers, CPU. Probe: logistic regression on frozen features of "
        f"{args.n_probe} fresh shapes (25 % held out); chance ≈ 0.2 (shape, 5 classes), 0.17 (colour, 6).",
        "",
        "| objective | tower | s/step | × SimCLR | probe shape | × random | probe colour | × random | gap (l2) | "
        "matched cos | thickness a | offset a | offset b | conformity a |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in objectives:
        r = rows[name]
        base = rows[f"random init ({_kind(r)})"]
        t = timing[name]
        lines.append(
            f"| {name} | {r['tower']} | {t['s_per_step']:.3f} | {t['s_per_step'] / base_step:.2f} | "
            f"{r['probe_shape']:.3f} | {r['probe_shape'] / base['probe_shape']:.2f} | {r['probe_color']:.3f} | "
            f"{r['probe_color'] / base['probe_color']:.2f} | {r['l2_centroid_distance']:.3f} | "
            f"{r['mean_matched_cosine']:.3f} | {r['relative_thickness_a']:.3f} | {r['offset_ratio_a']:.2f} | "
            f"{r['offset_ratio_b']:.2f} | {r['conformity_a']:.3f} |"
        )
    for label, r in rows.items():
        if label.startswith("random init"):
            lines.append(
                f"| {label} | {r['tower']} | – | – | {r['probe_shape']:.3f} | 1.00 | {r['probe_color']:.3f} | 1.00 | "
                f"{r['l2_centroid_distance']:.3f} | {r['mean_matched_cosine']:.3f} | {r['relative_thickness_a']:.3f} | "
                f"{r['offset_ratio_a']:.2f} | {r['offset_ratio_b']:.2f} | {r['conformity_a']:.3f} |"
            )
    table = "\n".join(lines)
    print()
    print(table)
    print(f"\ncompare: {compare_seconds:.1f} s; table and figure: {paths['md']}, {paths['png']}")
    record = {"machine": machine(), "command": shlex.join(sys.argv), "args": {k: str(v) for k, v in vars(args).items()},
              "timing": timing, "rows": comparison.rows, "markdown": table}  # fmt: skip
    (args.dir / "bench_objectives.json").write_text(json.dumps(record, indent=2, default=str) + "\n")


def _kind(row: dict) -> str:
    pair = row["pair"]
    return {"image/text": "pairs", "pass1/pass2": "text"}.get(pair, "views")


if __name__ == "__main__":
    main()
