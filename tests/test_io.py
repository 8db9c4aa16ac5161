"""clipgeo._io: atomic writes leave the old file or the new one, never a part; strict JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from clipgeo._io import atomic_dir, atomic_path, to_jsonable, write_json, write_text


def test_write_json_is_strict_and_converts_numpy(tmp_path):
    path = write_json(tmp_path / "sub" / "a.json", {"x": np.float32(1.5), "n": np.int64(3), "v": np.arange(3),
                                                     "bad": math.nan, "inf": np.float64(np.inf), "ok": True})
    data = json.loads(path.read_text())
    assert data == {"x": 1.5, "n": 3, "v": [0, 1, 2], "bad": None, "inf": None, "ok": True}


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_dir_removes_everything_on_failure(tmp_path):
    with pytest.raises(ValueError), atomic_dir(tmp_path / "store") as tmp:
        (tmp / "part-0.parquet").write_bytes(b"x")
        raise ValueError("bad row")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(tmp_path / "store") as tmp:
        (tmp / "part-0.parquet").write_bytes(b"x")
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["part-0.parquet"]


def test_atomic_dir_replaces_a_directory_whole_or_keeps_it(tmp_path, monkeypatch):
    import os

    out = tmp_path / "report"
    out.mkdir()
    (out / "old.json").write_text("old")
    with atomic_dir(out, replace=True) as tmp:
        (tmp / "new.json").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.json"]  # nothing of the old one is left in it

    real_replace = os.replace

    def replace(src, dst):  # moving the new directory in fails; moving the old one aside and back works
        if os.fspath(dst) == os.fspath(out) and os.fspath(src).endswith(".tmp"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full"), atomic_dir(out, replace=True) as tmp:
        (tmp / "newer.json").write_text("newer")
    monkeypatch.undo()
    assert [p.name for p in out.iterdir()] == ["new.json"] and (out / "new.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary directory left
    with pytest.raises(OSError), atomic_dir(out) as tmp:  # without replace an existing one is not touched
        (tmp / "x").write_text("x")
    assert [p.name for p in out.iterdir()] == ["new.json"]


def test_to_jsonable_dataclass_and_paths(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class R:
        a: float
        p: object

    assert to_jsonable(R(np.float64(2.0), tmp_path)) == {"a": 2.0, "p": str(tmp_path)}


def test_written_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        import importlib

        import clipgeo._io as io_module

        importlib.reload(io_module)
        path = io_module.write_text(tmp_path / "report.html", "x")
        with io_module.atomic_dir(tmp_path / "store") as tmp:
            (tmp / "a").write_text("y")
        assert path.stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "store").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(mask)
        importlib.reload(io_module)
