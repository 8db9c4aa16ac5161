"""The CLI shell: usage errors, help, `python -m clipgeo`."""

from __future__ import annotations

from tests.conftest import run_cli


def test_usage_errors_are_short_and_without_traceback():
    for args in (["info"], ["nope"], ["info", "--bogus", "x"]):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "Error:" in proc.stderr


def test_help_lists_every_subcommand():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for name in ("import", "info", "extract", "analyze", "figures", "train", "probe", "compare", "demo", "simulate"):
        assert name in proc.stdout
