"""Every objective trains through the trainer on the shapes data: finite loss, state updates, one tower only."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from clipgeo.data.shapes import CaptionedShapes
from clipgeo.train import OBJECTIVES, TrainConfig, get_objective, train
from clipgeo.train.checkpoint import load_checkpoint
from clipgeo.train.compare import embed_pairs
from clipgeo.train.runs import build_objective, load_run

IMAGE_OBJECTIVES = [
    "simclr", "moco", "memory-bank", "pirl", "local-aggregation", "swav", "byol", "barlow-twins", "vicreg", "supervised",
]  # fmt: skip
N_SHAPES, HELDOUT, BATCH, EPOCHS = 80, 16, 16, 2
STEPS = (N_SHAPES - HELDOUT) // BATCH * EPOCHS  # 8


@pytest.fixture(scope="module")
def source():
    return CaptionedShapes(N_SHAPES, seed=0)


@pytest.fixture(scope="module")
def initial_model():
    """The weights the trainer starts from (it seeds everything with the config seed before building the model)."""
    from clipgeo.models import load_model

    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: v.clone() for k, v in load_model("tiny").model.state_dict().items()}


def run(tmp_path, source, objective, **overrides):
    config = TrainConfig(
        out=str(tmp_path / objective), objective=objective, epochs=EPOCHS, batch_size=BATCH, heldout=HELDOUT,
        log_every=2, device="cpu", lr=1e-3, **overrides,
    )  # fmt: skip
    result = train(config, source)
    return result, load_checkpoint(result.checkpoint), pd.read_csv(result.run_dir / "metrics.csv")


def changed(state: dict, initial: dict, prefix: str) -> bool:
    keys = [k for k in initial if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(state[k], initial[k]) for k in keys)


def test_every_objective_is_registered():
    for name in [*IMAGE_OBJECTIVES, "simcse"]:
        assert name in OBJECTIVES
        assert get_objective(name).name == name


@pytest.mark.parametrize("objective", IMAGE_OBJECTIVES)
def test_image_objective_trains(tmp_path, source, initial_model, objective):
    result, ckpt, metrics = run(tmp_path, source, objective)
    assert result.steps == STEPS
    losses = metrics["loss"].dropna().to_numpy()
    assert len(losses) >= 3 and np.isfinite(losses).all()
    # the geometry of the two views is logged like that of two modalities
    for column in ("r1_view1_to_view2", "l2_centroid_distance", "relative_thickness_view1", "offset_ratio_view2"):
        assert np.isfinite(metrics[column].to_numpy()).all(), column
    model, state = ckpt["model"], ckpt["objective"]
    # only the image tower is trained
    assert changed(model, initial_model, "visual.")
    assert not changed(model, initial_model, "transformer.")
    assert not changed(model, initial_model, "token_embedding.")
    if objective in ("memory-bank", "pirl"):
        bank = state["loss.bank.vectors"]
        torch.testing.assert_close(bank.norm(dim=1), torch.ones(len(bank)))
        assert len(bank) == N_SHAPES - HELDOUT
        generator = torch.Generator().manual_seed(0)  # the bank's initial random rows
        start = torch.nn.functional.normalize(torch.randn(len(bank), bank.shape[1], generator=generator), dim=1)
        assert (bank - start).norm(dim=1).min() > 1e-3  # every sample was seen and written
        assert torch.isfinite(state["loss.log_z"])
    elif objective == "local-aggregation":
        assert int(state["loss.n_reclusterings"]) == EPOCHS  # one k-means per pass over the data
        assert int(state["loss.labels"].max()) < 3
    elif objective == "moco":
        assert int(state["moco.queue.ptr"]) == STEPS * BATCH % len(state["moco.queue.keys"])
        # the key encoder trails the query encoder: moved from the start, but not equal to the end
        key = {k.removeprefix("moco.key_encoder."): v for k, v in state.items() if k.startswith("moco.key_encoder.")}
        assert any(not torch.equal(v, initial_model["visual." + k]) for k, v in key.items())
        assert any(not torch.equal(v, model["visual." + k]) for k, v in key.items())
    elif objective in ("barlow-twins", "vicreg"):  # the loss terms are logged beside the loss
        terms = ("on_diagonal", "off_diagonal") if objective == "barlow-twins" else ("invariance", "variance", "covariance")
        for term in terms:
            assert np.isfinite(metrics[term].dropna().to_numpy()).all() and len(metrics[term].dropna()), term
    elif objective == "byol":
        target = {k.removeprefix("byol.target_encoder."): v for k, v in state.items() if k.startswith("byol.target_encoder.")}
        assert any(not torch.equal(v, initial_model["visual." + k]) for k, v in target.items())
        assert any(not torch.equal(v, model["visual." + k]) for k, v in target.items())
        assert "byol.predictor.0.weight" in state
    elif objective == "swav":
        prototypes = state["loss.prototypes"]  # renormalised before each step, moved a little by the last one
        torch.testing.assert_close(prototypes.norm(dim=1), torch.ones(32), atol=1e-2, rtol=0)
        start = torch.nn.functional.normalize(torch.randn(32, 64, generator=torch.Generator().manual_seed(0)), dim=1)
        assert not torch.allclose(prototypes, start, atol=1e-4)
    elif objective == "supervised":
        assert "train_accuracy" in metrics and np.isfinite(metrics["train_accuracy"].dropna()).all()
    # the encoder is stored once: under model. only
    assert not any(k.startswith(("moco.encoder.", "byol.encoder.")) for k in state)
    # the run can be rebuilt from its folder (clipgeo probe / compare) and embeds two views
    rebuilt = build_objective(load_run(result.run_dir))
    a, b, names = embed_pairs(rebuilt, CaptionedShapes(6, seed=1), seed=1)
    assert names == ("view1", "view2") and a.shape == b.shape == (6, 64) and np.isfinite(a).all()


def test_simcse_trains_the_text_tower_only(tmp_path, source, initial_model):
    result, ckpt, metrics = run(tmp_path, source, "simcse")
    losses = metrics["loss"].dropna().to_numpy()
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    model = ckpt["model"]
    assert changed(model, initial_model, "transformer.")
    assert not changed(model, initial_model, "visual.")
    # the two "views" of the metrics are two dropout passes: close but not identical
    assert ((metrics["mean_matched_cosine"] > 0.5) & (metrics["mean_matched_cosine"] < 1.0 - 1e-6)).all()


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["moco", "memory-bank"])
def test_stateful_objective_resumes_exactly(tmp_path, source, objective):
    """Stop after one epoch and resume: the same queue/bank and weights as one uninterrupted run."""
    full, full_ckpt, _ = run(tmp_path / "full", source, objective)
    run(tmp_path / "parts", source, objective, stop_after_epochs=1)
    resumed, resumed_ckpt, _ = run(tmp_path / "parts", source, objective, resume=True)
    assert resumed.steps == full.steps
    for part in ("model", "objective"):
        for key, value in full_ckpt[part].items():
            torch.testing.assert_close(resumed_ckpt[part][key], value, msg=f"{part}/{key}")


def test_pirl_is_a_configuration_of_the_memory_bank(source):
    from clipgeo.train.objectives.memory_bank import MemoryBankObjective, PIRLObjective

    assert issubclass(PIRLObjective, MemoryBankObjective)
    assert get_objective("pirl") is PIRLObjective


@pytest.mark.slow
def test_cli_trains_a_single_modality_objective(tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "run"
    proc = run_cli("train", "--shapes", "40", "--objective", "swav", "--epochs", "1", "--batch-size", "16",
                   "--heldout", "8", "--out", out, "--quiet", env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "view1->view2" in proc.stdout
    metrics = pd.read_csv(out / "metrics.csv")
    assert np.isfinite(metrics["loss"].dropna()).all() and "conformity_view1" in metrics
    assert (out / "model.safetensors").is_file()
