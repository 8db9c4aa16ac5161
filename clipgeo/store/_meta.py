"""Store metadata: which model produced the embeddings, and how."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError

STORE_DTYPES = ("float32", "float16")


@dataclass
class StoreMeta:
    """Provenance of one embedding store (one model, one dimension).

    Attributes
    ----------
    model : str
        Architecture name (an open_clip model name, or a user label on import).
    dim : int
        Embedding dimension shared by both modalities.
    pretrained : str or None
        open_clip pretrained tag (``"openai"``, ``"none"`` for random init).
    checkpoint_sha256 : str or None
        SHA-256 of the local checkpoint file the weights came from.
    precision : str or None
        Compute precision of the forward pass (``fp32``, ``fp16``, ``bf16``).
    store_dtype : {"float32", "float16"}
        dtype of the embedding columns on disk.
    normalized : bool
        True when the rows were already L2-normalised when written (raw-space
        analyses such as thin shells are then degenerate).
    source : str
        The data set the rows come from.
    fingerprint : str or None
        Hash of everything that determines the store's content (model, data,
        options).  A resumed write must present the same fingerprint.
    versions, created, command, config
        Library versions, creation time, the command line and the resolved
        configuration (see :func:`clipgeo.provenance.provenance`).
    """

    model: str
    dim: int
    pretrained: str | None = None
    checkpoint_sha256: str | None = None
    precision: str | None = None
    store_dtype: str = "float32"
    normalized: bool = False
    source: str = ""
    fingerprint: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    command: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.store_dtype not in STORE_DTYPES:
            raise StoreError(f"store_dtype={self.store_dtype!r} is not known; use one of {', '.join(STORE_DTYPES)}")
        if int(self.dim) < 1:
            raise StoreError(f"embedding dimension must be positive, got {self.dim}")
        self.dim = int(self.dim)

    @property
    def model_id(self) -> str:
        """One string naming the weights: ``model/pretrained`` or ``model@sha256[:12]``."""
        ident = self.model
        if self.pretrained:
            ident += f"/{self.pretrained}"
        if self.checkpoint_sha256:
            ident += f"@{self.checkpoint_sha256[:12]}"
        return ident

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model_id"] = self.model_id
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
