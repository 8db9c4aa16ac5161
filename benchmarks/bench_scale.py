"""Scale benchmark: import, simulate and analyse stores larger than memory in bounded RSS.

Measures, in one run on this machine (every ratio's two sides in the same run):

1. ``clipgeo import`` of N_IMPORT pairs × 512 float16 ``.npy`` (two files): wall time, peak RSS of the
   process, and the rate of ``cp`` of the same two files beside it;
2. ``clipgeo simulate double-ellipsoid --n N_ANALYZE --dim 512 --store-dtype float16`` (streams): wall, RSS;
3. ``clipgeo analyze STORE --streaming --workers 2``: wall, peak RSS summed over the process tree (the CLI
   and its Dask scheduler / workers, sampled every 0.1 s), and the rows per second of each pass against
   pyarrow alone reading the same embedding columns (``ParquetFile.iter_batches``, one process);
4. optionally (``--equality N``): streaming vs in-memory report.json on an N-pair store.

Usage::

    python benchmarks/bench_scale.py --workdir /tmp/clipgeo-scale --import-pairs 2000000 --analyze-pairs 10000000
    python benchmarks/bench_scale.py --quick      # 50k / 100k pairs: a smoke run

The big files are deleted at the end (``--keep`` keeps them).  Results: JSON on stdout and in
``--workdir/bench_scale.json``.
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
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


class TreeRSS:
    """Peak of the summed RSS of a process and all its descendants, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                rss = []
                for p in procs:
                    try:
                        rss.append(p.memory_info().rss)
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
                self.peak = max(self.peak, sum(rss))
                self.peak_single = max([self.peak_single, *rss])
            except psutil.NoSuchProcess:
                break
            time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(cmd: list[str], **kw) -> dict:
    """Run a command; wall seconds and peak RSS (tree sum, sampled; and the largest single process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    tree = TreeRSS(proc.pid)
    out, err = proc.communicate()
    tree.stop()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"seconds": round(wall, 2), "peak_rss_tree_mb": round(tree.peak / 2**20, 1),
            "peak_rss_process_mb": round(tree.peak_single / 2**20, 1), "stdout": out.strip().splitlines()[-12:]}


def write_npy(path: Path, n: int, dim: int, seed: int, *, chunk: int = 65536) -> None:
    """An (n, dim) float16 .npy written chunk by chunk (never whole in memory)."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=dim).astype(np.float32)
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)),
                                                      "fortran_order": False, "shape": (n, dim)})
        for s in range(0, n, chunk):
            k = min(chunk, n - s)
            (mean + rng.standard_normal((k, dim), dtype=np.float32)).astype(np.float16).tofile(handle)


