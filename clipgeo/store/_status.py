"""What a store directory holds, read from its manifest: :func:`status` and :func:`summary`.

The only readers of ``manifest.json`` outside the writer and the reader: code
elsewhere (the extractor's resume, the demo, the figure source) asks these two
instead of parsing the file.  Neither loads an embedding.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ._layout import MANIFEST, MODALITIES
from ._meta import StoreMeta
from ._reader import read_manifest
from ._writer import read_manifest_file

#: the three states of a store directory
STATES = ("complete", "incomplete", "missing")


@dataclass(frozen=True)
class StoreStatus:
    """Whether a directory holds a finished store.

    Attributes
    ----------
    state : {"complete", "incomplete", "missing"}
        ``complete``: finalised, safe to read.  ``incomplete``: a store whose
        writing stopped or is still going (re-run the command that wrote it).
        ``missing``: no store there at all (no directory, or no manifest).
    reason : str
        One line saying why, for messages (empty when complete).
    path : str
    """

    state: str
    reason: str
    path: str

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    @property
    def exists(self) -> bool:
        """A store (finished or not) is there."""
        return self.state != "missing"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def status(path: str | os.PathLike) -> StoreStatus:
    """The state of the store at ``path``: complete, incomplete or missing, with the reason.

    Never raises for a missing or unfinished store; a manifest that is not
    readable raises :class:`~clipgeo.errors.StoreError` (the store is damaged).
    """
    root = Path(path)
    if not root.exists():
        return StoreStatus("missing", f"{root} does not exist", str(root))
    if not root.is_dir():
        return StoreStatus("missing", f"{root} is a file, not a store directory", str(root))
    manifest = read_manifest_file(root)
    if manifest is None:
        return StoreStatus("missing", f"{root} has no {MANIFEST}", str(root))
    if manifest.get("status") != "complete":
        n = len(manifest.get("shards", []))
        return StoreStatus("incomplete", f"writing stopped (or is running) after {n} shard(s)", str(root))
    return StoreStatus("complete", "", str(root))


@dataclass(frozen=True)
class StoreSummary:
    """A store at a glance, from its manifest (no embedding is read).

    Attributes
    ----------
    path : str
    status : {"complete", "incomplete"}
    model, model_id, pretrained, checkpoint_sha256, precision
        As in :class:`~clipgeo.store.StoreMeta` (``model_id`` names the weights).
    dim : int
    store_dtype : {"float32", "float16"}
    normalized : bool
        The rows were L2-normalised before they were written.
    source : str
    rows : dict of str -> int
        Rows per modality (``{"image": n_image, "text": n_text}``).
    shards : dict of str -> int
        Finished shards per modality.
    skipped : dict of str -> dict of str -> int
        Skipped inputs per modality, counted by reason.
    truncated_captions : int
        Text rows whose caption was cut at the tokenizer's context length
        (from the text shards' ``truncated`` column; 0 when there is none).
    world_size : int or None
        Processes that wrote the store (None when not recorded, e.g. an import).
    run : dict
        What the writer recorded when it finished (counts, timings), as it is.
    """

    path: str
    status: str
    model: str
    model_id: str
    pretrained: str | None
    checkpoint_sha256: str | None
    precision: str | None
    dim: int
    store_dtype: str
    normalized: bool
    source: str
    rows: dict[str, int]
    shards: dict[str, int]
    skipped: dict[str, dict[str, int]]
    truncated_captions: int = 0
    world_size: int | None = None
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["complete"] = self.complete
        return out


def _count_truncated(root: Path, entries: list[dict[str, Any]]) -> int:
    import numpy as np
    import pyarrow.parquet as pq

    total = 0
    for entry in entries:
        path = root / entry["file"]
        if not entry["rows"] or "truncated" not in pq.read_schema(path).names:
            continue
        total += int(np.count_nonzero(pq.read_table(path, columns=["truncated"]).column(0).to_numpy()))
    return total


def summary(path: str | os.PathLike) -> StoreSummary:
    """Rows, dimension, model and provenance of the store at ``path``, from its manifest.

    An unfinished store is described too (``status="incomplete"``, the finished
    shards counted).  A missing store raises :class:`~clipgeo.errors.StoreError`;
    see :func:`status` to ask without an exception.
    """
    root = Path(path)
    manifest = read_manifest(root, allow_incomplete=True)
    try:
        meta = StoreMeta.from_dict(manifest["meta"])
        shards = list(manifest.get("shards", []))
    except (KeyError, TypeError) as exc:
        raise StoreError(f"{root / MANIFEST} lacks {exc}; the store is damaged, write it again") from None
    rows: Counter[str] = Counter()
    count: Counter[str] = Counter()
    skipped: dict[str, Counter[str]] = {m: Counter() for m in MODALITIES}
    for entry in shards:
        m = entry["modality"]
        rows[m] += int(entry["rows"])
        count[m] += 1
        for item in entry.get("skipped", []):
            skipped[m][item.get("reason", "unknown")] += 1
    run = dict(manifest.get("summary") or {})
    world = run.get("world_size")
    return StoreSummary(
        path=str(root),
        status="complete" if manifest.get("status") == "complete" else "incomplete",
        model=meta.model,
        model_id=meta.model_id,
        pretrained=meta.pretrained,
        checkpoint_sha256=meta.checkpoint_sha256,
        precision=meta.precision,
        dim=meta.dim,
        store_dtype=meta.store_dtype,
        normalized=meta.normalized,
        source=meta.source,
        rows={m: rows[m] for m in MODALITIES},
        shards={m: count[m] for m in MODALITIES},
        skipped={m: dict(sorted(c.items())) for m, c in skipped.items()},
        truncated_captions=_count_truncated(root, [e for e in shards if e["modality"] == "text"]),
        world_size=None if world is None else int(world),
        run=run,
    )
