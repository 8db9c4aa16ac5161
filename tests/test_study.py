"""The geometry study: its grid, criteria, recall with recurring captions, and bad input (library and CLI)."""

from __future__ import annotations

import numpy as np
import pytest

from clipgeo.errors import InputError
from clipgeo.train import study as st
from tests.conftest import assert_clean_error, run_cli


def test_grid_is_temperatures_times_seeds_then_each_ingredient_alone():
    settings = st.grid(temperatures=(None, 0.01), seeds=(0, 1), ingredients=("asymmetry", "centred"),
                       ingredient_temperatures=(0.01,))  # fmt: skip
    names = [s.run_name for s in settings]
    assert names == [
        "learnable_plain_random_seed0", "learnable_plain_random_seed1",
        "fixed0.01_plain_random_seed0", "fixed0.01_plain_random_seed1",
        "fixed0.01_asymmetric_random_seed0", "fixed0.01_plain_centred_seed0",
    ]  # fmt: skip
    asym = settings[4]
    assert (asym.describe, asym.undescribed_marks, asym.group) == (0.5, 2, "fixed 0.01 / asymmetric / random init")
    # an ingredient at a temperature already in the grid adds no duplicate
    assert len(st.grid(temperatures=(0.01,), seeds=(0,), ingredients=(), ingredient_temperatures=(0.01,))) == 1


def test_presets_and_their_sizes():
    small = st.preset("small")
    temps = {s.temperature for s in small.settings}
    assert temps == {None, 0.01, 0.07}
    seeds = {t: sorted(s.seed for s in small.settings if s.temperature == t and s.data_label == "plain"
                       and s.init == "random") for t in temps}  # fmt: skip
    assert len(seeds[None]) >= 2 and len(seeds[0.01]) >= 2  # several seeds for the main factor
    assert {s.data_label for s in small.settings} == {"plain", "asymmetric", "long-tail"}
    assert {s.init for s in small.settings} == {"random", "centred"}
    assert st.preset("small", jobs=1).jobs == 1


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: st.preset("huge"), "unknown study preset 'huge'"),
        (lambda: st.preset("small", settings=()), "grid is empty"),
        (lambda: st.preset("small", nope=1), "no field nope"),
        (lambda: st.Setting(temperature=0.0), "temperature must be a finite number > 0"),
        (lambda: st.Setting(temperature=-0.01), "temperature must be"),
        (lambda: st.Setting(init="zeros"), "unknown init"),
        (lambda: st.grid(ingredients=("magic",)), "unknown ingredient 'magic'"),
        (lambda: st.preset("tiny", n_train=20, heldout=8, batch_size=16), "less than one batch"),
        (lambda: st.StudyConfig(settings=()), "grid is empty"),
    ],
)
def test_bad_configurations_are_one_line_errors(call, needle):
    with pytest.raises(InputError, match=needle) as info:
        call()
    assert "\n" not in str(info.value)


def test_caption_recall_counts_a_recurring_caption_as_a_hit():
    a = np.eye(4)  # image i points along axis i
    b = np.eye(4)[[1, 0, 2, 3]]  # captions 0 and 1 swapped
    strict, by_caption, chance = st.caption_recall(a, b, ["x", "x", "y", "z"])
    assert strict == 0.5  # rows 2, 3
    assert by_caption == 1.0  # rows 0 and 1 retrieve the other "x"
    assert chance == pytest.approx((2 / 4) ** 2 + 2 * (1 / 4) ** 2)
    assert st.caption_recall(a, a, list("abcd")) == (1.0, 1.0, 0.25)


def row(setting, **values):
    base = dict(l2_gap_start=1.3, l2_gap=1.0, offset_ratio_image=1.0, offset_ratio_text=0.8, best_feature_accuracy=1.0,
                linear_cv_accuracy=1.0, relative_thickness_image=0.2, relative_thickness_text=0.2,
                conformity_spread_image=0.05, conformity_spread_text=0.05, r1=0.2, chance=0.004, logit_scale=100.0)  # fmt: skip
    base.update(values)
    return {"setting": setting, "temperature": "t", "data": "plain", "init": "random", **base}


def test_summary_means_over_seeds_and_criteria_at_their_bounds():
    rows = [row("A", l2_gap=0.5), row("A", l2_gap=0.3), row("B", offset_ratio_text=st.OFFSET_MIN - 1e-9),
            row("C", best_feature_accuracy=st.FEATURE_MIN, r1=st.RECALL_FACTOR * 0.004)]  # fmt: skip
    summary = {e["setting"]: e for e in st.summarise(rows)}
    assert summary["A"]["seeds"] == 2
    assert summary["A"]["l2_gap"] == pytest.approx(0.4) and summary["A"]["l2_gap_std"] == pytest.approx(np.std([0.5, 0.3], ddof=1))
    assert summary["A"]["meets_gap"] and summary["A"]["seeds_meeting_all"] == 1  # mean 0.4 = GAP_MIN; seed 2 misses
    assert not summary["B"]["meets_offset"] and not summary["B"]["reproduces"]
    assert summary["C"]["reproduces"]  # every bound is inclusive
    finding = st.describe_finding(list(summary.values()))
    assert "Reproduce all of them: A (1/2 seeds); C (1/1 seeds)." in finding
    assert "Miss (b) offset ratio: B." in finding


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--preset", "huge"], "unknown study preset 'huge'"),
        (["--preset", "tiny", "--only", "no-such-run"], "grid is empty"),
        (["--preset", "tiny", "--temperature", "0"], "temperature must be a finite number > 0"),
        (["--preset", "tiny", "--temperature", "-1"], "temperature must be"),
        (["--preset", "tiny", "--temperature", "warm"], "neither 'learnable' nor a number"),
        (["--preset", "tiny", "--ingredient", "magic"], "unknown ingredient 'magic'"),
        (["--preset", "tiny", "--jobs", "0"], "jobs must be an integer >= 1"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, needle):
    proc = run_cli("study", "--out", tmp_path / "s", *args)
    assert_clean_error(proc, needle)
    assert not (tmp_path / "s").exists()  # nothing half-written
