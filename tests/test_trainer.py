"""The trainer: run folder, exact resume (epoch boundary and SIGTERM), NaN stop, bad input, CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from clipgeo.data.shapes import CaptionedShapes
from clipgeo.errors import ClipgeoError, InputError
from clipgeo.train import (
    OBJECTIVES,
    TrainConfig,
    TrainingDiverged,
    TrainingStopped,
    register_objective,
    train,
)
from clipgeo.train.data import EpochSampler, split_heldout
from clipgeo.train.metrics import geometry_metrics, heldout_metrics, retrieval_r1
from clipgeo.train.objectives.clip import ClipObjective
from clipgeo.train.schedule import WarmupCosine
from tests.conftest import assert_clean_error, run_cli

N_SHAPES, HELDOUT, BATCH = 80, 16, 16  # 64 training samples: 4 steps per epoch


def small_config(out, **changes) -> TrainConfig:
    base = dict(out=str(out), epochs=2, batch_size=BATCH, heldout=HELDOUT, log_every=3, lr=1e-3, seed=3)
    return TrainConfig(**{**base, **changes})


def weights(run_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model.safetensors"))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def source():
    return CaptionedShapes(N_SHAPES, seed=0)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, source):
    """Two epochs without interruption: the reference of the resume tests."""
    out = tmp_path_factory.mktemp("straight")
    result = train(small_config(out), source)
    return out, result


# ---------------------------------------------------------------------------- the run folder


def test_run_folder(straight_run):
    out, result = straight_run
    assert result.finished and result.steps == 8
    for name in ("config.json", "metrics.csv", "curves.png", "checkpoint.pt", "model.safetensors"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = json.loads((out / "curves.json").read_text())  # the plotted numbers, beside the figure
    assert curves["step"] == [0, 3, 4, 6, 8] and curves["files"] == ["curves.png"]

    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["batch_size"] == BATCH and meta["config"]["objective"] == "clip"
    assert meta["resolved"]["steps_per_epoch"] == 4 and meta["resolved"]["num_heldout"] == HELDOUT
    assert "torch" in meta["provenance"]["versions"]
    assert meta["final_metrics"]["step"] == 8

    frame = pd.read_csv(out / "metrics.csv")
    # step 0 (untrained), every 3 steps inside an epoch, and the end of each epoch
    assert frame["step"].tolist() == [0, 3, 4, 6, 8]
    assert math.isnan(frame["loss"].iloc[0]) and frame["loss"].iloc[1:].notna().all()
    for column in ("logit_scale", "r1_image_to_text", "r1_text_to_image", "chance_r1", "l2_centroid_distance",
                   "conformity_image", "conformity_text", "relative_thickness_image", "relative_thickness_text",
                   "offset_ratio_image", "offset_ratio_text", "alignment", "uniformity_image", "lr"):  # fmt: skip
        assert frame[column].notna().all(), column
    assert (frame["chance_r1"] == 1 / HELDOUT).all()
    # the schedule: warm-up of round(0.05 * 8) = 0 steps, cosine to 0 at the last step
    assert frame["lr"].iloc[-1] == pytest.approx(0.0, abs=1e-12)
    assert frame["logit_scale"].iloc[1] == pytest.approx(1 / 0.07, rel=0.05)
    assert result.metrics["step"] == 8


def test_final_weights_load_in_extract_loader(straight_run):
    from clipgeo.models import load_model, read_state_dict

    out, _ = straight_run
    saved = weights(out)
    loaded = load_model("tiny", checkpoint=out / "model.safetensors")
    assert_same_weights(saved, {k: v for k, v in loaded.model.state_dict().items()})
    # the full checkpoint loads too (its "model" entry)
    assert_same_weights(saved, read_state_dict(out / "checkpoint.pt"))


def test_logged_geometry_equals_the_analyzers(straight_run, source):
    """The last row was computed from the held-out batch embedded by the final weights."""
    from clipgeo.models import load_model

    out, result = straight_run
    loaded = load_model("tiny", checkpoint=out / "model.safetensors")
    _, heldout = split_heldout(N_SHAPES, HELDOUT, seed=3)
    images = torch.stack([loaded.preprocess_val(source[i][0]) for i in heldout])
    texts = loaded.tokenizer([source.captions[i] for i in heldout])
    with torch.no_grad():
        img = loaded.model.encode_image(images).double().numpy()
        txt = loaded.model.encode_text(texts).double().numpy()
    expected = geometry_metrics(img, txt)
    for key, value in expected.items():
        assert result.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    r_it, r_ti = retrieval_r1(img, txt)
    assert result.metrics["r1_image_to_text"] == pytest.approx(r_it)
    assert result.metrics["r1_text_to_image"] == pytest.approx(r_ti)


# ---------------------------------------------------------------------------- resume


def test_resume_after_an_epoch_is_exact(tmp_path, straight_run, source):
    ref_dir, _ = straight_run
    first = train(small_config(tmp_path, stop_after_epochs=1), source)
    assert not first.finished and first.steps == 4
    assert not (tmp_path / "model.safetensors").exists()
    second = train(small_config(tmp_path, resume=True), source)
    assert second.finished and second.steps == 8
    assert_same_weights(weights(ref_dir), weights(tmp_path))
    ref = pd.read_csv(ref_dir / "metrics.csv").drop(columns="elapsed_s")
    got = pd.read_csv(tmp_path / "metrics.csv").drop(columns="elapsed_s")
    pd.testing.assert_frame_equal(ref, got)


def test_sigterm_mid_epoch_checkpoints_and_resumes_exactly(tmp_path, straight_run, source):
    ref_dir, _ = straight_run

    def kill_at_step_6(state):
        if state["global_step"] == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingStopped, match="resume"):
        train(small_config(tmp_path), source, callbacks=[kill_at_step_6])
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 2, 6)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was removed again
    train(small_config(tmp_path, resume=True), source)
    assert_same_weights(weights(ref_dir), weights(tmp_path))
    ref = pd.read_csv(ref_dir / "metrics.csv").drop(columns="elapsed_s")
    got = pd.read_csv(tmp_path / "metrics.csv").drop(columns="elapsed_s")
    pd.testing.assert_frame_equal(ref, got)


def test_resume_refuses_changed_options(tmp_path, source):
    train(small_config(tmp_path, stop_after_epochs=1), source)
    with pytest.raises(InputError, match="batch_size"):
        train(small_config(tmp_path, resume=True, batch_size=8), source)
    with pytest.raises(InputError, match="resume=True"):
        train(small_config(tmp_path), source)  # a run is there already


def test_resume_without_checkpoint(tmp_path, source):
    with pytest.raises(ClipgeoError, match="no checkpoint"):
        train(small_config(tmp_path / "empty", resume=True), source)


# ---------------------------------------------------------------------------- NaN and bad input


class _NanAfterFiveSteps(ClipObjective):
    """CLIP whose loss turns NaN at the 6th step (inside the second epoch)."""

    name = "nan_test"

    def __init__(self, ctx, **options):
        super().__init__(ctx, **options)
        self.calls = 0

    def training_step(self, batch):
        out = super().training_step(batch)
        self.calls += 1
        if self.calls >= 6:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, source):
    register_objective("nan_test", _NanAfterFiveSteps)
    try:
        with pytest.raises(TrainingDiverged, match=r"nan at epoch 2 step 2.*after epoch 1"):
            train(small_config(tmp_path, objective="nan_test"), source)
    finally:
        OBJECTIVES.pop("nan_test")
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(tmp_path, source, precision):
    """Autocast (bfloat16, or float16 with a gradient scaler) runs end to end; weights stay float32."""
    result = train(small_config(tmp_path, precision=precision, epochs=1), source)
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["resolved"]["precision"] == precision
    assert math.isfinite(result.metrics["loss"]) and result.metrics["loss"] > 0
    # optimizer steps were taken (a gradient scaler that skipped every step would leave the scale at 1/0.07)
    assert result.metrics["logit_scale"] != pytest.approx(1 / 0.07, rel=1e-5)
    trained = weights(tmp_path)
    assert all(v.dtype == torch.float32 for v in trained.values() if v.is_floating_point())
    assert all(torch.isfinite(v).all() for v in trained.values() if v.is_floating_point())


def test_bad_input(tmp_path, source):
    with pytest.raises(InputError, match="empty"):
        train(small_config(tmp_path / "a"), [])
    with pytest.raises(InputError, match="larger than the 64 training samples"):
        train(small_config(tmp_path / "b", batch_size=65), source)
    with pytest.raises(InputError, match="unknown objective"):
        train(small_config(tmp_path / "c", objective="nope"), source)
    with pytest.raises(InputError, match="precision"):
        train(small_config(tmp_path / "d", precision="fp8"), source)
    with pytest.raises(InputError, match="heldout"):
        train(small_config(tmp_path / "e", heldout=1), source)


# ---------------------------------------------------------------------------- pieces with known answers


def test_warmup_cosine_schedule():
    f = WarmupCosine(warmup_steps=4, total_steps=14, min_ratio=0.1)
    assert [f(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f(4) == pytest.approx(1.0)
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)
    values = [f(s) for s in range(4, 15)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(InputError):
        WarmupCosine(20, 10)


def test_epoch_sampler_shards_the_single_process_order():
    single = EpochSampler(50, batch_size=6, seed=1, rank=0, world_size=1)
    ranks = [EpochSampler(50, batch_size=3, seed=1, rank=r, world_size=2) for r in range(2)]
    order = single.order(epoch=2).view(-1, 6)  # 8 global batches of 6 (2 samples dropped)
    assert order.shape == (8, 6) and len(set(order.flatten().tolist())) == 48
    for r, sampler in enumerate(ranks):
        # rank r takes the r-th half of every global batch
        assert torch.equal(sampler.order(epoch=2).view(-1, 3), order[:, 3 * r : 3 * r + 3])
    assert not torch.equal(single.order(epoch=3), single.order(epoch=2))
    single.set_epoch(2, skip_batches=5)
    assert list(single) == order[5:].flatten().tolist() and len(single) == 18


def test_split_is_fixed_by_seed():
    train_a, held_a = split_heldout(100, 10, seed=4)
    train_b, held_b = split_heldout(100, 10, seed=4)
    assert np.array_equal(held_a, held_b) and len(held_a) == 10
    assert sorted(np.concatenate([train_a, held_a]).tolist()) == list(range(100))
    assert not np.array_equal(split_heldout(100, 10, seed=5)[1], held_a)


def test_retrieval_r1_known_answers():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8))
    assert retrieval_r1(a, 3 * a) == (1.0, 1.0)
    shifted = np.roll(a, 1, axis=0)  # row i of b is row i-1 of a: every top match is off by one
    assert retrieval_r1(a, shifted) == (0.0, 0.0)
    b = a.copy()
    b[:5] = rng.normal(size=(5, 8)) * 100 + 50  # 5 rows replaced by far-away ones
    r_ab, _ = retrieval_r1(a, b)
    assert 0.6 <= r_ab <= 0.8


def test_heldout_alignment_uniformity_match_the_analyzer():
    import clipgeo as cg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(40, 6)) + 1, rng.normal(size=(40, 6))
    got = heldout_metrics(torch.tensor(a), torch.tensor(b))
    ref = cg.alignment_uniformity(a, b).to_dict()
    assert got["alignment"] == pytest.approx(ref["alignment"], rel=1e-6)
    assert got["uniformity_image"] == pytest.approx(ref["uniformity_image"], rel=1e-6)
    assert got["uniformity_text"] == pytest.approx(ref["uniformity_text"], rel=1e-6)
    assert got["chance_r1"] == pytest.approx(1 / 40)


# ---------------------------------------------------------------------------- the command line


@pytest.mark.slow
def test_cli_trains_and_writes_heldout_shapes(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", "--shapes", 60, "--epochs", 1, "--batch-size", 16, "--heldout", 10, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "held-out R@1 image->text" in proc.stdout
    for name in ("model.safetensors", "metrics.csv", "curves.png", "heldout_shapes/captions.csv"):
        assert (out / name).is_file(), name
    captions = pd.read_csv(out / "heldout_shapes" / "captions.csv")
    assert list(captions.columns) == ["file_name", "caption"] and len(captions) == 10
    assert all((out / "heldout_shapes" / "images" / f).is_file() for f in captions["file_name"])
    # a second run into the same folder must not overwrite it
    assert_clean_error(run_cli("train", "--shapes", 60, "--epochs", 1, "--batch-size", 16, "--out", out), "--resume")


def test_cli_bad_input(tmp_path):
    assert_clean_error(run_cli("train", "--out", tmp_path / "x"), "--shapes")
    assert_clean_error(run_cli("train", "--shapes", 0, "--out", tmp_path / "y"), "--shapes")
    assert_clean_error(run_cli("train", "--shapes", 20, "--batch-size", 64, "--out", tmp_path / "z"), "batch size")


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    """2 gloo ranks x batch 8 train the same model as 1 process x batch 16 (no augmentation)."""
    common = ["--shapes", 80, "--heldout", 16, "--epochs", 2, "--no-augment", "--lr", 1e-3, "--quiet", "--log-every", 2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "clipgeo"]
    proc = subprocess.run([*launcher, "train", *map(str, common), "--batch-size", "8", "--out", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    one = run_cli("train", *common, "--batch-size", 16, "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    meta = json.loads((tmp_path / "two" / "config.json").read_text())
    assert meta["resolved"]["world_size"] == 2 and meta["resolved"]["steps_per_epoch"] == 4
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=2e-4, msg=key)
    # the logged loss is the global-batch loss (mean over ranks), not rank 0's share
    frame_one = pd.read_csv(tmp_path / "one" / "metrics.csv")
    frame_two = pd.read_csv(tmp_path / "two" / "metrics.csv")
    assert frame_one["step"].tolist() == frame_two["step"].tolist()
    np.testing.assert_allclose(frame_two["loss"].iloc[1:], frame_one["loss"].iloc[1:], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_cli_trains_on_an_image_folder(tmp_path):
    CaptionedShapes(40, seed=5).write(tmp_path / "data")
    out = tmp_path / "run"
    proc = run_cli("train", "--images", tmp_path / "data" / "images", "--captions", tmp_path / "data" / "captions.csv",
                   "--epochs", 1, "--batch-size", 8, "--heldout", 8, "--out", out, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["data"]["source"] == "folder" and meta["config"]["data"]["pairs"] == 40
    assert meta["resolved"]["num_train"] == 32
    assert len(pd.read_csv(out / "metrics.csv")) == 2  # step 0 and the end of the epoch


@pytest.mark.slow
def test_cli_trains_on_real_coco_images(tmp_path, realdata):
    coco = realdata / "coco_mini"
    out = tmp_path / "run"
    proc = run_cli("train", "--coco-captions", coco / "annotations" / "captions_val2017.json", "--coco-images",
                   coco / "val2017", "--epochs", 1, "--batch-size", 32, "--heldout", 40, "--out", out, "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["data"]["pairs"] == 79 * 5  # the 20 images without captions are not pairs
    assert meta["resolved"]["num_train"] == 79 * 5 - 40


def test_cli_data_option_errors(tmp_path):
    assert_clean_error(run_cli("train", "--shapes", 10, "--images", tmp_path, "--captions", tmp_path / "c.csv",
                               "--out", tmp_path / "a"), "one data source")  # fmt: skip
    assert_clean_error(run_cli("train", "--captions", tmp_path / "c.csv", "--out", tmp_path / "b"), "--images")
    assert_clean_error(run_cli("train", "--coco-captions", tmp_path / "c.json", "--out", tmp_path / "c"), "--coco-images")


@pytest.mark.filterwarnings("ignore:tiny. random initialisation")
def test_datasets_return_tensors_index_and_label(source):
    from torchvision import transforms as T

    from clipgeo.models import load_model
    from clipgeo.train.data import PairDataset, ViewsDataset

    loaded = load_model("tiny", "none")
    pairs = PairDataset(source, [5, 9], loaded.preprocess_val, loaded.tokenizer)
    item = pairs[1]
    assert item["image"].shape == (3, 32, 32) and item["index"] == 1 and item["label"] == source.labels[9]
    torch.testing.assert_close(item["text"], loaded.tokenizer([source.captions[9]])[0])
    crop = T.Compose([T.RandomResizedCrop(32, scale=(0.2, 0.5)), T.ToTensor()])
    views = ViewsDataset(source, [3], crop)
    torch.manual_seed(0)
    item = views[0]
    assert item["view1"].shape == item["view2"].shape == (3, 32, 32)
    assert not torch.equal(item["view1"], item["view2"])  # two independent draws
    assert item["label"] == source.labels[3]
