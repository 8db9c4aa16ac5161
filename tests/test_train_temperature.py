"""The trainer's temperature and init options: fixed vs learnable logit scale, centred init, and bad input."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from clipgeo.errors import InputError
from clipgeo.train.config import TrainConfig, check_config
from tests.conftest import assert_clean_error, run_cli


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"temperature": -0.01}, "temperature must be"),
        ({"init_temperature": 0}, "init_temperature must be"),
        ({"temperature": 0.01, "init_temperature": 0.07}, "give one of them"),
        ({"temperature": 0.01, "objective_options": {"max_logit_scale": 50}}, "max_logit_scale has nothing to clamp"),
        ({"temperature": 0.1, "objective": "simclr"}, "does not have"),
        ({"init": "zeros"}, "unknown init 'zeros'"),
        ({"grad_clip": 0.0}, "grad_clip must be"),
    ],
)
def test_bad_temperature_options_are_one_line_errors(options, needle):
    with pytest.raises(InputError, match=needle) as info:
        check_config(TrainConfig(out="unused", **options), 100)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--temperature", "0"], "temperature must be a finite number > 0"),
        (["--temperature", "0.01", "--init-temperature", "0.07"], "give one of them"),
        (["--temperature", "0.01", "--objective-option", "max_logit_scale=50"], "nothing to clamp"),
        (["--init", "zeros"], "unknown init"),
    ],
)
def test_cli_conflicting_temperature_options(tmp_path, args, needle):
    proc = run_cli("train", "--shapes", "40", "--out", tmp_path / "run", *args)
    assert_clean_error(proc, needle)
    assert not (tmp_path / "run").exists()


def tiny_run(tmp_path, name, **options):
    from clipgeo.data.shapes import CaptionedShapes
    from clipgeo.train.trainer import train

    config = TrainConfig(out=str(tmp_path / name), epochs=1, batch_size=8, heldout=8, device="cpu", precision="fp32",
                         log_every=2, lr=5e-3, **options)  # fmt: skip
    result = train(config, CaptionedShapes(40, seed=0))
    return result, pd.read_csv(tmp_path / name / "metrics.csv")


@pytest.mark.slow
def test_fixed_temperature_is_not_learned_and_init_temperature_starts_the_learnable_scale(tmp_path):
    _, fixed = tiny_run(tmp_path, "fixed", temperature=0.005)  # a scale of 200: fixed, so not clamped at 100
    assert fixed["logit_scale"].tolist() == pytest.approx([200.0] * len(fixed), rel=1e-6)
    _, learnt = tiny_run(tmp_path, "learnt", init_temperature=0.05)
    assert learnt["logit_scale"].iloc[0] == pytest.approx(20.0, rel=1e-6)
    assert learnt["logit_scale"].iloc[-1] != pytest.approx(20.0, rel=1e-6)  # it moves


@pytest.mark.slow
def test_centred_init_starts_without_a_gap(tmp_path):
    _, plain = tiny_run(tmp_path, "random")
    result, centred = tiny_run(tmp_path, "centred", init="centred")
    # the random-init cone: a large gap at step 0; centred: the means at 0, the unit means far smaller
    assert plain["l2_centroid_distance"].iloc[0] > 1.0
    assert centred["l2_centroid_distance"].iloc[0] < 0.5 * plain["l2_centroid_distance"].iloc[0]
    import json

    meta = json.loads((result.run_dir / "config.json").read_text())
    centring = meta["resolved"]["centring"]
    assert centring["image_mean_norm_after"] < 1e-3 * centring["image_mean_norm_before"]
    assert math.isfinite(centred["loss"].dropna().iloc[-1])
