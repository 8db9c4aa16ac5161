"""The one runtime (device, precision, autocast, seeding, process group), data-source selection, CLI flag names."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from clipgeo import runtime
from clipgeo.cli._options import as_flags, defaults
from clipgeo.data import open_source, reopen_source
from clipgeo.errors import ClipgeoError, InputError


def test_devices_have_one_set_of_names_and_errors():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("tpu", "cpu:1", "cuda:x", "mps:0"):
        with pytest.raises(InputError, match=r"unknown device=.*auto, cpu, cuda, cuda:N, mps"):
            runtime.resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            runtime.resolve_device("cuda:0")


def test_precision_has_one_vocabulary():
    assert runtime.PRECISIONS == ("auto", "fp32", "fp16", "bf16")
    assert runtime.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert runtime.resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    assert [runtime.resolve_precision(p) for p in ("fp32", "fp16", "bf16")] == ["fp32", "fp16", "bf16"]
    for old in ("amp", "amp_bf16", "fp8"):
        with pytest.raises(InputError, match="unknown precision="):
            runtime.resolve_precision(old)
    assert isinstance(runtime.autocast("cpu", "fp32"), contextlib.nullcontext)
    with runtime.autocast(torch.device("cpu"), "bf16"):
        x = torch.ones(4, 4) @ torch.ones(4, 4)
    assert x.dtype == torch.bfloat16


def test_seed_all_seeds_torch_numpy_and_random():
    import random

    runtime.seed_all(7)
    first = (torch.rand(3), np.random.rand(3), random.random())
    runtime.seed_all(7)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


def test_without_torchrun_the_helpers_are_single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert runtime.init_distributed("cpu") is False
    assert (runtime.rank(), runtime.world_size(), runtime.is_distributed()) == (0, 1, False)
    value = torch.tensor([1.0, 2.0])
    assert torch.equal(runtime.all_reduce_mean(value), value) and runtime.all_reduce_mean(value) is not value
    assert torch.equal(runtime.all_reduce_sum(value), value)
    assert runtime.gather_object({"a": 1}) == [{"a": 1}]
    runtime.barrier()
    runtime.destroy_distributed()  # nothing was joined: a no-op


def test_load_torch_file_refuses_pickled_code(tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(2)}, good)
    assert torch.equal(runtime.load_torch_file(good, fix="x")["w"], torch.ones(2))
    bad = tmp_path / "bad.pt"
    torch.save({"f": contextlib.nullcontext()}, bad)  # an object, not tensors: needs unpickling code
    with pytest.raises(ClipgeoError, match=r"could not be loaded safely .*; save a state dict"):
        runtime.load_torch_file(bad, fix="save a state dict")


def test_library_messages_become_flags_on_the_command_line():
    names = {"batch_size", "resume", "device", "precision", "shapes", "out", "coco_images", "warmup"}
    text = ("unknown precision='fp8'; pass resume=True or resume=False, lower batch_size, use device='cpu', "
            "shapes=N with coco_images=DIR, warmup_steps=3; held out of 10")  # fmt: skip
    assert as_flags(text, names, {"warmup_steps": "warmup"}) == (
        "unknown --precision fp8; pass --resume or --no-resume, lower --batch-size, use --device cpu, "
        "--shapes N with --coco-images DIR, --warmup 3; held out of 10"
    )
    assert as_flags("n=5 and other_name", names) == "n=5 and other_name"  # not a parameter of the command


def test_cli_defaults_are_the_library_defaults():
    from clipgeo.extract import ExtractOptions
    from clipgeo.train.config import TrainConfig

    assert defaults(ExtractOptions)["model"] == "ViT-B-32" and defaults(ExtractOptions)["pretrained"] is None
    assert defaults(TrainConfig)["precision"] == "auto" and "out" not in defaults(TrainConfig)

    def f(a, b=3, *, c="x"):
        return a

    assert defaults(f) == {"b": 3, "c": "x"}


def test_open_source_picks_exactly_one(tmp_path):
    with pytest.raises(InputError, match="no training data given; pass one of shapes=N"):
        open_source(what="training data")
    with pytest.raises(InputError, match="one data source"):
        open_source(shapes=4, texts=tmp_path / "t.txt")
    with pytest.raises(InputError, match="shapes=0 draws no samples"):
        open_source(shapes=0)
    with pytest.raises(InputError, match="needs images=DIR"):
        open_source(captions=tmp_path / "c.csv")
    with pytest.raises(InputError, match="coco_images=DIR"):
        open_source(coco_captions=tmp_path / "c.json")
    with pytest.raises(InputError, match="not an input here"):
        open_source(shapes=4, kinds=("folder", "texts"))
    source, description = open_source(shapes=5, seed=2)
    assert len(source) == 5 and description == {"source": "shapes", "n": 5, "seed": 2}
    assert reopen_source(description).captions == source.captions
    (tmp_path / "t.txt").write_text("a red circle\na blue square\n")
    texts, description = open_source(texts=tmp_path / "t.txt")
    assert description["source"] == texts.kind and description["records"] == 2
    assert reopen_source(description) is None
