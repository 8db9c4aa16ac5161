"""Captioned sources (COCO, folder + CSV/JSONL, HF datasets, texts) and robust image decoding."""

from __future__ import annotations

import inspect
import io
import json
import socket
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipgeo.data import SKIP_REASONS, coco, folder, hf_dataset, load_image, texts
from clipgeo.errors import InputError

COCO = ("coco_mini/annotations/captions_val2017.json", "coco_mini/val2017")


# -- bad and odd images (also used by the extraction tests) ------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims width × height pixels (beyond PIL's bomb limit by default)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def make_images(folder_: Path, seed: int = 0) -> dict[str, str | None]:
    """Write good, odd and bad images; returns file name -> expected skip reason (None = usable)."""
    rng = np.random.default_rng(seed)
    folder_.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8), "RGB")
    jpeg = _encoded(photo, "JPEG", quality=90)
    png = _encoded(photo, "PNG")
    files: dict[str, tuple[bytes, str | None]] = {
        "good.jpg": (jpeg, None),
        "good.png": (png, None),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated_image"),
        "truncated.png": (png[: len(png) // 2], "truncated_image"),
        "zero.jpg": (b"", "empty_file"),
        "text.jpg": (b"this is not an image, just text\n" * 4, "not_an_image"),
        "cmyk.jpg": (_encoded(photo.convert("CMYK"), "JPEG"), None),
        "rgba.png": (_encoded(photo.convert("RGBA"), "PNG"), None),
        "palette.png": (_encoded(photo.convert("P"), "PNG"), None),
        "gray.png": (_encoded(photo.convert("L"), "PNG"), None),
        "bits16.png": (_encoded(Image.fromarray((rng.integers(0, 65536, (40, 40))).astype(np.uint16)), "PNG"), None),
        "one.png": (_encoded(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"), None),
        "bilevel.png": (_encoded(photo.convert("1"), "PNG"), None),
        "bomb.png": (bomb_png(), "too_large"),
    }
    for name, (data, _) in files.items():
        (folder_ / name).write_bytes(data)
    expected = {name: reason for name, (_, reason) in files.items()}
    expected["missing.jpg"] = "missing_file"  # listed, never written
    return expected


# -- load_image ---------------------------------------------------------------------------------------
def test_load_image_every_bad_and_odd_case(tmp_path):
    expected = make_images(tmp_path)
    for name, reason in expected.items():
        image, got = load_image(tmp_path / name)
        assert got == reason, name
        if reason is None:
            assert image.mode == "RGB" and image.size[0] >= 1, name
        else:
            assert image is None and got in SKIP_REASONS


def test_load_image_from_bytes_and_pil(tmp_path):
    make_images(tmp_path)
    from_path, _ = load_image(tmp_path / "good.png")
    from_bytes, reason = load_image((tmp_path / "good.png").read_bytes())
    assert reason is None and np.array_equal(np.asarray(from_path), np.asarray(from_bytes))
    assert load_image(b"") == (None, "empty_file")
    assert load_image(b"garbage") == (None, "not_an_image")
    same, _ = load_image(from_path)
    assert same is from_path  # RGB PIL images pass through untouched


def test_mode_conversions_known_pixels():
    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (10, 20, 30, 0))  # fully transparent -> white background
    rgba.putpixel((1, 0), (10, 20, 30, 255))  # opaque -> itself
    out, _ = load_image(rgba)
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((1, 0)) == (10, 20, 30)
    wide = Image.fromarray(np.array([[0, 257 * 100, 65535]], dtype=np.uint16))  # 16-bit
    out, _ = load_image(wide)
    assert [out.getpixel((i, 0)) for i in range(3)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]
    cmyk = Image.new("CMYK", (1, 1), (0, 0, 0, 0))  # no ink = white
    assert load_image(cmyk)[0].getpixel((0, 0)) == (255, 255, 255)


def test_decompression_guard_is_configurable(tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    assert load_image(tmp_path / "big.png", max_pixels=100 * 100)[1] is None
    assert load_image(tmp_path / "big.png", max_pixels=100 * 100 - 1) == (None, "too_large")


def test_jpeg_draft_decodes_at_reduced_scale(tmp_path):
    Image.new("RGB", (800, 600), (200, 100, 50)).save(tmp_path / "large.jpg", quality=95)
    full, _ = load_image(tmp_path / "large.jpg")
    small, _ = load_image(tmp_path / "large.jpg", draft_size=64)
    assert full.size == (800, 600)
    assert small.size == (100, 75)  # 1/8 scale keeps both sides >= 64
    assert np.abs(np.asarray(small, float).mean((0, 1)) - (200, 100, 50)).max() < 3


def test_decode_timeout_gives_a_reason_instead_of_hanging(tmp_path, monkeypatch):
    Image.new("RGB", (4, 4)).save(tmp_path / "slow.png")
    real_open = Image.open

    finished = []

    def slow_open(*args, **kwargs):
        time.sleep(120)  # interrupted by the decode timeout; were it not, ``finished`` would be set
        finished.append(True)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", slow_open)
    assert load_image(tmp_path / "slow.png", timeout=0.2) == (None, "decode_timeout")
    assert not finished, "the decode ran to completion instead of being abandoned"


# -- COCO ------------------------------------------------------------------------------------------------
def test_coco_mini(realdata):
    source = coco(realdata / COCO[0], realdata / COCO[1])
    data = json.loads((realdata / COCO[0]).read_text())
    assert len(source) == 99 and source.kind == "coco" and source.has_images
    with_captions = [r for r in source if r.captions]
    assert len(with_captions) == 79 and all(len(r.captions) == 5 for r in with_captions)
    assert sum(1 for r in source if not r.captions) == 20
    assert [r.path for r in source] == sorted(r.path for r in source)
    by_id = {str(a["id"]): a for a in data["annotations"]}
    for record in with_captions:
        for cid, caption in zip(record.caption_ids, record.captions, strict=True):
            assert by_id[cid]["caption"].strip() == caption and str(by_id[cid]["image_id"]) == record.image_id
    assert len({r.image_id for r in source}) == 99
    first = coco(realdata / COCO[0], realdata / COCO[1], "first")
    assert sum(len(r.captions) for r in first) == 79
    assert first.fingerprint != source.fingerprint
    assert coco(realdata / COCO[0], realdata / COCO[1]).fingerprint == source.fingerprint


def test_coco_synthetic_listing(tmp_path):
    images = tmp_path / "img"
    make_images(images)
    data = {
        "images": [{"id": 7, "file_name": "good.jpg"}, {"id": 3, "file_name": "missing.jpg"}],
        "annotations": [
            {"id": 11, "image_id": 7, "caption": " a photo "},
            {"id": 12, "image_id": 7, "caption": ""},
            {"id": 13, "image_id": 3, "caption": "lost"},
            {"id": 14, "image_id": 99, "caption": "orphan"},
        ],
    }
    (tmp_path / "captions.json").write_text(json.dumps(data))
    source = coco(tmp_path / "captions.json", images)
    by_path = {r.path: r for r in source}
    assert by_path["good.jpg"].captions == ("a photo", None) and by_path["good.jpg"].caption_ids == ("11", "12")
    assert by_path["missing.jpg"].image_id == "3" and by_path["missing.jpg"].captions == ("lost",)
    assert by_path["good.png"].captions == () and by_path["good.png"].image_id == "good.png"
    assert len(source) == len(list(images.iterdir())) + 1  # every file + the listed missing one
    assert "orphan" not in {c for r in source for c in r.captions}


@pytest.mark.parametrize(
    "content, needle",
    [("{not json", "not valid JSON"), (json.dumps({"images": []}), "annotations"),
     (json.dumps({"images": [{"id": 1}], "annotations": []}), "file_name")],
)
def test_coco_bad_json(tmp_path, content, needle):
    (tmp_path / "c.json").write_text(content)
    with pytest.raises(InputError, match=needle):
        coco(tmp_path / "c.json", tmp_path)


def test_coco_missing_paths(tmp_path):
    # library messages name the function's parameters, as a Python call writes them
    with pytest.raises(InputError, match=r"^captions_json='.*nope\.json' does not exist"):
        coco(tmp_path / "nope.json", tmp_path)
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(InputError, match=r"^images_dir='.*nodir' does not exist"):
        coco(tmp_path / "c.json", tmp_path / "nodir")
    with pytest.raises(InputError, match="captions_per_image must be 'all' or 'first'"):
        coco(tmp_path / "c.json", tmp_path, "some")


# -- folder + captions file -------------------------------------------------------------------------------
def test_folder_csv_several_rows_and_image_only(tmp_path):
    images = tmp_path / "img"
    make_images(images)
    (images / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(images / "sub" / "nested.png")
    (tmp_path / "c.csv").write_text(
        "file_name,caption\ngood.jpg,first caption\ngood.jpg,\"second, with comma\"\nmissing.jpg,gone\n"
        "sub/nested.png,nested\none.png,\n"
    )
    source = folder(images, tmp_path / "c.csv")
    by_id = {r.image_id: r for r in source}
    assert by_id["good.jpg"].captions == ("first caption", "second, with comma")
    assert by_id["good.jpg"].caption_ids == ("good.jpg#0", "good.jpg#1")
    assert by_id["missing.jpg"].captions == ("gone",)
    assert by_id["sub/nested.png"].captions == ("nested",)
    assert by_id["one.png"].captions == (None,)  # empty caption cell: kept, skipped at extraction
    assert by_id["good.png"].captions == ()  # not in the CSV: image-only
    assert [r.image_id for r in source] == sorted(by_id)
    first = folder(images, tmp_path / "c.csv", "first")
    assert {r.image_id: r for r in first}["good.jpg"].captions == ("first caption",)


def test_folder_jsonl_equals_csv(tmp_path):
    images = tmp_path / "img"
    make_images(images)
    rows = [{"file_name": "good.jpg", "caption": "a"}, {"file_name": "gray.png", "caption": "b"}]
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "c.csv").write_text("file_name,caption\ngood.jpg,a\ngray.png,b\n")
    a, b = folder(images, tmp_path / "c.jsonl"), folder(images, tmp_path / "c.csv")
    assert list(a) == list(b)


def test_folder_errors(tmp_path):
    make_images(tmp_path / "img")
    (tmp_path / "bad.csv").write_text("path,text\nx.jpg,y\n")
    with pytest.raises(InputError, match=r"^captions_file='.*bad\.csv' has no column 'file_name', 'caption'"):
        folder(tmp_path / "img", tmp_path / "bad.csv")
    (tmp_path / "c.xml").write_text("<a/>")
    with pytest.raises(InputError, match="unknown format"):
        folder(tmp_path / "img", tmp_path / "c.xml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"^images_dir='.*empty' holds no image files"):
        folder(tmp_path / "empty")
    with pytest.raises(InputError, match=r"^images_dir='.*c\.xml' is a file"):
        folder(tmp_path / "c.xml")


def test_folder_reads_the_shapes_generator(tmp_path):
    from clipgeo.data.shapes import CaptionedShapes, write_shapes

    shapes = CaptionedShapes(12, seed=3)
    csv_path = write_shapes(shapes, tmp_path)
    source = folder(tmp_path / "images", csv_path)
    assert len(source) == 12
    assert sorted(c for r in source for c in r.captions) == sorted(shapes[i][1] for i in range(12))
    image, reason = load_image(source[0].image)
    assert reason is None and image.mode == "RGB"


# -- texts, head, pairs ------------------------------------------------------------------------------------
def test_texts_keeps_blank_lines_for_the_record(tmp_path):
    (tmp_path / "t.txt").write_text("a cat\n\n  a dog  \n")
    source = texts(tmp_path / "t.txt")
    assert not source.has_images
    assert [r.captions for r in source] == [("a cat",), (None,), ("a dog",)]
    assert [r.caption_ids for r in source] == [("0",), ("1",), ("2",)]
    assert all(r.image is None and r.image_id is None for r in source)
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(InputError, match=r"^file='.*e\.txt' holds no captions"):
        texts(tmp_path / "e.txt")


def test_head_and_pairs(tmp_path):
    images = tmp_path / "img"
    make_images(images)
    (tmp_path / "c.csv").write_text("file_name,caption\ngood.jpg,a\ngood.jpg,b\ngray.png,c\none.png,\n")
    source = folder(images, tmp_path / "c.csv")
    head = source.head(3)
    assert len(head) == 3 and list(head) == [source[i] for i in range(3)]
    assert head.fingerprint != source.fingerprint and source.head(None) is source
    with pytest.raises(IndexError):
        head[3]
    with pytest.raises(InputError, match="n must be at least 1, got 0"):
        source.head(0)
    pairs = source.pairs()
    assert sorted(pairs.captions) == ["a", "b", "c"] and len(pairs) == 3
    assert {Path(image).name for image, _ in pairs} == {"good.jpg", "gray.png"}


# -- Hugging Face datasets -------------------------------------------------------------------------------------
def test_hf_local_parquet_with_caption_lists(tmp_path):
    import datasets

    make_images(tmp_path / "img")
    names = ["good.jpg", "cmyk.jpg", "truncated.jpg"]
    ds = datasets.Dataset.from_dict(
        {"image": [str(tmp_path / "img" / n) for n in names], "sentences": [["a", "b"], ["c"], [""]]}
    ).cast_column("image", datasets.Image())
    ds.to_parquet(str(tmp_path / "d.parquet"))
    source = hf_dataset(str(tmp_path / "d.parquet"))
    assert len(source) == 3 and source.kind == "hf"
    assert [r.captions for r in source] == [("a", "b"), ("c",), (None,)]
    assert [r.image_id for r in source] == ["0", "1", "2"] and source[0].caption_ids == ("0#0", "0#1")
    reasons = [load_image(r.image)[1] for r in source]
    assert reasons == [None, None, "truncated_image"]
    first = hf_dataset(str(tmp_path / "d.parquet"), captions_per_image="first")
    assert first[0].captions == ("a",) and first.fingerprint != source.fingerprint


def test_hf_column_errors_and_offline_hub(tmp_path, monkeypatch):
    import datasets

    datasets.Dataset.from_dict({"x": [1, 2]}).to_parquet(str(tmp_path / "d.parquet"))
    with pytest.raises(InputError, match="no image or caption column .*image_column=NAME and text_column=NAME"):
        hf_dataset(str(tmp_path / "d.parquet"))
    with pytest.raises(InputError, match="text_column='cap' is not in the dataset"):
        hf_dataset(str(tmp_path / "d.parquet"), text_column="cap")
    with pytest.raises(InputError, match="image_column='pic' is not in the dataset"):
        hf_dataset(str(tmp_path / "d.parquet"), image_column="pic")
    with pytest.raises(InputError, match=r"^id_or_path='.*nothere\.parquet' does not exist"):
        hf_dataset(str(tmp_path / "nothere.parquet"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(InputError, match="cannot reach the Hugging Face hub"):
        hf_dataset("someone/some_dataset")
    assert not attempts, "offline mode still tried the network"


# -- one selection for extract, train and compare; its messages in its own names --------------------------------
def test_open_source_names_its_own_parameters_and_the_cli_shows_flags(tmp_path):
    from clipgeo.cli._options import as_flags
    from clipgeo.data import open_source

    names = set(inspect.signature(open_source).parameters)
    make_images(tmp_path / "coco_images")  # a folder named like a parameter: a path, never rewritten
    (tmp_path / "c.json").write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    cases = [
        ({"coco_captions": tmp_path / "nope.json", "coco_images": tmp_path}, r"^coco_captions='.*nope\.json' does not exist",
         "--coco-captions {}/nope.json does not exist"),
        ({"coco_captions": tmp_path / "c.json", "coco_images": tmp_path / "coco_images"},
         r"^coco_captions='.*c\.json': an entry of 'images' lacks", "--coco-captions {}/c.json: an entry"),
        ({"images": tmp_path / "nodir"}, r"^images='.*nodir' does not exist", "--images {}/nodir does not exist"),
        ({"texts": tmp_path / "none.txt"}, r"^texts='.*none\.txt' does not exist", "--texts {}/none.txt"),
        ({"dataset": str(tmp_path / "d.xyz.parquet")}, r"^dataset='.*d\.xyz\.parquet' does not exist",
         "--dataset {}/d.xyz.parquet"),
        ({"coco_captions": tmp_path / "c.json"}, "needs both coco_captions=FILE.json and coco_images=DIR",
         "needs both --coco-captions FILE.json and --coco-images DIR"),
        ({"texts": tmp_path / "a.txt", "images": tmp_path}, "not images=DIR and texts=FILE",
         "not --images DIR and --texts FILE"),
        ({"images": tmp_path, "captions_per_image": "some"}, "captions_per_image must be", "--captions-per-image must be"),
    ]
    for options, library, shown in cases:
        with pytest.raises(InputError, match=library) as info:
            open_source(**options)
        message = str(info.value)
        assert "--" not in message, message
        assert shown.format(tmp_path) in as_flags(message, names), as_flags(message, names)
    with pytest.raises(InputError) as info:
        open_source(images=tmp_path / "coco_images", captions=tmp_path / "c.xml")
    assert as_flags(str(info.value), names).startswith(f"--captions {tmp_path}/c.xml does not exist")
