"""Bootstrap benchmark: `clipgeo analyze` with the default 200 bootstrap draws vs `--bootstrap 0`, same run.

    python benchmarks/bench_bootstrap.py [--rows 20000] [--dim 512] [--repeat 1] [--threads N] [--dir DIR]

Writes a synthetic paired double-ellipsoid store once (``--rows`` image + ``--rows`` text rows × ``--dim``,
float32, with captions), then runs ``clipgeo analyze STORE --out DIR`` in fresh processes, alternating
``--bootstrap 0`` and the default, ``--repeat`` times each.  Reports each wall time, the analyzer's own
``bootstrap`` timing from report.json, and the ratio default / off (target: ≤ 2).
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


def write_store(root: Path, rows: int, dim: int) -> None:
    from clipgeo.store import StoreMeta, write_store
    from clipgeo.synthetic import double_ellipsoid

    img, txt, _ = double_ellipsoid(rows, dim, seed=0)
    write_store(
        root,
        StoreMeta(model="bench-double-ellipsoid", dim=dim, source="clipgeo.synthetic.double_ellipsoid"),
        image=img,
        text=txt,
        text_image_ids=[str(i) for i in range(rows)],
        captions=[f"synthetic pair {i % 500}" for i in range(rows)],
    )


def run_analyze(store: Path, out: Path, extra: list[str], env: dict) -> dict:
    cmd = [sys.executable, "-m", "clipgeo", "analyze", str(store), "--out", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"clipgeo analyze failed: {proc.stderr[-2000:]}")
    timings = json.loads((out / "report.json").read_text())["timings"]
    return {"wall_s": wall, "bootstrap_s": timings.get("bootstrap", 0.0), "timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per modality")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting (alternating)")
    parser.add_argument(
        "--threads", type=int, default=None, help="clipgeo analyze --threads (default: library default)"
    )
    parser.add_argument("--dir", default="/tmp/clipgeo-bench-bootstrap")
    args = parser.parse_args()
    env = dict(os.environ)
    root = Path(args.dir) / f"store-{args.rows}x{args.dim}"
    if not (root / "manifest.json").exists():
        t = time.perf_counter()
        write_store(root, args.rows, args.dim)
        print(f"wrote {root} in {time.perf_counter() - t:.1f} s")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    extra = [] if args.threads is None else ["--threads", str(args.threads)]
    runs: dict[str, list[dict]] = {"off": [], "default": []}
    for i in range(args.repeat):
        for name, flags in (("off", ["--bootstrap", "0"]), ("default", [])):
            r = run_analyze(root, Path(args.dir) / f"report-{name}", [*extra, *flags], env)
            runs[name].append(r)
            print(f"  run {i + 1} {name:<7} wall {r['wall_s']:6.1f} s, bootstrap analysis {r['bootstrap_s']:5.2f} s")
    off = min(r["wall_s"] for r in runs["off"])
    default = min(r["wall_s"] for r in runs["default"])
    boot = min(r["bootstrap_s"] for r in runs["default"])
    print(f"\nclipgeo analyze, {args.rows} image + {args.rows} text rows × {args.dim} float32 (best of {args.repeat}):")
    print(f"  --bootstrap 0: {off:.1f} s; default (200 draws): {default:.1f} s; ratio {default / off:.2f} (target ≤ 2)")
    print(f"  the bootstrap itself: {boot:.2f} s ({100 * boot / default:.1f} % of the run)")
    result = {"rows": args.rows, "dim": args.dim, "off_s": off, "default_s": default, "ratio": default / off,
              "bootstrap_s": boot, "runs": runs, "load_average": os.getloadavg()}  # fmt: skip
    print("\n" + json.dumps(result, default=float))


if __name__ == "__main__":
    main()
