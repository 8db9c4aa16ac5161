"""The extraction pipeline, in process, with the `tiny` model: correctness against plain open_clip,
bad inputs, determinism, batch-size tolerance, resume and refusal."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_sources import COCO, make_images

from clipgeo.data import coco, folder, hf_dataset, texts
from clipgeo.errors import InputError, StoreError
from clipgeo.extract import ExtractOptions, extract
from clipgeo.extract._loader import split_preprocess
from clipgeo.models import load_model
from clipgeo.store import StoreWriter, read_manifest, read_store
from tests.conftest import assert_close_f32

LONG = "a very long caption about a cat sitting on a mat " * 10  # > 32 tokens (tiny's context)
# |batch-size-1 features - batch-size-16 features| / max|features| measured on coco_mini (tiny and ViT-B-32,
# CPU): fp32 1.1e-6, fp16 6.8e-4, bf16 5.4e-3; the documented tolerances leave headroom (docs/extract.md).
TOLERANCE = {"fp32": 1e-5, "fp16": 5e-3, "bf16": 3e-2}


def _opts(**kw) -> ExtractOptions:
    base = dict(model="tiny", pretrained="none", batch_size=8, num_workers=0, shard_size=16, progress=False)
    base.update(kw)
    return ExtractOptions(**base)


def _extract(source, out, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return extract(source, out, _opts(**kw))


def _tiny(seed=0):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("tiny", "none")


@pytest.fixture
def odd_folder(tmp_path):
    """Every bad and odd image of the issue, with captions (one empty, one too long, one of a missing file)."""
    images = tmp_path / "images"
    expected = make_images(images)
    rows = [("good.jpg", "a good photo"), ("good.jpg", LONG), ("good.jpg", ""), ("missing.jpg", "a lost photo"),
            ("truncated.jpg", "half a photo"), ("cmyk.jpg", "printed colours"), ("bits16.png", "deep pixels")]
    with open(tmp_path / "captions.csv", "w") as handle:
        handle.write("file_name,caption\n" + "".join(f'{n},"{c}"\n' for n, c in rows))
    return folder(images, tmp_path / "captions.csv"), expected


# -- correctness against plain open_clip -------------------------------------------------------------------
def test_split_preprocess_is_bit_identical_to_open_clip(realdata):
    loaded = _tiny()
    pil, normalizer = split_preprocess(loaded.preprocess_val)
    assert normalizer is not None
    from clipgeo.extract._loader import pil_to_uint8

    paths = sorted((realdata / COCO[1]).iterdir())[:6]
    images = [Image.open(p).convert("RGB") for p in paths]
    expected = torch.stack([loaded.preprocess_val(im) for im in images])
    got = normalizer(torch.stack([pil_to_uint8(pil(im)) for im in images]))
    assert torch.equal(got, expected)


def test_coco_mini_store_matches_open_clip_batches(realdata, tmp_path):
    source = coco(realdata / COCO[0], realdata / COCO[1])
    summary = _extract(source, tmp_path / "s", batch_size=16, shard_size=40)
    store = read_store(tmp_path / "s")
    assert store.image.shape == (99, 64) and store.text.shape == (395, 64)
    assert summary["rows"] == {"image": 99, "text": 395} and summary["shards"] == 3
    assert summary["skipped"] == {"image": {}, "text": {}} and summary["truncated_captions"] == 0
    assert list(store.image_ids) == [r.image_id for r in source]
    assert list(store.text_ids) == [c for r in source for c in r.caption_ids]
    assert list(store.captions) == [c for r in source for c in r.captions]
    linked = store.image_ids[store.text_image_index]
    assert list(linked) == [r.image_id for r in source for _ in r.captions]
    assert store.meta.model == "tiny" and store.meta.normalized is False and store.meta.precision == "fp32"

    # reference: open_clip's own preprocess + encode_image on the same batches (records 0-15, 16-31, 32-39, ...)
    loaded = _tiny()
    first = [source[i] for i in range(16)]
    batch = torch.stack([loaded.preprocess_val(Image.open(r.image).convert("RGB")) for r in first])
    with torch.no_grad():
        reference = loaded.model.encode_image(batch, normalize=False).numpy()
        tokens = loaded.tokenizer([c for r in first for c in r.captions], context_length=loaded.context_length)
        text_reference = loaded.model.encode_text(tokens, normalize=False).numpy()
    # same batches, but thread count and kernel blocking may differ from this process: float32 tolerance
    assert_close_f32(store.image[:16], reference)
    assert_close_f32(store.text[: len(tokens)], text_reference)
    norms = np.linalg.norm(store.image, axis=1)
    assert norms.std() > 0 and not np.allclose(norms, 1)  # raw features, not unit vectors


# -- bad inputs --------------------------------------------------------------------------------------------------
def test_every_bad_input_is_skipped_with_its_reason(odd_folder, tmp_path):
    source, expected = odd_folder
    summary = _extract(source, tmp_path / "s", shard_size=5, batch_size=3)
    store = read_store(tmp_path / "s")
    manifest = read_manifest(tmp_path / "s")
    bad = {n: r for n, r in expected.items() if r is not None}
    good = sorted(n for n, r in expected.items() if r is None)
    assert list(store.image_ids) == good
    skipped_images = {s["id"]: s["reason"] for e in manifest["shards"] if e["modality"] == "image" for s in e["skipped"]}
    assert skipped_images == bad
    assert summary["skipped"]["image"] == dict(sorted({r: list(bad.values()).count(r) for r in bad.values()}.items()))
    assert summary["skipped"]["text"] == {"empty_caption": 1}
    assert summary["truncated_captions"] == 1
    assert summary["rows"] == {"image": len(good), "text": 6}
    # captions of images that were skipped stay, unpaired; the others point at their image
    pairs = dict(zip(store.captions, store.text_image_index, strict=True))
    assert pairs["a lost photo"] == -1 and pairs["half a photo"] == -1
    assert store.image_ids[pairs["a good photo"]] == "good.jpg" and store.image_ids[pairs["deep pixels"]] == "bits16.png"
    truncated = read_store(tmp_path / "s").captions
    assert LONG.strip() in list(truncated)  # the caption text is kept whole; its tokens were cut
    assert np.isfinite(store.image).all() and np.isfinite(store.text).all()


def test_texts_only(tmp_path):
    (tmp_path / "t.txt").write_text("a cat\n\na dog\n" + LONG + "\n")
    summary = _extract(texts(tmp_path / "t.txt"), tmp_path / "s", shard_size=2)
    store = read_store(tmp_path / "s")
    assert store.image.shape == (0, 64) and store.text.shape == (3, 64)
    assert list(store.text_ids) == ["0", "2", "3"] and (store.text_image_index == -1).all()
    assert summary["skipped"]["text"] == {"empty_caption": 1} and summary["truncated_captions"] == 1


def test_hf_dataset_end_to_end_equals_folder(tmp_path):
    import datasets

    make_images(tmp_path / "img")
    names = ["cmyk.jpg", "good.jpg", "gray.png", "zero.jpg"]
    ds = datasets.Dataset.from_dict(
        {"image": [str(tmp_path / "img" / n) for n in names], "caption": ["c", "g", "y", "z"]}
    ).cast_column("image", datasets.Image())
    ds.to_parquet(str(tmp_path / "d.parquet"))
    _extract(hf_dataset(str(tmp_path / "d.parquet")), tmp_path / "hf", batch_size=4)
    (tmp_path / "c.csv").write_text("file_name,caption\n" + "".join(f"{n},{c}\n" for n, c in zip(names, "cgyz", strict=True)))
    (tmp_path / "only").mkdir()
    for n in names:
        (tmp_path / "only" / n).write_bytes((tmp_path / "img" / n).read_bytes())
    _extract(folder(tmp_path / "only", tmp_path / "c.csv"), tmp_path / "folder", batch_size=4)
    a, b = read_store(tmp_path / "hf"), read_store(tmp_path / "folder")
    np.testing.assert_array_equal(a.image, b.image)  # bytes from parquet decode like files on disk
    np.testing.assert_array_equal(a.text, b.text)
    assert [s["reason"] for s in a.skipped] == ["empty_file"]


# -- determinism and tolerance ---------------------------------------------------------------------------------------
def test_bit_identical_whatever_the_worker_count(odd_folder, tmp_path):
    source, _ = odd_folder
    _extract(source, tmp_path / "w0", num_workers=0, shard_size=6, batch_size=4)
    _extract(source, tmp_path / "w2", num_workers=2, shard_size=6, batch_size=4)
    a, b = read_store(tmp_path / "w0"), read_store(tmp_path / "w2")
    assert a.image.tobytes() == b.image.tobytes() and a.text.tobytes() == b.text.tobytes()
    assert list(a.image_ids) == list(b.image_ids) and list(a.text_ids) == list(b.text_ids)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_batch_sizes_agree_within_the_documented_tolerance(realdata, tmp_path, precision):
    source = coco(realdata / COCO[0], realdata / COCO[1]).head(24)
    stores = []
    for batch_size in (1, 16):
        _extract(source, tmp_path / f"b{batch_size}", batch_size=batch_size, precision=precision, shard_size=24)
        stores.append(read_store(tmp_path / f"b{batch_size}"))
    one, many = stores
    for modality in ("image", "text"):
        a, b = getattr(one, modality), getattr(many, modality)
        assert np.abs(a - b).max() <= TOLERANCE[precision] * np.abs(b).max(), modality
    if precision != "fp32":  # reduced precision really ran: it differs from fp32
        _extract(source, tmp_path / "fp32", batch_size=16, shard_size=24)
        assert not np.array_equal(read_store(tmp_path / "fp32").text, many.text)


def test_float16_store(realdata, tmp_path):
    source = coco(realdata / COCO[0], realdata / COCO[1]).head(10)
    _extract(source, tmp_path / "f32")
    _extract(source, tmp_path / "f16", store_dtype="float16")
    a, b = read_store(tmp_path / "f32"), read_store(tmp_path / "f16")
    assert b.meta.store_dtype == "float16"
    np.testing.assert_array_equal(b.image, a.image.astype(np.float16).astype(np.float32))


# -- resume and refusal -------------------------------------------------------------------------------------------------
def test_resume_after_a_crash_writes_each_row_once_and_the_same_bytes(odd_folder, tmp_path, monkeypatch):
    source, _ = odd_folder
    _extract(source, tmp_path / "whole", shard_size=4, batch_size=3)

    real_write = StoreWriter.write_shard
    calls = {"n": 0}

    def crashing_write(self, modality, index, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # image shard 1 is written, its text shard is not: the shard is unfinished
            raise KeyboardInterrupt
        return real_write(self, modality, index, *args, **kwargs)

    monkeypatch.setattr(StoreWriter, "write_shard", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        _extract(source, tmp_path / "resumed", shard_size=4, batch_size=3)
    monkeypatch.setattr(StoreWriter, "write_shard", real_write)
    with pytest.raises(StoreError, match="incomplete"):
        read_store(tmp_path / "resumed")
    summary = _extract(source, tmp_path / "resumed", shard_size=4, batch_size=3, num_workers=1)
    assert summary["shards_resumed"] == 1 and summary["shards_written"] == summary["shards"] - 1
    a, b = read_store(tmp_path / "whole"), read_store(tmp_path / "resumed")
    assert a.image.tobytes() == b.image.tobytes() and a.text.tobytes() == b.text.tobytes()
    assert list(b.image_ids) == list(a.image_ids) and len(set(b.text_ids)) == len(b.text_ids)
    manifest = read_manifest(tmp_path / "resumed")
    assert sorted((e["modality"], e["index"]) for e in manifest["shards"]) == sorted(
        (m, k) for m in ("image", "text") for k in range(summary["shards"])
    )
    skips = [s["id"] for e in manifest["shards"] for s in e["skipped"]]
    assert len(skips) == len(set(skips))  # every skip recorded exactly once
    again = _extract(source, tmp_path / "resumed", shard_size=4, batch_size=3)
    assert again["status"] == "already complete" and again["shards_written"] == 0


def test_other_model_data_or_options_are_refused(realdata, tmp_path):
    source = coco(realdata / COCO[0], realdata / COCO[1]).head(6)
    _extract(source, tmp_path / "s")
    with pytest.raises(StoreError, match="different data or options"):
        _extract(source, tmp_path / "s", seed=1)  # other random weights
    with pytest.raises(StoreError, match="different data or options"):
        _extract(coco(realdata / COCO[0], realdata / COCO[1]).head(7), tmp_path / "s")
    with pytest.raises(StoreError, match="different data or options"):
        _extract(source, tmp_path / "s", precision="bf16")
    with pytest.raises(StoreError, match="one store holds one model"):
        _extract(source, tmp_path / "s", model="RN50", pretrained="none", limit=1)
    # what does not change the content may change on resume
    assert _extract(source, tmp_path / "s", batch_size=3, num_workers=1)["status"] == "already complete"


def test_options_are_validated():
    # library messages name the parameters (the CLI shows them as --flags)
    for bad, needle in [({"batch_size": 0}, "batch_size"), ({"device": "tpu"}, "device='tpu'"),
                        ({"precision": "int8"}, "precision='int8'"), ({"store_dtype": "float64"}, "store_dtype='float64'"),
                        ({"limit": 0}, "limit"), ({"shard_size": 0}, "shard_size"), ({"decode": "gpu2"}, "decode='gpu2'")]:
        with pytest.raises(InputError, match=needle):
            _opts(**bad).validate()


def test_manifest_summary_is_json_and_complete(realdata, tmp_path):
    source = coco(realdata / COCO[0], realdata / COCO[1], "first").head(8)
    summary = _extract(source, tmp_path / "s")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["summary"]["rows"] == summary["rows"]
    assert summary["pairs"] == 8 and summary["pairs_per_s"] > 0 and summary["text_trimmed"] is True
    assert manifest["meta"]["config"]["model"] == "tiny" and manifest["meta"]["fingerprint"]


def test_a_model_built_beforehand_gives_the_same_store(realdata, tmp_path):
    source = coco(realdata / COCO[0], realdata / COCO[1]).head(10)
    _extract(source, tmp_path / "a")
    loaded = _tiny(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extract(source, tmp_path / "b", _opts(model="RN50"), loaded=loaded)  # the given model wins
    a, b = read_store(tmp_path / "a"), read_store(tmp_path / "b")
    assert b.meta.model == "tiny" and read_manifest(tmp_path / "b")["meta"]["config"]["model"] == "tiny"
    assert a.image.tobytes() == b.image.tobytes() and a.text.tobytes() == b.text.tobytes()


@pytest.mark.parametrize("decode", ["torchvision", "device"])
def test_faster_decoders_keep_the_skips_and_stay_close_to_pil(odd_folder, tmp_path, decode):
    """libjpeg-turbo in the workers, or batched decoding on the model's device (CPU here, nvJPEG on CUDA)."""
    source, _ = odd_folder
    _extract(source, tmp_path / "pil", shard_size=6, batch_size=4)
    for workers in (0, 1):
        _extract(source, tmp_path / f"{decode}{workers}", decode=decode, shard_size=6, batch_size=4,
                 num_workers=workers)
    ref, a, b = (read_store(tmp_path / n) for n in ("pil", f"{decode}0", f"{decode}1"))
    assert list(a.image_ids) == list(ref.image_ids)
    assert sorted((s["id"], s["reason"]) for s in a.skipped) == sorted((s["id"], s["reason"]) for s in ref.skipped)
    assert a.image.tobytes() == b.image.tobytes()  # still independent of the worker count
    jpeg_rows = [i for i, name in enumerate(ref.image_ids) if name == "good.jpg"]
    png_rows = [i for i, name in enumerate(ref.image_ids) if name.endswith(".png")]
    scale = np.abs(ref.image).max()
    assert np.abs(a.image - ref.image).max() <= 1e-2 * scale  # resampling differs a little from PIL's
    assert not np.array_equal(a.image[jpeg_rows], ref.image[jpeg_rows])  # JPEGs really took the other decoder
    np.testing.assert_array_equal(a.image[png_rows], ref.image[png_rows])  # other formats go through PIL
    np.testing.assert_array_equal(a.text, ref.text)
