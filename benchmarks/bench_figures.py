"""Figures benchmark: `clipgeo figures` from an analyze output vs from the store itself.

    python benchmarks/bench_figures.py [--rows 10000] [--dim 512] [--dir /tmp/clipgeo-bench-figures] [--dpi 150]

1. Writes a synthetic double-ellipsoid store once (``--rows`` image + ``--rows`` text
   rows × ``--dim``, float32, paired, with captions) and runs ``clipgeo analyze STORE
   --out REPORT`` once.
2. Draws every figure, each run in a fresh process (wall time and peak RSS):
     * ``clipgeo figures REPORT``: reads report.json and the tables, recomputes nothing;
     * baseline ``clipgeo figures STORE``: reads the store and runs every analyzer first.
   The ratio baseline / report is the time saved by drawing from the analysis output.
3. Checks that a second run from REPORT gives byte-identical PNGs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
from clipgeo.cli import main
start = time.perf_counter()
try:
    main(sys.argv[1:])
except SystemExit as exc:
    if exc.code:
        raise
elapsed = time.perf_counter() - start
print("BENCH " + json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(*args: str) -> dict:
    """Run ``clipgeo ARGS`` in a fresh interpreter; its in-process time and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"clipgeo {' '.join(args)} failed:\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH "))
    return {**json.loads(line[6:]), "wall_with_startup": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clipgeo-bench-figures"))
    parser.add_argument("--dpi", type=int, default=150)
    args = parser.parse_args()

    import numpy as np

    from clipgeo.store import StoreMeta, write_store
    from clipgeo.synthetic import double_ellipsoid, synthetic_captions

    root: Path = args.dir
    store, report = root / "store", root / "report"
    if not (store / "manifest.json").is_file():
        img, txt, _ = double_ellipsoid(n=args.rows, dim=args.dim, seed=0, offset_ratio=2.0)
        meta = StoreMeta(model="bench-double-ellipsoid", dim=args.dim, source=f"double_ellipsoid({args.rows}, {args.dim})")
        write_store(store, meta, image=img, text=txt, captions=synthetic_captions(args.rows),
                    text_image_ids=[str(i) for i in range(args.rows)])  # fmt: skip
        del img, txt
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"store: {args.rows} image + {args.rows} text rows x {args.dim}, dpi {args.dpi}")
    analyze = run("analyze", str(store), "--out", str(report))
    print(f"clipgeo analyze STORE                  {analyze['seconds']:7.1f} s   peak RSS {analyze['peak_rss_mb']:7.0f} MB")

    dpi = str(args.dpi)
    from_report = run("figures", str(report), "--out", str(root / "figs_report"), "--dpi", dpi)
    from_store = run("figures", str(store), "--out", str(root / "figs_store"), "--dpi", dpi)
    again = run("figures", str(report), "--out", str(root / "figs_report_again"), "--dpi", dpi)
    for label, r in (("figures REPORT", from_report), ("figures STORE (baseline)", from_store), ("figures REPORT, again", again)):
        print(f"clipgeo {label:<31}{r['seconds']:7.1f} s   peak RSS {r['peak_rss_mb']:7.0f} MB")
    print(f"ratio baseline / report: {from_store['seconds'] / from_report['seconds']:.1f}x time, "
          f"{from_store['peak_rss_mb'] / from_report['peak_rss_mb']:.1f}x peak RSS")  # fmt: skip

    pngs = sorted((root / "figs_report").glob("*.png"))
    same = all(p.read_bytes() == (root / "figs_report_again" / p.name).read_bytes() for p in pngs)
    size = sum(p.stat().st_size for p in (root / "figs_report").iterdir()) / 2**20
    print(f"{len(pngs)} figures, {size:.1f} MiB with their JSON; byte-identical on a second run: {same}")


if __name__ == "__main__":
    main()
