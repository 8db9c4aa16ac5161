"""Linear probe on frozen features: planted signal, chance level, labels of the shapes data, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipgeo.analyzers import linear_probe, linear_probe_split
from clipgeo.data.shapes import COLORS, SHAPES, CaptionedShapes
from clipgeo.errors import InputError
from clipgeo.train.probe import frozen_features, probe_runs, shape_labels
from tests.conftest import assert_clean_error, assert_close_f32, run_cli


def planted(rng, n=300, dim=10, n_classes=3, signal=3.0):
    labels = rng.integers(0, n_classes, size=n)
    features = rng.normal(size=(n, dim))
    features[np.arange(n), labels] += signal  # class k raises feature k
    return features, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_linear_signal_is_decoded(seed):
    rng = np.random.default_rng(seed)
    features, labels = planted(rng, signal=6.0)
    result = linear_probe(features, labels, seed=seed)
    assert result.accuracy > 0.97
    assert result.n_train + result.n_test == 300 and result.n_test == 75
    assert result.n_classes == 3 and result.dim == 10


def test_pure_noise_is_at_chance():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(600, 5))
    labels = rng.integers(0, 2, size=600)
    result = linear_probe(features, labels, C=0.01)
    assert abs(result.accuracy - 0.5) < 0.1
    assert 0.4 < result.chance < 0.6


def test_chance_is_majority_class_share_of_the_test_split():
    rng = np.random.default_rng(1)
    x_train, x_test = rng.normal(size=(40, 3)), rng.normal(size=(10, 3))
    y_train = np.array([0] * 30 + [1] * 10)  # majority class 0
    y_test = np.array([0] * 7 + [1] * 3)
    result = linear_probe_split(x_train, y_train, x_test, y_test)
    assert result.chance == pytest.approx(0.7)
    assert result.n_train == 40 and result.n_test == 10


def test_probe_is_invariant_to_feature_scale_and_shift():
    """The probe standardises: an affine change of each feature leaves the predictions alone."""
    rng = np.random.default_rng(2)
    features, labels = planted(rng, signal=1.0)
    scale = rng.uniform(0.1, 10, size=10)
    shift = rng.normal(size=10) * 100
    a = linear_probe(features, labels)
    b = linear_probe(features * scale + shift, labels)
    assert a.accuracy == pytest.approx(b.accuracy, abs=1 / 75 + 1e-9)


def test_shape_labels_agree_with_captions():
    data = CaptionedShapes(60, seed=4)
    shape = shape_labels(data, "shape")
    colour = shape_labels(data, "colour")
    for caption, s, c in zip(data.captions, shape, colour, strict=True):
        words = caption.split()
        assert SHAPES[s] in words and list(COLORS)[c] in words
    np.testing.assert_array_equal(shape, data.labels)
    np.testing.assert_array_equal(colour, shape_labels(data, "color"))
    with pytest.raises(InputError, match="unknown shapes label"):
        shape_labels(data, "texture")


def test_frozen_features_match_a_direct_pass_and_keep_the_mode():
    torch.manual_seed(0)
    encoder = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 3))
    encoder.train()
    inputs = [torch.randn(4) for _ in range(10)]
    out = frozen_features(encoder, inputs, batch_size=3)
    assert encoder.training  # restored
    encoder.eval()
    with torch.no_grad():
        expected = encoder(torch.stack(inputs)).double().numpy()
    assert out.shape == (10, 3) and out.dtype == np.float64
    assert_close_f32(out, expected)  # batched and full-batch float32 GEMMs round differently


def test_bad_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="2-D"):
        linear_probe(rng.normal(size=10), np.zeros(10))
    with pytest.raises(InputError, match="one label per feature row"):
        linear_probe(rng.normal(size=(10, 2)), np.zeros(9))
    with pytest.raises(InputError, match="single class"):
        linear_probe(rng.normal(size=(10, 2)), np.zeros(10))
    with pytest.raises(InputError, match="single sample"):
        linear_probe(rng.normal(size=(10, 2)), np.array([0] * 9 + [1]))
    with pytest.raises(InputError, match="NaN"):
        linear_probe(np.full((10, 2), np.nan), np.arange(10) % 2)


@pytest.fixture(scope="module")
def simclr_run(tmp_path_factory):
    import warnings

    from clipgeo.train import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "simclr"
    config = TrainConfig(out=str(out), objective="simclr", epochs=1, batch_size=16, heldout=8, log_every=10, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(config, CaptionedShapes(40, seed=0))
    return out


def test_probe_cli_reports_runs_and_random_baseline(simclr_run, tmp_path):
    import json

    proc = run_cli("probe", simclr_run, "--n", "120", "--json", "--out", tmp_path / "probe.json", env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["run"] for r in rows] == ["simclr", "random init"]
    for row in rows:
        assert row["tower"] == "image" and row["model"] == "tiny"
        for label in ("shape", "color"):
            assert 0.0 <= row[label] <= 1.0 and 0.0 < row[f"{label}_chance"] < 1.0
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert saved["rows"] == rows and saved["provenance"]["config"]["n"] == 120


def test_probe_rows_match_a_direct_probe(simclr_run):
    """The table's number is the held-out accuracy of a probe on the tower's features, same split."""
    from clipgeo.train.probe import tower_features
    from clipgeo.train.runs import EVAL_SEED, build_objective, load_run

    rows = probe_runs([simclr_run], labels=["size"], n=100, baseline=False)
    objective = build_objective(load_run(simclr_run))
    source = CaptionedShapes(100, seed=EVAL_SEED + 1)
    features = tower_features(objective.model, source, "image", preprocess=objective.ctx.loaded.preprocess_val,
                              tokenizer=objective.ctx.loaded.tokenizer)  # fmt: skip
    direct = linear_probe(features, shape_labels(source, "size"), seed=EVAL_SEED + 1)
    assert rows[0]["size"] == direct.accuracy and rows[0]["size_chance"] == direct.chance


def test_baseline_model_without_runs():
    rows = probe_runs([], labels=["color"], n=60, baseline_model="tiny", tower="text")
    assert [(r["run"], r["tower"]) for r in rows] == [("random init", "text")]
    with pytest.raises(InputError, match="nothing to probe"):
        probe_runs([], baseline=True)


def test_probe_cli_clean_error(tmp_path):
    assert_clean_error(run_cli("probe", "--baseline-model", "tiny", "--tower", "audio"), "--tower")


def test_linear_probe_and_the_training_config_need_no_torch():
    """``cg.linear_probe`` is scikit-learn only; the train and extract packages and the runtime import without torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"  # any `import torch` now raises ImportError
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, clipgeo as cg, clipgeo.train, clipgeo.extract, clipgeo.runtime\n"
        "from clipgeo.train.config import TrainConfig\n"
        "from clipgeo.extract import ExtractOptions\n"
        "rng = np.random.default_rng(0)\n"
        "y = np.repeat([0, 1], 30); x = rng.normal(size=(60, 4)) + 3 * y[:, None]\n"
        "assert cg.linear_probe(x, y).accuracy > 0.9\n"
        "TrainConfig(out='x'); ExtractOptions().validate()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
