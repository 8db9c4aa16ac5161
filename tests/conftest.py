"""Shared test fixtures: the real-data folder, a CLI runner, seeded RNGs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("CLIPGEO_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture
def realdata() -> Path:
    """../shared/realdata (or $CLIPGEO_REALDATA); the test is skipped when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent")
    return REALDATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


EPS32 = float(np.finfo(np.float32).eps)


def assert_close_f32(actual, expected, ulps: float = 64, rtol: float = 0.0) -> None:
    """Compare float32 results whose summation order may differ (batching, BLAS blocking, threads).

    The absolute tolerance is ``ulps`` float32 epsilons times the largest magnitude in ``expected``: values
    near zero are compared on the scale of the whole array, as their round-off is (CONTRIBUTING: floats).
    """
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=ulps * EPS32 * max(scale, 1e-30))


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m clipgeo ARGS`` in a subprocess, as a user would; returns the completed process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "clipgeo", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A user error: non-zero exit, one line on stderr starting with 'error:', no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle.lower() in errors[0].lower(), (needle, errors[0])


@pytest.fixture
def cli():
    return run_cli
