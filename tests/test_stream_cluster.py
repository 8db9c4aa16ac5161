"""`clipgeo analyze --scheduler`: a real Dask cluster (scheduler + two workers, subprocesses on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from clipgeo.store import StoreMeta, write_store
from tests.conftest import assert_clean_error, run_cli

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, attempts: int = 600) -> None:
    for _ in range(attempts):  # bounded: 600 attempts of 0.1 s
        if proc.poll() is not None:
            raise RuntimeError(f"scheduler exited: {proc.stderr.read() if proc.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("scheduler did not start")


@pytest.fixture
def cluster():
    """A scheduler and two workers (no nanny: a killed worker stays dead) that stop by themselves when idle."""
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    address = f"tcp://127.0.0.1:{port}"
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                              "--port", str(port), "--no-dashboard", "--idle-timeout", "300s"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    procs = [sched]
    try:
        _wait_for_port(port, sched)
        workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                                     "--nthreads", "1", "--no-nanny", "--no-dashboard", "--lifetime", "300s",
                                     "--name", f"w{i}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for i in range(2)]
        procs += workers
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _store(path, rng, n=3000, dim=32, shard_rows=150):
    img = (rng.normal(size=(n, dim)) + 3).astype(np.float32)
    txt = (0.3 * img + rng.normal(size=(n, dim))).astype(np.float32)
    write_store(path, StoreMeta(model="m", dim=dim), image=img, text=txt, text_image_ids=[str(i) for i in range(n)],
                shard_rows=shard_rows)
    return path


def _numbers(path):
    data = json.loads((path / "report.json").read_text())
    for key in ("timings", "provenance", "files"):
        data.pop(key, None)
    data["streaming"].pop("workers")
    data["streaming"]["sample"].pop("seconds")
    return data


def test_scheduler_gives_the_local_report_even_when_a_worker_is_killed(tmp_path, rng, cluster):
    address, workers = cluster
    store = _store(tmp_path / "s", rng)
    common = ("--streaming", "--no-linear-cv", "--bootstrap", "0", "--sample-size", "500")
    local = run_cli("analyze", store, "--out", tmp_path / "local", *common, "--workers", "2")
    assert local.returncode == 0, local.stderr
    remote = run_cli("analyze", store, "--out", tmp_path / "remote", *common, "--scheduler", address)
    assert remote.returncode == 0, remote.stderr
    assert _numbers(tmp_path / "remote") == _numbers(tmp_path / "local")

    # kill a worker while it runs a task of this analysis: the scheduler reruns its tasks on the other one
    from distributed import Client

    proc = subprocess.Popen([sys.executable, "-m", "clipgeo", "analyze", str(store), "--out", str(tmp_path / "killed"),
                             *common, "--scheduler", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    with Client(address, timeout="30s") as client:
        for _ in range(3000):  # bounded polling (0.01 s each) until a worker holds a task
            busy = {w: tasks for w, tasks in client.processing().items() if tasks}
            info = client.scheduler_info()["workers"]
            victim = next((w for w in busy if info.get(w, {}).get("name") == "w0"), None)
            if victim is not None and proc.poll() is None:
                os.kill(workers[0].pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
    out, err = proc.communicate(timeout=600)
    assert killed, "the analysis finished before a worker could be killed"
    assert proc.returncode == 0, err
    assert workers[0].wait(timeout=30) == -signal.SIGKILL
    assert _numbers(tmp_path / "killed") == _numbers(tmp_path / "local")


def test_unreachable_scheduler_is_a_clean_error(tmp_path, rng):  # no cluster: quick
    store = _store(tmp_path / "s", rng, n=50, dim=4)
    proc = run_cli("analyze", store, "--out", tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{_free_port()}",
                   "--connect-timeout", "1")
    assert_clean_error(proc, "cannot reach the Dask scheduler")
    assert not (tmp_path / "out").exists()
