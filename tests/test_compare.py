"""``clipgeo compare``: one table and one figure of the geometry of several runs, checked against NumPy."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from clipgeo.data.shapes import CaptionedShapes
from clipgeo.train import TrainConfig, train
from clipgeo.train.compare import embed_pairs
from clipgeo.train.runs import build_objective, load_run
from tests.conftest import assert_clean_error, run_cli

N_EVAL, N_PROBE, SEED = 60, 80, 7


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short runs on the same shapes: SimCLR (negatives) and BYOL (none)."""
    root = tmp_path_factory.mktemp("runs")
    source = CaptionedShapes(56, seed=0)
    paths = []
    for objective in ("simclr", "byol"):
        config = TrainConfig(out=str(root / objective), objective=objective, epochs=1, batch_size=16, heldout=8,
                             log_every=10, device="cpu")  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train(config, source)
        paths.append(root / objective)
    return paths


@pytest.fixture(scope="module")
def compared(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    proc = run_cli("compare", *runs, "--out", out, "--n", N_EVAL, "--n-probe", N_PROBE, "--seed", SEED,
                   env={"OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, proc


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_one_command_writes_one_table_and_one_figure(compared, runs):
    out, proc = compared
    table = pd.read_csv(out / "compare.csv")
    assert list(table["run"]) == ["simclr", "byol", "random init (views)"]
    assert list(table["pair"]) == ["view1/view2"] * 3
    for column in ("probe_shape", "probe_color", "l2_centroid_distance", "relative_thickness_a", "offset_ratio_b",
                   "conformity_a", "mean_matched_cosine"):  # fmt: skip
        assert np.isfinite(table[column]).all(), column
    assert ((table["probe_shape"] >= 0) & (table["probe_shape"] <= 1)).all()
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "compare.md").read_text()
    assert markdown.count("\n") == 2 + len(table) and "| simclr |" in markdown
    assert "| simclr |" in proc.stdout
    record = json.loads((out / "compare.json").read_text())
    assert record["provenance"]["config"]["seed"] == SEED
    assert [row["run"] for row in record["rows"]] == list(table["run"])


def test_table_matches_numpy_on_the_embeddings(compared, runs):
    """Recompute the geometry of the BYOL row from its embeddings with plain NumPy."""
    out, _ = compared
    row = pd.read_csv(out / "compare.csv").set_index("run").loc["byol"]
    objective = build_objective(load_run(runs[1]))
    a, b, names = embed_pairs(objective, CaptionedShapes(N_EVAL, seed=SEED), seed=SEED)
    assert names == ("view1", "view2") and a.shape == b.shape == (N_EVAL, 64)
    assert row["l2_centroid_distance"] == pytest.approx(np.linalg.norm(unit(a).mean(0) - unit(b).mean(0)), rel=1e-6)
    assert row["raw_centroid_distance"] == pytest.approx(np.linalg.norm(a.mean(0) - b.mean(0)), rel=1e-6)
    assert row["mean_matched_cosine"] == pytest.approx(np.mean(np.sum(unit(a) * unit(b), axis=1)), rel=1e-6)
    for x, suffix in ((a, "a"), (b, "b")):
        centred = np.linalg.norm(x - x.mean(0), axis=1)
        assert row[f"relative_thickness_{suffix}"] == pytest.approx(centred.std(ddof=1) / centred.mean(), rel=1e-6)
        assert row[f"offset_ratio_{suffix}"] == pytest.approx(
            np.linalg.norm(x.mean(0)) / np.linalg.norm(x.std(0, ddof=1)), rel=1e-6
        )
        cos = unit(x) @ unit(x).T
        conformity = (cos.sum(1) - np.diag(cos)) / (len(x) - 1)
        assert row[f"conformity_{suffix}"] == pytest.approx(conformity.mean(), rel=1e-6)


def test_every_run_sees_the_same_views(runs):
    """Same seed, same augmentation: the two objectives embed identical view tensors."""
    seen = []
    for path in runs:
        objective = build_objective(load_run(path))
        original = objective.embed_pair

        def spy(batch, original=original):
            seen.append(batch["view1"].clone())
            return original(batch)

        objective.embed_pair = spy
        embed_pairs(objective, CaptionedShapes(12, seed=SEED), seed=SEED)
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[0].numpy(), seen[1].numpy())


def test_embeddings_are_reproducible(runs):
    objective = build_objective(load_run(runs[0]))
    source = CaptionedShapes(12, seed=SEED)
    first = embed_pairs(objective, source, seed=SEED)
    second = embed_pairs(objective, source, seed=SEED)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_trained_and_random_rows_differ(compared):
    out, _ = compared
    table = pd.read_csv(out / "compare.csv").set_index("run")
    assert table.loc["simclr", "conformity_a"] != table.loc["random init (views)", "conformity_a"]


def test_clean_errors(tmp_path, runs):
    from clipgeo.errors import ClipgeoError, InputError
    from clipgeo.train.compare import compare_runs

    assert_clean_error(run_cli("compare", tmp_path, "--out", tmp_path / "o"), "not a training run")
    with pytest.raises(InputError, match="unknown shapes label"):
        compare_runs(runs, labels=["texture"])
    with pytest.raises(InputError, match="no run directories"):
        compare_runs([])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text(json.dumps({"config": {"objective": "simclr", "model": "tiny"}}))
    with pytest.raises(ClipgeoError, match="no weights"):
        load_run(unfinished)
