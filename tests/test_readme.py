"""README.md: the two commands, and a CLI reference that matches the CLI."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_readme_gives_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_cli_reference_is_current():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "cli_reference.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_subcommand_is_documented():
    text = (REPO / "README.md").read_text()
    for name in ("import", "info", "extract", "analyze", "figures", "train", "probe", "compare", "demo",
                 "simulate thin-shell", "simulate double-ellipsoid", "report", "atlas", "study", "whiten",
                 "compare-stores"):
        assert f"#### `clipgeo {name}`" in text, name
