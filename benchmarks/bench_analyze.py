"""Analyzer benchmark: `clipgeo analyze` at scale, and exact conformity against its GEMM bound.

    python benchmarks/bench_analyze.py [--rows 20000] [--dim 512] [--dir /tmp/clipgeo-bench-analyze] [--threads N]

1. Writes a synthetic double-ellipsoid store once (``--rows`` image + ``--rows``
   text rows × ``--dim``, float32, paired), then runs ``clipgeo analyze STORE
   --out DIR`` in a fresh process and reports its wall time and peak RSS
   (targets: ≤ 60 s, ≤ 2 GB) with the per-analysis timings from report.json.
2. Exact conformity of ``--rows`` unit rows, each in a fresh process:
     * the float32 GEMM rate of this machine, measured now: ``(4096 × d) @ (d × N)``
       products, best of 3; GEMM bound = 2 N² d / rate (target: clipgeo ≤ 1.5 × bound);
     * ``clipgeo.analyzers.pairwise_conformity`` (chunked float32 GEMMs, float64 sums);
     * naive baseline: the full N × N float32 Gram matrix, then row sums;
     * the O(N d) identity (``mean_conformity``), for reference.
   Each reports time, peak RSS and the tracemalloc peak of numpy allocations.
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

CONFORMITY_CHILD = """
import json, resource, sys, time, tracemalloc
import numpy as np
from clipgeo.synthetic import double_ellipsoid
from clipgeo.analyzers import mean_conformity, pairwise_conformity

which, n, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x, _, _ = double_ellipsoid(n, d, seed=0, dtype=np.float64)
u = x / np.linalg.norm(x, axis=1, keepdims=True)
del x
out = {}
if which == "gemm":
    a = np.ascontiguousarray(u[:4096], dtype=np.float32)
    b = np.ascontiguousarray(u, dtype=np.float32)
    a @ b.T
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter(); c = a @ b.T; best = min(best, time.perf_counter() - t); del c
    out["gflops"] = 2 * len(a) * n * d / best / 1e9
else:
    fn = {
        "clipgeo": lambda: pairwise_conformity(u),
        "naive": lambda: naive(u),
        "identity": lambda: mean_conformity(u),
    }[which]
    def naive(u):
        u32 = u.astype(np.float32)
        g = u32 @ u32.T  # (N, N)
        return (g.sum(axis=1, dtype=np.float64) - np.diag(g)) / (len(u) - 1)
    fn()  # warm-up (also checks it runs)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t = time.perf_counter(); values = fn(); out["seconds"] = time.perf_counter() - t
    out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    out["checksum"] = float(values.sum())
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

RSS_WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
print(json.dumps({"rc": proc.returncode, "wall_s": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "stderr": proc.stderr[-2000:], "stdout": proc.stdout[-4000:]}))
"""


def write_store(root: Path, rows: int, dim: int) -> None:
    from clipgeo.store import StoreMeta, write_store
    from clipgeo.synthetic import double_ellipsoid

    img, txt, truth = double_ellipsoid(rows, dim, seed=0)
    write_store(
        root,
        StoreMeta(model="bench-double-ellipsoid", dim=dim, source="clipgeo.synthetic.double_ellipsoid"),
        image=img,
        text=txt,
        text_image_ids=[str(i) for i in range(rows)],
        captions=[f"synthetic pair {i}" for i in range(rows)],
    )


def child(code: str, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000, help="rows per modality")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--dir", default="/tmp/clipgeo-bench-analyze")
    parser.add_argument("--skip-naive", action="store_true", help="skip the N × N baseline (needs 4 N² bytes)")
    parser.add_argument("--threads", type=int, default=None, help="BLAS/OpenMP threads of the children (default: library default)")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
    n, d = args.rows, args.dim
    root = Path(args.dir) / f"store-{n}x{d}"
    if not (root / "manifest.json").exists():
        t = time.perf_counter()
        write_store(root, n, d)
        print(f"wrote {root} in {time.perf_counter() - t:.1f} s")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"BLAS threads: {args.threads if args.threads is not None else 'library default'}")
    results: dict = {"rows": n, "dim": d, "threads": args.threads, "load_average": os.getloadavg()}

    # 1. the whole `clipgeo analyze`
    out_dir = Path(args.dir) / "report"
    cli = [sys.executable, "-m", "clipgeo", "analyze", str(root), "--out", str(out_dir)]
    if args.threads is not None:
        cli += ["--threads", str(args.threads)]
    r = child(RSS_WRAPPER, *cli, env=env)
    if r["rc"] != 0:
        raise SystemExit(f"clipgeo analyze failed: {r['stderr']}")
    from clipgeo.report import read_report

    timings = read_report(out_dir).timings
    results["analyze"] = {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"], "timings": timings}
    print(f"\nclipgeo analyze, {n} image + {n} text rows × {d} float32:")
    print(f"  wall {r['wall_s']:.1f} s (target ≤ 60 s), peak RSS {r['peak_rss_mb']:.0f} MiB (target ≤ 2048 MiB)")
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items(), key=lambda kv: -kv[1])))

    # 2. exact conformity against the GEMM bound and the naive N × N way
    gemm = child(CONFORMITY_CHILD, "gemm", str(n), str(d), env=env)
    bound = 2 * n * n * d / (gemm["gflops"] * 1e9)
    results["gemm_gflops"] = gemm["gflops"]
    results["gemm_bound_s"] = bound
    print(f"\nexact conformity of {n} × {d} unit rows (2 N² d = {2 * n * n * d / 1e9:.0f} GFLOP):")
    print(f"  float32 GEMM rate measured now: {gemm['gflops']:.1f} GFLOP/s -> GEMM bound {bound:.2f} s")
    methods = ["clipgeo", "identity"] + ([] if args.skip_naive else ["naive"])
    for which in methods:
        res = child(CONFORMITY_CHILD, which, str(n), str(d), env=env)
        results[which] = res
        print(
            f"  {which:<9} {res['seconds']:7.2f} s  ({res['seconds'] / bound:5.2f} × bound)  "
            f"numpy peak {res['traced_peak_mb']:7.0f} MiB  process peak RSS {res['peak_rss_mb']:6.0f} MiB"
        )
    c = results["clipgeo"]
    print(f"  clipgeo / GEMM bound = {c['seconds'] / bound:.2f} (target ≤ 1.5)")
    if "naive" in results:
        nv = results["naive"]
        print(
            f"  naive / clipgeo: time {nv['seconds'] / c['seconds']:.2f} ×, numpy peak memory "
            f"{nv['traced_peak_mb'] / c['traced_peak_mb']:.1f} ×; checksums agree to "
            f"{abs(nv['checksum'] - c['checksum']) / abs(nv['checksum']):.1e}"
        )
    print("\n" + json.dumps(results, default=float))


if __name__ == "__main__":
    main()
