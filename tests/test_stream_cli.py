"""`clipgeo analyze --streaming` as a user runs it (subprocesses, a local Dask cluster)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clipgeo.store import StoreMeta, write_store
from tests.conftest import assert_clean_error, run_cli


@pytest.fixture
def store(tmp_path, rng):
    img = (rng.normal(size=(400, 12)) + 2).astype(np.float32)
    txt = (0.5 * img + rng.normal(size=(400, 12))).astype(np.float32)
    path = tmp_path / "store"
    write_store(path, StoreMeta(model="m", dim=12), image=img, text=txt, text_image_ids=[str(i) for i in range(400)],
                captions=[f"caption {i}" for i in range(400)], shard_rows=90)
    return path


@pytest.mark.slow
def test_analyze_streaming_over_a_file_url(tmp_path, store):
    proc = run_cli("analyze", f"file://{store}", "--out", tmp_path / "out", "--workers", "1", "--no-linear-cv",
                   "--bootstrap", "0", "--sample-size", "100")
    assert proc.returncode == 0, proc.stderr
    assert "is a URL: streamed" in proc.stdout and "warning" not in proc.stderr.lower()
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["n_pairs"] == 400 and data["streaming"]["sample"]["pairs"] == 100
    assert data["streaming"]["histogram"]["auc_max_error"] >= 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.slow
def test_analyze_streaming_bad_input(tmp_path, store):
    assert_clean_error(run_cli("analyze", store, "--out", tmp_path / "o", "--streaming", "--sample-size", "1"),
                       "--sample-size must be at least 2")
    assert_clean_error(run_cli("analyze", "memory://nothing-here", "--out", tmp_path / "o", "--in-memory"),
                       "is a URL")
    assert_clean_error(run_cli("analyze", tmp_path / "missing", "--out", tmp_path / "o"), "no store")
    assert not (tmp_path / "o").exists()