def pyarrow_write_rate(npy: Path, out: Path, threads: int, shard_rows: int = 65536, limit_rows: int = 1_000_000) -> dict:
    """MB/s of pyarrow alone writing rows of ``npy`` as the store's Parquet shards (same options, ``threads``
    shards at a time, no checks, no fsync): the encoding floor of an import on this machine."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO))
    from clipgeo.store._writer import ROW_GROUP_ROWS, embedding_array

    x = np.load(npy, mmap_mode="r")
    n = min(len(x), limit_rows)
    out.mkdir(parents=True, exist_ok=True)

    def write(k: int) -> int:
        block = np.array(x[k:k + shard_rows])
        table = pa.table({"embedding": embedding_array(block, str(block.dtype))})
        pq.write_table(table, out / f"{k}.parquet", use_dictionary=False, compression="none", write_statistics=False,
                       row_group_size=ROW_GROUP_ROWS)
        return block.nbytes

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        nbytes = sum(pool.map(write, range(0, n, shard_rows)))
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return {"rows": n, "threads": threads, "seconds": round(seconds, 2), "mb_per_s": round(nbytes / 1e6 / seconds, 1)}


def scatter_rate(dim: int, workers: int, batch_rows: int = 8192, repeats: int = 8) -> dict:
    """Rows per second of the float64 d × d scatter alone (``xc.T @ xc`` of a batch, one BLAS thread per worker,
    ``workers`` processes' worth): the compute floor of the first pass's exact covariance on this machine."""
    from threadpoolctl import threadpool_limits

    xc = np.random.default_rng(0).standard_normal((batch_rows, dim))
    with threadpool_limits(1):
        xc.T @ xc
        start = time.perf_counter()
        for _ in range(repeats):
            xc.T @ xc
        seconds = (time.perf_counter() - start) / repeats
    return {"batch_rows": batch_rows, "seconds_per_batch_one_core": round(seconds, 4),
            "rows_per_second_one_core": round(batch_rows / seconds), "rows_per_second_workers": round(workers * batch_rows / seconds)}


def pyarrow_rate(store: Path, batch_rows: int = 8192) -> dict:
    """Rows per second of pyarrow alone reading every shard's embedding column into numpy (one process)."""
    import pyarrow.parquet as pq

    rows = 0
    start = time.perf_counter()
    for path in sorted(store.glob("*/part-*.parquet")):
        for batch in pq.ParquetFile(path, memory_map=True).iter_batches(batch_size=batch_rows, columns=["embedding"]):
            col = batch.column(0)
            col.flatten().to_numpy(zero_copy_only=False)
            rows += len(col)
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": round(seconds, 2), "rows_per_second": round(rows / seconds)}


def machine() -> dict:
    import psutil

    load = os.getloadavg()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "load_average_1_5_15": [round(x, 2) for x in load],
            "note": "load average recorded at the start and the end of the run"}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/clipgeo-scale"))
    ap.add_argument("--import-pairs", type=int, default=2_000_000)
    ap.add_argument("--analyze-pairs", type=int, default=10_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample-sizes", default="100000", help="comma list: one streaming analysis per sample size")
    ap.add_argument("--equality", type=int, default=0, help="also compare streaming vs in-memory on N pairs")
    ap.add_argument("--skip", default="", help="comma list of phases to skip: import,analyze")
    ap.add_argument("--store", type=Path, default=None,
                    help="analyse this existing store (written by `clipgeo simulate double-ellipsoid`) instead of "
                         "simulating one; it is kept")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--keep", action="store_true", help="keep the big files")
    args = ap.parse_args(argv)
    if args.quick:
        args.import_pairs, args.analyze_pairs = 50_000, 100_000
    skip = set(filter(None, args.skip.split(",")))
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "clipgeo"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result: dict = {"machine": machine(), "dim": args.dim}

    try:
        if "import" not in skip:
            n = args.import_pairs
            src = work / "npy"
            src.mkdir(exist_ok=True)
            write_npy(src / "image.npy", n, args.dim, 1)
            write_npy(src / "text.npy", n, args.dim, 2)
            size = sum(p.stat().st_size for p in src.glob("*.npy"))
            cp_dir = work / "cp"
            shutil.rmtree(cp_dir, ignore_errors=True)
            cp_dir.mkdir()
            cp = run(["cp", str(src / "image.npy"), str(src / "text.npy"), str(cp_dir)])
            shutil.rmtree(cp_dir)
            cp_dir.mkdir()
            subprocess.run(["sync"], check=True)
            # a durable copy, as `clipgeo import` fsyncs every shard before listing it
            cp_sync = run(["sh", "-c", f"cp {src / 'image.npy'} {src / 'text.npy'} {cp_dir} && sync"])
            shutil.rmtree(cp_dir)
            encode = pyarrow_write_rate(src / "image.npy", work / "encode", threads=os.cpu_count() or 1)
            shutil.rmtree(work / "imported", ignore_errors=True)
            imp = run([*py, "import", "--image", str(src / "image.npy"), "--text", str(src / "text.npy"),
                       "--out", str(work / "imported"), "--model-name", "bench"], env=env)
            result["import"] = {
                "pairs": n, "input_gb": round(size / 1e9, 3),
                "cp_seconds": cp["seconds"], "cp_mb_per_s": round(size / 1e6 / cp["seconds"], 1),
                "import_seconds": imp["seconds"], "import_mb_per_s": round(size / 1e6 / imp["seconds"], 1),
                "rate_vs_cp": round(cp["seconds"] / imp["seconds"], 3),
                "cp_sync_seconds": cp_sync["seconds"], "cp_sync_mb_per_s": round(size / 1e6 / cp_sync["seconds"], 1),
                "rate_vs_cp_sync": round(cp_sync["seconds"] / imp["seconds"], 3),
                "pyarrow_write_alone": encode,
                "rate_vs_pyarrow_write": round(size / 1e6 / imp["seconds"] / encode["mb_per_s"], 3),
                "peak_rss_mb": imp["peak_rss_process_mb"], "peak_rss_tree_mb": imp["peak_rss_tree_mb"],
                "output": imp["stdout"],
            }
            print(json.dumps({"import": result["import"]}, indent=1), flush=True)
            if not args.keep:
                shutil.rmtree(src)
                shutil.rmtree(work / "imported")

        if "analyze" not in skip:
            if args.store is not None:
                store = args.store
                manifest = json.loads((store / "manifest.json").read_text())
                n = int(manifest["summary"]["n_pairs"])
                size = sum(p.stat().st_size for p in store.glob("*/part-*.parquet"))
                result["simulate"] = {"pairs": n, "store_gb": round(size / 1e9, 3), "reused": str(store)}
            else:
                n = args.analyze_pairs
                store = work / "synthetic"
                shutil.rmtree(store, ignore_errors=True)
                sim = run([*py, "simulate", "double-ellipsoid", "--out", str(store), "--n", str(n), "--dim",
                           str(args.dim), "--store-dtype", "float16"], env=env)
                size = sum(p.stat().st_size for p in store.glob("*/part-*.parquet"))
                result["simulate"] = {"pairs": n, "store_gb": round(size / 1e9, 3), "seconds": sim["seconds"],
                                      "peak_rss_mb": sim["peak_rss_process_mb"]}
            print(json.dumps({"simulate": result["simulate"]}, indent=1), flush=True)
            result["scatter_floor"] = scatter_rate(args.dim, args.workers, 8192)
            result["analyze"] = []
            for sample in [int(v) for v in args.sample_sizes.split(",")]:
                arrow = pyarrow_rate(store)
                out = work / f"report-{sample}"
                shutil.rmtree(out, ignore_errors=True)
                ana = run([*py, "analyze", str(store), "--out", str(out), "--streaming", "--workers", str(args.workers),
                           "--no-linear-cv", "--bootstrap", "0", "--sample-size", str(sample)], env=env)
                arrow_after = pyarrow_rate(store)
                report = json.loads((out / "report.json").read_text())
                rows = 2 * n
                pyarrow_rps = (arrow["rows_per_second"] + arrow_after["rows_per_second"]) / 2
                timings = report.get("timings", {})
                stream_seconds = ana["seconds"] - report["streaming"]["sample"]["seconds"]
                entry = {
                    "pairs": n, "rows": rows, "store_gb": round(size / 1e9, 3), "sample_size": sample,
                    "seconds": ana["seconds"], "seconds_sample_analyses": report["streaming"]["sample"]["seconds"],
                    "peak_rss_tree_mb": ana["peak_rss_tree_mb"], "peak_rss_process_mb": ana["peak_rss_process_mb"],
                    "pyarrow_rows_per_second_before_after": [arrow["rows_per_second"], arrow_after["rows_per_second"]],
                    # two passes over every row, in the time outside the sample analyses (CLI start included)
                    "stream_rows_per_second_per_pass": round(2 * rows / stream_seconds),
                    "throughput_vs_pyarrow": round(2 * rows / stream_seconds / pyarrow_rps, 3),
                    # each pass on its own (the engine's timings: pass 1 includes the image_id join beside it)
                    "pass1_rows_per_second": round(rows / timings["stream_pass1_and_join"]),
                    "pass2_rows_per_second": round(rows / timings["stream_pass2"]),
                    "pass1_vs_pyarrow": round(rows / timings["stream_pass1_and_join"] / pyarrow_rps, 3),
                    "pass2_vs_pyarrow": round(rows / timings["stream_pass2"] / pyarrow_rps, 3),
                    "pass1_vs_scatter_floor": round(rows / timings["stream_pass1_and_join"]
                                                    / result["scatter_floor"]["rows_per_second_workers"], 3),
                    "histogram": report["streaming"]["histogram"],
                    "l2_centroid_distance": report["modality_gap"]["l2_centroid_distance"],
                    "timings": timings,
                }
                result["analyze"].append(entry)
                print(json.dumps({"analyze": entry}, indent=1), flush=True)
            if not args.keep and args.store is None:
                shutil.rmtree(store)

        if args.equality:
            result["equality"] = equality(work, args.equality, args.dim)
    finally:
        result["rusage_children_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
        result["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        (work / "bench_scale.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


def equality(work: Path, n: int, dim: int) -> dict:
    """Streaming vs in-memory report.json on an n-pair store: largest relative difference of the moment-based
    numbers and of the histogram-based ones against their stated bound."""
    sys.path.insert(0, str(REPO))
    from clipgeo.report import analyze
    from clipgeo.simulate import simulate_store
    from clipgeo.store import read_store
    from clipgeo.stream import StreamConfig, analyze_store

    store = work / "equality"
    shutil.rmtree(store, ignore_errors=True)
    simulate_store(store, n=n, dim=dim)
    start = time.perf_counter()
    mem = json.loads(json.dumps(analyze(read_store(store), conformity="mean", linear_cv=False, bootstrap=0).to_dict()))
    t_mem = time.perf_counter() - start
    start = time.perf_counter()
    rep = analyze_store(store, linear_cv=False, bootstrap=0, stream=StreamConfig())
    strm = json.loads(json.dumps({**rep.to_dict(), **rep.extra_json}))
    t_stream = time.perf_counter() - start
    exact_keys = ["modality_gap", "thin_shell", "off_diagonal_dominance", "ellipsoid_offset", "conformity"]
    worst = 0.0
    for key in exact_keys:
        for path, a in _leaves(mem[key]):
            b = _get(strm[key], path)
            if isinstance(a, float) and a != 0:
                worst = max(worst, abs(a - b) / abs(a))
    fm = {f["feature"]: f for f in mem["separability"]["features"]}
    fs = {f["feature"]: f for f in strm["separability"]["features"]}
    acc = max(fm[k]["threshold_accuracy"] - fs[k]["threshold_accuracy"] for k in fm)
    auc = max(abs(fm[k]["auc"] - fs[k]["auc"]) for k in fm)
    shutil.rmtree(store)
    return {"pairs": n, "max_rel_diff_moment_based": worst, "max_accuracy_diff": acc, "max_auc_diff": auc,
            "stated_bounds": strm["streaming"]["histogram"], "seconds_in_memory": round(t_mem, 1),
            "seconds_streaming": round(t_stream, 1)}


def _leaves(d, path=()):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _leaves(v, (*path, i))
    else:
        yield path, d


def _get(d, path):
    for p in path:
        d = d[p]
    return d


if __name__ == "__main__":
    main()
