"""Library errors name parameters (``out='x'``, ``workers=0``); the CLI shows them as the command's flags."""

from __future__ import annotations

import pytest
from conftest import assert_clean_error

from clipgeo.store import StoreMeta, write_store


@pytest.fixture
def store(tmp_path, rng):
    write_store(tmp_path / "store", StoreMeta(model="m", dim=4), image=rng.normal(size=(20, 4)) + 1,
                text=rng.normal(size=(20, 4)), text_image_ids=[str(i) for i in range(20)])
    return tmp_path / "store"


def test_analyze_out_that_is_a_file_names_the_flag(cli, tmp_path, store):
    a_file = tmp_path / "report.txt"
    a_file.write_text("x")
    for engine in ("--in-memory", "--streaming"):
        proc = cli("analyze", store, "--out", a_file, engine, "--workers", "1", "--no-linear-cv", "--bootstrap", "0")
        assert_clean_error(proc, f"--out {a_file} is a file")
        assert a_file.read_text() == "x"


def test_streaming_workers_below_one_names_the_flag(cli, tmp_path, store):
    proc = cli("analyze", store, "--out", tmp_path / "out", "--streaming", "--workers", "0")
    assert_clean_error(proc, "--workers 0 is below 1")
    assert not (tmp_path / "out").exists()


def test_clip_retrieval_folder_that_is_missing_names_the_flag(cli, tmp_path):
    proc = cli("import", "--clip-retrieval", tmp_path / "nowhere", "--out", tmp_path / "s")
    assert_clean_error(proc, f"--clip-retrieval {tmp_path / 'nowhere'} is not a directory")
    assert not (tmp_path / "s").exists()


def test_figures_format_and_out_name_the_flags(cli, tmp_path, store):
    proc = cli("figures", store, "--out", tmp_path / "figs", "--format", "gif")
    assert_clean_error(proc, "unknown figure format 'gif'", "e.g. --format png,pdf")
    a_file = tmp_path / "figs.txt"
    a_file.write_text("x")
    proc = cli("figures", store, "--out", a_file)
    assert_clean_error(proc, f"--out {a_file} is a file")
