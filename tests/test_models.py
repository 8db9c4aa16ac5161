"""Model loading (tags, checkpoints, random init, fail-fast offline) and the padding-free text tower."""

from __future__ import annotations

import copy
import socket
import time
import warnings

import pytest
import torch

from clipgeo.errors import ClipgeoError
from clipgeo.extract import can_trim_text, encode_text, encode_text_trimmed, pooled_positions, tokenize
from clipgeo.models import load_model, read_state_dict

CAPTIONS = [
    "a dog",
    "A woman stands in the dining area at the table.",
    "two giraffes standing next to each other in a field of tall grass near some trees " * 8,  # > 77 tokens
    "x",
    "A plane floating on top of a lake surrounded by mountains.",
    "an elephant",
]


class _Trap:
    """Unpickling this object would create a file: a stand-in for arbitrary code in a checkpoint."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("tiny", "none")


@pytest.fixture(scope="module")
def vit_b32():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("ViT-B-32", "none")


# -- loading ------------------------------------------------------------------------------------------
def test_tiny_architecture_facts():
    loaded = _tiny()
    assert (loaded.embed_dim, loaded.context_length, loaded.image_size) == (64, 32, 32)
    assert loaded.pretrained == "none" and loaded.checkpoint_sha256 is None
    assert not loaded.model.training


def test_random_init_warns_and_is_seeded():
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match="random initialisation"):
        a = load_model("tiny", "none")
    b = _tiny(5)
    c = _tiny(6)
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.model.text_projection, c.model.text_projection)


def test_unknown_model_and_tag():
    with pytest.raises(ClipgeoError, match="unknown model 'ViT-Q-99'"):
        load_model("ViT-Q-99", "none")
    with pytest.raises(ClipgeoError, match=r"no pretrained tag 'nonsense' for ViT-B-32.*pretrained='none', or checkpoint=FILE"):
        load_model("ViT-B-32", "nonsense")
    with pytest.raises(ClipgeoError, match="unknown precision"):
        load_model("tiny", "none", precision="fp8")


def _assert_fast_offline_error(call, monkeypatch, max_attempts):
    """Fails with the one-line message after at most ``max_attempts`` connection attempts and no back-off sleeps.

    Counting attempts and sleeps (instead of timing the call) keeps the test independent of the machine's load.
    """
    attempts, sleeps = [], []
    real_connect = socket.create_connection

    def counting_connect(*args, **kwargs):
        attempts.append(args[:1])
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", counting_connect)
    monkeypatch.setattr(time, "sleep", lambda seconds: sleeps.append(seconds))
    with pytest.raises(ClipgeoError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    assert "could not fetch the ViT-B-32 'openai' weights" in message
    assert "checkpoint=FILE with pretrained='openai'" in message and "--" not in message  # parameters, not flags
    assert len(attempts) <= max_attempts, f"{len(attempts)} connection attempts before giving up"
    assert sum(sleeps) < 1, f"backed off for {sum(sleeps):.1f} s before giving up"


def _skip_if_cached():
    import open_clip

    from clipgeo.models import _weights_cached

    if _weights_cached(open_clip.get_pretrained_cfg("ViT-B-32", "openai"), None):
        pytest.skip("ViT-B-32 openai weights are cached on this machine")


def test_pretrained_tag_fails_fast_when_offline(monkeypatch):
    import open_clip  # noqa: F401 - import time is not part of the measurement

    _skip_if_cached()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _assert_fast_offline_error(lambda: load_model("ViT-B-32", "openai"), monkeypatch, max_attempts=0)


def test_pretrained_tag_fails_fast_without_network(monkeypatch):
    import open_clip  # noqa: F401

    _skip_if_cached()
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    _assert_fast_offline_error(lambda: load_model("ViT-B-32", "openai"), monkeypatch, max_attempts=2)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_checkpoint_roundtrip(tmp_path, suffix):
    source = _tiny(1)
    path = tmp_path / f"tiny{suffix}"
    state = source.model.state_dict()
    if suffix == ".pt":
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = load_model("tiny", "openai", checkpoint=path)  # the checkpoint wins over the tag
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert loaded.pretrained is None and len(loaded.checkpoint_sha256) == 64


def test_checkpoint_with_a_tag_gets_the_tags_architecture_flags(tmp_path, monkeypatch):
    """OpenAI's weights need QuickGELU; a checkpoint holding them, named by its tag, must be built with it."""
    import open_clip
    from open_clip.transformer import QuickGELU

    torch.save(_tiny().model.state_dict(), tmp_path / "tiny.pt")
    real = open_clip.get_pretrained_cfg
    fake = {"quick_gelu": True, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25), "hf_hub": "nobody/nothing/"}
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda m, t: fake if (m, t) == ("tiny", "fake") else real(m, t))
    plain = load_model("tiny", "none", checkpoint=tmp_path / "tiny.pt")
    tagged = load_model("tiny", "fake", checkpoint=tmp_path / "tiny.pt")  # nothing is downloaded
    assert not isinstance(plain.model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert isinstance(tagged.model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert tagged.pretrained == "fake" and plain.pretrained is None
    assert tuple(tagged.preprocess_val.transforms[-1].mean) == (0.5, 0.5, 0.5)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ClipgeoError, match="does not exist"):
        read_state_dict(tmp_path / "none.pt")
    torch.save(_tiny().model.state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(ClipgeoError, match="does not fit architecture ViT-B-16 .*the architecture it was trained with"):
        load_model("ViT-B-16", "none", checkpoint=tmp_path / "tiny.pt")

    marker = tmp_path / "pwned"
    torch.save({"weights": _Trap(str(marker))}, tmp_path / "evil.pt")
    with pytest.raises(ClipgeoError, match="could not be loaded safely"):
        read_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()  # the pickled code never ran


# -- tokenising once, counting truncation ----------------------------------------------------------------------
def test_tokenize_matches_the_tokenizer_and_counts_truncation():
    loaded = _tiny()
    tokens, truncated = tokenize(loaded.tokenizer, CAPTIONS, 77)
    assert torch.equal(tokens, loaded.tokenizer(CAPTIONS, context_length=77))
    assert truncated == [False, False, True, False, False, False]
    short, cut = tokenize(loaded.tokenizer, CAPTIONS, 32)
    assert torch.equal(short, loaded.tokenizer(CAPTIONS, context_length=32)) and cut[2]
    # exactly filling the context is not a truncation
    n_words = 77 - 2
    exact = " ".join(["dog"] * n_words)
    assert tokenize(loaded.tokenizer, [exact], 77)[1] == [False]
    assert tokenize(loaded.tokenizer, [exact + " dog"], 77)[1] == [True]
    empty, flags = tokenize(loaded.tokenizer, [], 77)
    assert empty.shape == (0, 77) and flags == []


# -- the trimmed text tower equals encode_text ------------------------------------------------------------------------
def _check_trimmed_equals_full(loaded, atol):
    model = loaded.model
    assert can_trim_text(model)
    tokens = loaded.tokenizer(CAPTIONS, context_length=loaded.context_length)
    with torch.no_grad():
        full = model.encode_text(tokens, normalize=False)
        trimmed = encode_text_trimmed(model, tokens)
        # a batch without the long caption is cut well short of the context
        short_rows = [0, 1, 3, 4, 5]
        short = encode_text_trimmed(model, tokens[short_rows])
    assert int(pooled_positions(model, tokens[short_rows]).max()) + 1 < loaded.context_length // 2
    assert trimmed.shape == full.shape
    torch.testing.assert_close(trimmed, full, rtol=0, atol=atol)
    torch.testing.assert_close(short, full[short_rows], rtol=0, atol=atol)
    assert full.norm(dim=1).min() > 0.1  # raw features, not normalised to 1
    assert not torch.allclose(full.norm(dim=1), torch.ones(len(CAPTIONS)))


def test_trimmed_text_equals_encode_text_tiny():
    _check_trimmed_equals_full(_tiny(), atol=1e-5)


@pytest.mark.slow
def test_trimmed_text_equals_encode_text_vit_b32(vit_b32):
    _check_trimmed_equals_full(vit_b32, atol=1e-4)


def test_trimming_falls_back_where_it_is_not_valid():
    loaded = _tiny()
    tokens = loaded.tokenizer(CAPTIONS[:3], context_length=loaded.context_length)
    bidirectional = copy.deepcopy(loaded.model)
    bidirectional.attn_mask = torch.zeros_like(bidirectional.attn_mask)  # not causal
    last_pooled = copy.deepcopy(loaded.model)
    last_pooled.text_pool_type = "last"
    for model in (bidirectional, last_pooled):
        assert not can_trim_text(model)
        with torch.no_grad():
            torch.testing.assert_close(encode_text(model, tokens), model.encode_text(tokens, normalize=False),
                                       rtol=0, atol=0)
    # when the mask is not causal, trimming would change the features: the fallback matters
    with torch.no_grad():
        assert not torch.allclose(encode_text_trimmed(bidirectional, tokens[:1]),
                                  bidirectional.encode_text(tokens[:1]), atol=1e-4)
