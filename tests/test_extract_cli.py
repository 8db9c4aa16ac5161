"""`clipgeo extract` as a user runs it: each input kind, clean errors, SIGKILL-and-resume, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_clean_error, assert_close_f32, run_cli
from test_data_sources import COCO, make_images

from clipgeo.store import read_manifest, read_store

TINY = ("--model", "tiny", "--pretrained", "none")
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory) -> Path:
    """60 synthetic captioned shapes plus every bad/odd image of the issue, with a captions CSV."""
    from clipgeo.data.shapes import CaptionedShapes, write_shapes

    root = tmp_path_factory.mktemp("shapes")
    csv_path = write_shapes(CaptionedShapes(60, seed=1), root)
    make_images(root / "images" / "odd")
    with open(csv_path, "a") as handle:
        handle.write("odd/good.jpg,a noisy photo\nodd/missing.jpg,a photo that is not there\nodd/truncated.jpg,\n")
    return root


def _folder_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["extract", "--images", root / "images", "--captions", root / "captions.csv", *TINY, "--out", out,
            "--batch-size", "8", "--shard-size", "8", "--num-workers", "1", *extra]


def test_folder_with_captions_csv(shapes_folder, tmp_path):
    proc = run_cli(*_folder_args(shapes_folder, tmp_path / "s"), env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {tmp_path / 's'}" in proc.stdout and "pairs/s" in proc.stdout
    assert "warning: tiny: random initialisation" in proc.stderr and "Traceback" not in proc.stderr
    store = read_store(tmp_path / "s")
    n_odd_good = sum(reason is None for reason in make_images(tmp_path / "odd").values())  # images that decode
    assert store.image.shape == (60 + n_odd_good, 64)
    assert store.text.shape == (60 + 2, 64)  # 60 shapes + the noisy photo + the missing photo's caption
    assert "skipped images:" in proc.stdout and "missing_file" in proc.stdout
    assert "skipped texts: 1 empty_caption" in proc.stdout
    unpaired = [c for c, i in zip(store.captions, store.text_image_index, strict=True) if i < 0]
    assert unpaired == ["a photo that is not there"]  # every other caption points at its image


@pytest.mark.slow
def test_coco_json_output_and_limit(realdata, tmp_path):
    proc = run_cli("extract", "--coco-captions", realdata / COCO[0], "--coco-images", realdata / COCO[1], *TINY,
                   "--out", tmp_path / "s", "--captions-per-image", "first", "--limit", "30", "--json",
                   "--num-workers", "0", env=ENV)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    store = read_store(tmp_path / "s")
    assert summary["rows"]["image"] == 30 == store.image.shape[0]
    assert summary["rows"]["text"] == store.text.shape[0] == sum(1 for i in store.text_image_index if i >= 0)
    assert summary["status"] == "complete" and summary["pairs"] == 30
    again = run_cli("extract", "--coco-captions", realdata / COCO[0], "--coco-images", realdata / COCO[1], *TINY,
                    "--out", tmp_path / "s", "--captions-per-image", "first", "--limit", "30", env=ENV)
    assert again.returncode == 0 and "already complete" in again.stdout


@pytest.mark.slow
def test_dataset_and_texts_inputs(tmp_path):
    import datasets

    make_images(tmp_path / "img")
    ds = datasets.Dataset.from_dict(
        {"picture": [str(tmp_path / "img" / n) for n in ("good.jpg", "rgba.png", "text.jpg")],
         "words": ["one", "two", "three"]}
    ).cast_column("picture", datasets.Image())
    ds.to_parquet(str(tmp_path / "d.parquet"))
    proc = run_cli("extract", "--dataset", tmp_path / "d.parquet", "--image-column", "picture", "--text-column",
                   "words", *TINY, "--out", tmp_path / "hf", "--num-workers", "0", "--json", env=ENV)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows"] == {"image": 2, "text": 3} and summary["skipped"]["image"] == {"not_an_image": 1}
    (tmp_path / "t.txt").write_text("first\nsecond\n")
    proc = run_cli("extract", "--texts", tmp_path / "t.txt", *TINY, "--out", tmp_path / "txt", "--num-workers", "0",
                   env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert read_store(tmp_path / "txt").text.shape == (2, 64)


@pytest.mark.slow
def test_clean_errors(tmp_path, shapes_folder):
    out = tmp_path / "s"
    assert_clean_error(run_cli("extract", *TINY, "--out", out, env=ENV), "no input given")
    assert_clean_error(
        run_cli("extract", "--texts", tmp_path / "a.txt", "--images", tmp_path, *TINY, "--out", out, env=ENV),
        "give one input kind",
    )
    assert_clean_error(run_cli("extract", "--images", tmp_path / "nodir", *TINY, "--out", out, env=ENV),
                       "does not exist")
    assert_clean_error(run_cli("extract", "--coco-captions", tmp_path / "c.json", *TINY, "--out", out, env=ENV),
                       "--coco-images")
    assert_clean_error(run_cli(*_folder_args(shapes_folder, out, "--precision", "fp8"), env=ENV), "--precision")
    start = time.perf_counter()
    proc = run_cli(*_folder_args(shapes_folder, out)[:5], "--model", "ViT-B-32", "--pretrained", "openai",
                   "--out", out, env=ENV)
    assert_clean_error(proc, "could not fetch", "--checkpoint")
    assert time.perf_counter() - start < 60  # imports included; the give-up itself takes < 5 s (test_models)
    assert "Retrying" not in proc.stderr and "Traceback" not in proc.stderr


def _wait_for_shards(root: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        manifest = root / "manifest.json"
        if manifest.exists():
            try:
                if len(json.loads(manifest.read_text())["shards"]) >= n:
                    return
            except (json.JSONDecodeError, KeyError):
                pass
        if proc.poll() is not None:
            pytest.fail(f"extraction ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.02)
    pytest.fail("no shard appeared in time")


@pytest.mark.slow
def test_sigkill_and_resume_gives_every_row_once_and_the_same_bytes(shapes_folder, tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    proc = run_cli(*_folder_args(shapes_folder, whole), env=ENV)
    assert proc.returncode == 0, proc.stderr
    # kill twice: right after the first shard lands, then at an arbitrary moment a little later
    for shards_before_kill, extra_wait in ((1, 0.0), (5, 0.13)):
        child = subprocess.Popen(
            [sys.executable, "-m", "clipgeo", *map(str, _folder_args(shapes_folder, killed))],
            env={**os.environ, **ENV, "CLIPGEO_TEST_SHARD_DELAY": "0.4"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            _wait_for_shards(killed, shards_before_kill, child)
            time.sleep(extra_wait)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL
        assert read_manifest(killed, allow_incomplete=True)["status"] == "writing"
    resumed = run_cli(*_folder_args(shapes_folder, killed), env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert "already done" in resumed.stdout and " 0 already done" not in resumed.stdout
    a, b = read_store(whole), read_store(killed)
    assert a.image.tobytes() == b.image.tobytes() and a.text.tobytes() == b.text.tobytes()
    assert list(a.image_ids) == list(b.image_ids) and list(a.text_ids) == list(b.text_ids)
    assert len(set(b.image_ids)) == len(b.image_ids) and len(set(b.text_ids)) == len(b.text_ids)
    manifest = read_manifest(killed)
    entries = [(e["modality"], e["index"]) for e in manifest["shards"]]
    assert len(entries) == len(set(entries)) == 2 * manifest["summary"]["shards"]
    skips = [s["id"] for e in manifest["shards"] for s in e["skipped"]]
    assert sorted(skips) == sorted(s["id"] for s in read_manifest(whole)["shards"] for s in s["skipped"])
    assert len(skips) == len(set(skips))


@pytest.mark.slow
def test_torchrun_two_processes_share_one_store(shapes_folder, tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    args = _folder_args(shapes_folder, single, "--num-workers", "0")
    assert run_cli(*args, env=ENV).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "clipgeo",
         *map(str, _folder_args(shapes_folder, multi, "--num-workers", "0"))],
        env={**os.environ, **ENV}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1 and "x2" in proc.stdout  # rank 0 reports, for both
    manifest = read_manifest(multi)
    assert manifest["summary"]["world_size"] == 2
    n = manifest["summary"]["shards"]
    assert sorted((e["modality"], e["index"]) for e in manifest["shards"]) == sorted(
        (m, k) for m in ("image", "text") for k in range(n)
    )
    a, b = read_store(single), read_store(multi)
    assert list(a.image_ids) == list(b.image_ids) and list(a.text_ids) == list(b.text_ids)
    # the ranks run with other thread counts than the single process: float32 tolerance, not bit equality
    assert_close_f32(a.image, b.image)
    assert_close_f32(a.text, b.text)
