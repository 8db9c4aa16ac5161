"""Model loading shared by ``clipgeo extract`` and ``clipgeo train``.

Any open_clip architecture, with weights from an open_clip pretrained tag, a
local checkpoint (state dict or safetensors, loaded without running pickled
code), or random initialisation.  clipgeo also registers its own small
architecture ``tiny`` (``clipgeo/model_configs/tiny.json``: 2-layer towers,
32 px images, 64-d embeddings) so tests and the CPU demo run in seconds.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ClipgeoError
from .provenance import file_sha256
from .runtime import load_torch_file, resolve_precision

CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered = False


def register_configs() -> None:
    """Make clipgeo's architectures (``tiny``) known to open_clip (idempotent)."""
    global _registered
    if _registered:
        return
    import open_clip

    open_clip.add_model_config(CONFIG_DIR)
    _registered = True


def list_models() -> list[str]:
    """Names of every architecture open_clip can build, clipgeo's included."""
    register_configs()
    import open_clip

    return list(open_clip.list_models())


@dataclass
class LoadedModel:
    """An open_clip CLIP model with its transforms, tokenizer and provenance.

    Attributes
    ----------
    model : open_clip.CLIP (torch.nn.Module), in eval mode on ``device``
    preprocess_train, preprocess_val : callables PIL.Image -> tensor (C, H, W)
    tokenizer : callable list[str] -> LongTensor (B, context_length)
    name, pretrained, checkpoint_sha256 : provenance of the weights
    embed_dim, context_length, image_size : architecture facts
    """

    model: Any
    preprocess_train: Any
    preprocess_val: Any
    tokenizer: Any
    name: str
    pretrained: str | None
    checkpoint_sha256: str | None
    embed_dim: int
    context_length: int
    image_size: int

    @property
    def meta(self) -> dict[str, Any]:
        """Store-metadata fields describing these weights."""
        return {"model": self.name, "pretrained": self.pretrained, "checkpoint_sha256": self.checkpoint_sha256}


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """Load a state dict from ``.safetensors`` or a torch file, without unpickling code.

    Accepts a bare state dict or a training checkpoint with a ``"model"`` or
    ``"state_dict"`` entry; a ``module.`` prefix (DistributedDataParallel) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise ClipgeoError(f"checkpoint {path} does not exist; give the path of a .pt/.pth/.safetensors file")
    fix = "save it as a plain state dict or .safetensors"
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:
            first = str(exc).splitlines()[0][:120] if str(exc) else ""
            raise ClipgeoError(f"checkpoint {path} could not be loaded safely ({type(exc).__name__}: {first}); {fix}") from None
    else:
        state = load_torch_file(path, fix=fix)
    if isinstance(state, dict):
        for key in ("model", "state_dict"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state:
        raise ClipgeoError(f"checkpoint {path} holds no state dict; save model.state_dict()")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _network_hint(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    needles = ("connection", "resolve", "network", "offline", "timed out", "urlopen", "max retries", "name or service",
               "temporary failure", "hf_hub_offline", "localentrynotfound", "unreachable", "httperror", "ssl")
    return any(n in text for n in needles)


@contextlib.contextmanager
def _quiet_open_clip_logging() -> Iterator[None]:
    """Hide open_clip's INFO/WARNING log lines (it logs on the root logger) while a model is built."""
    root = logging.getLogger()

    def _drop(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "open_clip" not in record.pathname

    root.addFilter(_drop)
    try:
        yield
    finally:
        root.removeFilter(_drop)


def _weights_cached(cfg: dict[str, Any], cache_dir: str | None) -> bool:
    """Whether the weights an open_clip pretrained config points at are already on disk."""
    import os

    hub = cfg.get("hf_hub", "")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - open_clip requires huggingface_hub
            return False
        repo_id, filename = os.path.split(hub)
        candidates = [filename or "open_clip_pytorch_model.bin"]
        if candidates[0] == "open_clip_pytorch_model.bin":
            candidates.insert(0, "open_clip_model.safetensors")
        elif candidates[0].endswith((".bin", ".pth")):
            candidates.insert(0, candidates[0][:-4] + ".safetensors")
        for name in candidates:
            found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(found, str) and os.path.isfile(found):
                return True
        return False
    url = cfg.get("url", "")
    if url:
        root = cache_dir or os.path.expanduser("~/.cache/clip")
        return os.path.isfile(os.path.join(root, os.path.basename(url)))
    return True


def _require_weights_reachable(name: str, tag: str, cache_dir: str | None) -> None:
    """Fail within seconds, not after a minute of download retries, when weights cannot be fetched."""
    import open_clip

    from .data.sources import hub_reachable

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg or "file" in cfg or _weights_cached(cfg, cache_dir):
        return
    url = None if cfg.get("hf_hub") else cfg.get("url")
    if not hub_reachable(url):
        raise ClipgeoError(
            f"could not fetch the {name} '{tag}' weights (no network and not in the cache); download the file on a "
            f"machine with network and pass it as checkpoint=FILE with pretrained='{tag}' (or use pretrained='none')"
        )


def load_model(
    name: str,
    pretrained: str | None = "none",
    *,
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    cache_dir: str | None = None,
) -> LoadedModel:
    """Build an open_clip model with weights from a tag, a local checkpoint, or random init.

    Parameters
    ----------
    name : str
        open_clip architecture (``ViT-B-32``, ``RN50``, … or clipgeo's ``tiny``).
    pretrained : str or None
        open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``…), or
        ``"none"``/None for random initialisation (a warning says so).  With
        a ``checkpoint``, a known tag says which weights the file holds: its
        architecture flags (QuickGELU for OpenAI's models) and preprocessing
        are applied and it is recorded, but nothing is downloaded; an unknown
        tag is ignored.  A tag whose config asks for QuickGELU always gets it
        (open_clip's plain ``ViT-B-32`` config does not).
    checkpoint : path, optional
        Local ``.pt``/``.pth``/``.safetensors`` state dict (e.g. from ``clipgeo train``).
    device : str
        torch device string.
    precision : {"fp32", "fp16", "bf16", "auto"}
        Precision of the *weights* (open_clip casts them; see :mod:`clipgeo.runtime`).
        Extraction and training keep fp32 weights and autocast instead.

    Raises
    ------
    ClipgeoError
        Unknown architecture or tag, weights that cannot be fetched (no network),
        or a checkpoint that does not fit the architecture.
    """
    register_configs()
    import open_clip

    precision = resolve_precision(precision, device)
    if name not in open_clip.list_models():
        raise ClipgeoError(
            f"unknown model {name!r}; use an open_clip architecture (e.g. ViT-B-32, RN50) or 'tiny' "
            "(`python -c 'import open_clip; print(open_clip.list_models())'` lists them)"
        )
    tag = None if pretrained in (None, "", "none", "random") else pretrained
    tag_cfg = open_clip.get_pretrained_cfg(name, tag) if tag is not None else {}
    # Architecture flags and preprocessing that belong to the weights (OpenAI's CLIPs use QuickGELU, which the
    # plain `ViT-B-32` config does not): applied for a tag, and for a checkpoint that names its tag.
    build: dict[str, Any] = {}
    if tag_cfg:
        build["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))
    if checkpoint is not None:
        tag = tag if tag_cfg else None  # an unknown tag beside a checkpoint names nothing: ignored
        if tag_cfg:
            for key, arg in (("mean", "image_mean"), ("std", "image_std"), ("interpolation", "image_interpolation"),
                             ("resize_mode", "image_resize_mode")):
                if tag_cfg.get(key) is not None:
                    build[arg] = tag_cfg[key]
    elif tag is not None:
        known = {t for m, t in open_clip.list_pretrained() if m == name}
        if tag not in known and not Path(tag).is_file():
            raise ClipgeoError(
                f"no pretrained tag {tag!r} for {name}; known tags: {', '.join(sorted(known)) or 'none'} "
                "(or pass pretrained='none', or checkpoint=FILE)"
            )
        if not Path(tag).is_file():
            _require_weights_reachable(name, tag, cache_dir)
    else:
        warnings.warn(f"{name}: random initialisation (no pretrained weights)", stacklevel=2)
    try:
        with _quiet_open_clip_logging():  # its "No pretrained weights loaded" repeats our own warning
            model, preprocess_train, preprocess_val = open_clip.create_model_and_transforms(
                name, pretrained=None if checkpoint is not None else tag, precision=precision, device=device,
                cache_dir=cache_dir, **build,
            )
    except Exception as exc:
        if tag is not None and checkpoint is None and _network_hint(exc):
            raise ClipgeoError(
                f"could not fetch the {name} '{tag}' weights (no network?); download the file on a machine with "
                f"network and pass it as checkpoint=FILE with pretrained='{tag}'"
            ) from None
        raise ClipgeoError(f"could not build {name} ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None
    sha = None
    if checkpoint is not None:
        state = read_state_dict(checkpoint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ClipgeoError(
                f"checkpoint {checkpoint} does not fit architecture {name} ({first[:160]}); load it with the architecture it was trained with"
            ) from None
        sha = file_sha256(checkpoint)
        model.to(device)
    model.eval()
    tokenizer = open_clip.get_tokenizer(name)
    vision = model.visual
    image_size = vision.image_size[0] if isinstance(vision.image_size, (tuple, list)) else int(vision.image_size)
    context_length = int(getattr(model, "context_length", getattr(tokenizer, "context_length", 77)))
    embed_dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None else int(
        open_clip.get_model_config(name)["embed_dim"]
    )
    return LoadedModel(
        model=model,
        preprocess_train=preprocess_train,
        preprocess_val=preprocess_val,
        tokenizer=tokenizer,
        name=name,
        pretrained=tag if tag is not None else ("none" if checkpoint is None else None),
        checkpoint_sha256=sha,
        embed_dim=embed_dim,
        context_length=context_length,
        image_size=int(image_size),
    )
