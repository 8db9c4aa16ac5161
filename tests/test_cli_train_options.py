"""`clipgeo train --objective-option KEY=VALUE`: parsed as JSON, checked against the objective."""

from __future__ import annotations

import pytest

from clipgeo.cli.train import _objective_options
from clipgeo.errors import InputError
from tests.conftest import assert_clean_error, run_cli


def test_values_are_json_and_inherited_options_are_known():
    opts = _objective_options("moco", ["queue_size=256", "temperature=0.2", "crop_scale=0.3", "momentum=0.9"])
    assert opts == {"queue_size": 256, "temperature": 0.2, "crop_scale": 0.3, "momentum": 0.9}
    assert _objective_options("clip", []) == {}


def test_unknown_and_malformed_options_are_refused():
    with pytest.raises(InputError, match="no option bogus.*queue_size"):
        _objective_options("moco", ["bogus=1"])
    with pytest.raises(InputError, match="KEY=VALUE"):
        _objective_options("moco", ["queue_size"])


def test_cli_reports_a_bad_option_in_one_line(tmp_path):
    proc = run_cli("train", "--shapes", "40", "--objective", "byol", "--objective-option", "nope=3", "--out", tmp_path / "r")
    assert_clean_error(proc, "no option nope")
