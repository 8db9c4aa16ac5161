"""Atomic file output: every file clipgeo writes appears whole or not at all.

One place for the temp-file-then-rename pattern (fsync'd, temp removed on any failure), used by the store,
the report, the trainer's checkpoints and metrics, figures and every JSON side file.

>>> from clipgeo._io import atomic_path, write_json
>>> write_json("out/report.json", {"n": 3})               # doctest: +SKIP
>>> with atomic_path("out/table.parquet") as tmp:         # doctest: +SKIP
...     pq.write_table(table, tmp)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "atomic_dir", "write_bytes", "write_text", "write_json", "to_jsonable"]


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set and restore at once
    os.umask(mask)
    return mask


#: mkstemp/mkdtemp create private (0600/0700) files; what clipgeo writes gets the usual umask-based mode
_UMASK = _umask()


def _fsync_file(path: str | os.PathLike) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on failure removed.

    Whatever writes to the yielded path (pyarrow, torch.save, matplotlib, safetensors) gets atomicity for free:
    readers see the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if fsync:
            _fsync_file(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it is moved to ``path``, on failure removed.

    For outputs made of several files (an imported store, a report directory): nothing is left behind on
    failure.  ``path`` must not exist unless ``replace``: then a directory there is replaced whole -- moved
    aside, the new one moved in, the old one removed -- and put back if the new one cannot be moved in.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if replace and path.exists():
            _swap_in(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(new: Path, path: Path) -> None:
    """Replace the directory ``path`` by ``new`` (a rename cannot replace a non-empty directory)."""
    import shutil

    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    try:
        os.replace(path, aside / "previous")
        try:
            os.replace(new, path)
        except BaseException:
            os.replace(aside / "previous", path)  # the new one did not land: the old one goes back
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from numpy scalars/arrays, paths, dataclasses and mappings; non-finite floats -> None.

    JSON has no NaN or infinity: a value that is not finite is written as ``null`` so that every JSON file
    clipgeo writes is valid for strict readers (browsers, ``jq``, other languages).
    """
    import dataclasses

    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    try:  # numpy without importing it eagerly
        import numpy as np

        if isinstance(value, np.ndarray):
            return to_jsonable(value.tolist())
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            return to_jsonable(float(value))
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    return str(value)


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (see :func:`to_jsonable`) to ``path`` atomically; returns the path."""
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n"
    return write_text(path, text)
