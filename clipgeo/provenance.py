"""Provenance: what produced an output, recorded next to it.

Every store, report, figure and training run carries a small dict built here:
library versions, the time, the command line and the resolved configuration,
so that a result can be traced back and reproduced.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from ._version import __version__

_LIBRARIES = ("numpy", "scipy", "scikit-learn", "pyarrow", "torch", "open_clip_torch", "matplotlib")


def library_versions() -> dict[str, str]:
    """Versions of clipgeo, Python and the scientific libraries that are installed.

    Libraries that are not installed are left out; nothing is imported.
    """
    versions = {"clipgeo": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name.replace("-", "_")] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def now_iso() -> str:
    """The current UTC time, ISO 8601, second precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, shell-quoted, as a user would retype it."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return ""
    prog = Path(argv[0]).name
    if prog in ("__main__.py", "-m", "-c"):
        prog = "clipgeo"
    return shlex.join([prog, *argv[1:]])


def provenance(config: dict[str, Any] | None = None, argv: list[str] | None = None) -> dict[str, Any]:
    """A provenance record: versions, creation time, command and resolved config."""
    return {
        "versions": library_versions(),
        "created": now_iso(),
        "command": command_line(argv),
        "config": dict(config or {}),
    }


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()
