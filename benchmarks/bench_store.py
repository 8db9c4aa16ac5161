"""Store benchmark: load an N × d float16 store into float32 arrays.

    python benchmarks/bench_store.py [--rows 1000000] [--dim 512] [--dir /tmp/clipgeo-bench-store]

Writes a synthetic store once (image rows only), then loads it in fresh
subprocesses, each reporting wall time and peak RSS:
  * clipgeo.read_store  (zero-copy Arrow -> numpy, one preallocated float32 array)
  * baseline: pandas.read_parquet + np.stack of the list column (the usual notebook way)
The ratio baseline / clipgeo is printed in the same run.
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

import numpy as np

LOADERS = {
    "clipgeo.read_store": (
        "import clipgeo as cg; es = cg.read_store(ROOT); x = es.image; assert x.dtype.name == 'float32'; n = len(x)"
    ),
    "pandas + np.stack (baseline)": (
        "import pandas as pd, numpy as np; f = pd.read_parquet(ROOT + '/image', columns=['embedding']); "
        "x = np.stack(f['embedding'].to_numpy()).astype(np.float32); n = len(x)"
    ),
}

CHILD = """
import resource, time, json, sys
ROOT = sys.argv[1]
t = time.perf_counter()
{code}
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "rows": n, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def write(root: Path, rows: int, dim: int) -> None:
    from clipgeo.store import StoreMeta, StoreWriter

    writer = StoreWriter(root, StoreMeta(model="bench", dim=dim, store_dtype="float16"))
    rng = np.random.default_rng(0)
    shard = 65536
    for k, start in enumerate(range(0, rows, shard)):
        n = min(shard, rows - start)
        x = rng.standard_normal((n, dim), dtype=np.float32)
        writer.write_shard("image", k, x, ids=np.arange(start, start + n).astype(str), columns={"path": [""] * n})
    writer.finalize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dir", default="/tmp/clipgeo-bench-store")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.dir) / f"store-{args.rows}x{args.dim}"
    if not (root / "manifest.json").exists():
        t = time.perf_counter()
        write(root, args.rows, args.dim)
        print(f"wrote {root} in {time.perf_counter() - t:.1f} s")
    size = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"store: {args.rows} x {args.dim} float16, {size:.0f} MiB on disk; float32 output = {args.rows * args.dim * 4 / 2**20:.0f} MiB")
    results = {}
    for name, code in LOADERS.items():
        best = None
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, "-c", CHILD.format(code=code), str(root)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            best = r if best is None or r["seconds"] < best["seconds"] else best
        results[name] = best
        print(f"{name:<32} {best['seconds']:7.2f} s   peak RSS {best['peak_rss_mb']:7.0f} MiB")
    a, b = results["clipgeo.read_store"], results["pandas + np.stack (baseline)"]
    print(f"speed-up over baseline: {b['seconds'] / a['seconds']:.1f}x; peak memory ratio baseline/clipgeo: "
          f"{b['peak_rss_mb'] / a['peak_rss_mb']:.1f}x")


if __name__ == "__main__":
    main()
