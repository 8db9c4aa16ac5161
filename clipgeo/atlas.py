"""Every embedding as one row of a Parquet table for Apple's Embedding Atlas (``clipgeo atlas``).

Embedding Atlas opens a table of points -- text, images, 2-D coordinates, nearest neighbours -- in the browser
and handles millions of rows, but knows nothing of modality gaps, shells or conformity.  :func:`atlas_table`
writes one row per image and per caption with the per-row quantities of the analyzers beside them, so that a
point can be coloured, filtered and searched by its conformity or its Mahalanobis distance:

==========================  ==============================================================================
column                      what
==========================  ==============================================================================
``modality``                ``image`` or ``text``
``row``, ``id``             the row within its modality, the store's id
``text``                    the caption (image rows: their first caption)
``image``                   the image's path as the store records it (text rows: their image's)
``partner``                 table row of the matched image (text rows) / of the first caption (image rows), -1
``norm``                    ``||x||`` of the raw row (SPEC §3)
``centered_norm``           ``||x - m||``, ``m`` the modality's mean (SPEC §3)
``mahalanobis``             held-out Ledoit–Wolf Mahalanobis distance (SPEC §4, 5-fold cross-fit)
``conformity``              exact conformity ``1/(N-1) Σ_{k≠j} cos(x_j, x_k)`` within the modality (SPEC §7)
``conformity_estimate_raw``   ``cos(x_j, raw mean)``
``conformity_estimate_unit``  ``cos(x_j, mean of the unit rows)``
``feature_<k>``             raw value of the k-th feature (0-based), for the most separating features (SPEC §2)
``x``, ``y``                the joint 2-D PCA of both modalities (SPEC §10)
``umap_x``, ``umap_y``      a 2-D UMAP (cosine) of all rows, when ``umap-learn`` is installed
``thumbnail``               PNG bytes of the image (image rows, when the paths can be read), shown by Atlas
``neighbors``               ``{"ids": [...], "distances": [...]}``: the k nearest rows by cosine distance
                            (``1 - cos``) over both modalities, the row itself first; ids are table rows
==========================  ==============================================================================

With ``analysis=DIR`` (a ``clipgeo analyze`` output of the same store) the per-row numbers and the feature
ranking are read from its tables; otherwise they are computed here with the same analyzers and defaults.

>>> from clipgeo.atlas import write_atlas, atlas_command
>>> run = write_atlas("stores/trained", "trained.parquet")            # doctest: +SKIP
>>> print(" ".join(atlas_command(run.path)))                           # doctest: +SKIP
embedding-atlas trained.parquet --x x --y y --text text --image image --neighbors neighbors
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["AtlasRun", "atlas_command", "atlas_table", "atlas_installed", "open_atlas", "umap_installed", "write_atlas"]

MODALITIES = ("image", "text")
#: columns every table has, in order (``feature_<k>``, ``umap_x``/``umap_y`` and ``neighbors`` follow)
BASE_COLUMNS = (
    "modality", "row", "id", "text", "image", "partner", "norm", "centered_norm", "mahalanobis", "conformity",
    "conformity_estimate_raw", "conformity_estimate_unit",
)  # fmt: skip
DEFAULT_FEATURES = 5
DEFAULT_NEIGHBORS = 15
#: rows of the cosine block computed at once by the neighbour search
_CHUNK = 2048


def umap_installed() -> bool:
    """Whether the optional ``umap-learn`` is importable (the ``umap_x``/``umap_y`` columns)."""
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def atlas_installed() -> str | None:
    """The ``embedding-atlas`` executable (the ``clipgeo[atlas]`` extra), or None."""
    found = shutil.which("embedding-atlas")
    if found:
        return found
    import sys

    beside = Path(sys.executable).with_name("embedding-atlas")  # the venv's bin/ when not on PATH
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def nearest_neighbors(x: np.ndarray, k: int, *, chunk: int = _CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of smallest cosine distance to each row (itself included, first), by chunked GEMMs.

    Parameters
    ----------
    x : ndarray of shape (n, d)
    k : int
        Neighbours per row, the row itself counted (clipped to n).

    Returns
    -------
    ids : ndarray of int64, shape (n, k)
    distances : ndarray of float32, shape (n, k)
        ``1 - cos``, ascending; ties broken by the lower row id.
    """
    from .validation import unit_rows

    u = unit_rows(np.asarray(x, dtype=np.float64)).astype(np.float32)
    n = len(u)
    k = max(1, min(int(k), n))
    ids = np.empty((n, k), dtype=np.int64)
    dist = np.empty((n, k), dtype=np.float32)
    from ._progress import progress

    for start in progress(range(0, n, chunk), desc="neighbours", unit="block"):
        stop = min(n, start + chunk)
        d = 1.0 - u[start:stop] @ u.T  # (b, n)
        rows = np.arange(stop - start)
        d[rows, np.arange(start, stop)] = -np.inf  # the row itself first, whatever the rounding
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (stop - start, 1))
        vals = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, vals), axis=1)
        ids[start:stop] = np.take_along_axis(part, order, axis=1)
        dist[start:stop] = np.take_along_axis(vals, order, axis=1)
        dist[start:stop, 0] = 0.0
    np.clip(dist, 0.0, 2.0, out=dist)
    return ids, dist


def _analysis_rows(analysis: Path, es: Any) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray | None]:
    """Per-row columns of a ``clipgeo analyze`` directory of the same store, and its feature ranking."""
    import pandas as pd

    from .report import _names as n
    from .report._html import check_analysis_dir

    data = check_analysis_dir(analysis)
    meta = (data.get("provenance") or {}).get("store") or {}
    counts = {"image": es.n_image, "text": es.n_text}
    for m, count in counts.items():
        if int(data.get(f"n_{m}", -1)) != count:
            raise InputError(
                f"analysis={str(analysis)!r} has {data.get(f'n_{m}')} {m} rows but the store has {count}; "
                "give the analysis of this store (or none, and the columns are computed)"
            )
    if int(data.get("dim", -1)) != es.dim or (meta.get("model_id") and meta.get("model_id") != es.meta.model_id):
        raise InputError(
            f"analysis={str(analysis)!r} is of {meta.get('model_id')} (d = {data.get('dim')}), the store of "
            f"{es.meta.model_id} (d = {es.dim}); give the analysis of this store"
        )
    wanted = {
        "norm": n.NORM, "centered_norm": n.CENTERED_NORM, "mahalanobis": n.MAHALANOBIS, "conformity": n.CONFORMITY,
        "conformity_estimate_raw": n.CONFORMITY_ESTIMATE, "conformity_estimate_unit": n.CONFORMITY_UNIT_ESTIMATE,
        "x": n.pc_column(0), "y": n.pc_column(1),
    }  # fmt: skip
    out: dict[str, dict[str, np.ndarray]] = {}
    for m, count in counts.items():
        path = analysis / n.rows_csv(m)
        if count == 0 or not path.is_file():
            continue
        frame = pd.read_csv(path, usecols=lambda c: c in wanted.values())
        out[m] = {col: frame[src].to_numpy(np.float64) for col, src in wanted.items() if src in frame}
    ranking = None
    features = analysis / n.FEATURES_CSV
    if features.is_file():
        frame = pd.read_csv(features, usecols=lambda c: c in (n.FEATURE, n.RANK))
        if n.RANK in frame and frame[n.RANK].notna().all():
            ranking = frame.sort_values([n.RANK, n.FEATURE])[n.FEATURE].to_numpy(np.int64)
    return out, ranking


def _computed_rows(es: Any, seed: int) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray | None]:
    """Per-row columns computed with the analyzers (the defaults of ``clipgeo analyze``)."""
    import warnings

    from . import analyzers as az
    from .report import AnalyzeConfig

    cfg = AnalyzeConfig()
    out: dict[str, dict[str, np.ndarray]] = {}
    arrays = {m: np.asarray(getattr(es, m), dtype=np.float64) for m in MODALITIES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", az.UnitNormWarning)
        for m, x in arrays.items():
            if len(x) < 2:
                continue
            shell = az.thin_shell(x)
            maha = az.mahalanobis_shell(x, seed=seed)
            conf = az.conformity(x, "exact", max_rows=cfg.max_rows_conformity)
            out[m] = {
                "norm": shell.norms, "centered_norm": shell.centered_norms, "mahalanobis": maha.distances,
                "conformity": conf.values, "conformity_estimate_raw": conf.estimate,
                "conformity_estimate_unit": conf.unit_estimate,
            }  # fmt: skip
        img, txt = arrays["image"], arrays["text"]
        pca = az.pca_projection(img if len(img) else None, txt if len(txt) else None)
        for m in MODALITIES:
            coords = getattr(pca, m)
            if m in out and len(coords) == len(arrays[m]):
                out[m]["x"], out[m]["y"] = coords[:, 0], coords[:, 1]
        ranking = None
        if len(img) >= 2 and len(txt) >= 2:
            ranking = az.feature_separability(img, txt, linear_cv=False, seed=seed).ranking
    return out, ranking


def atlas_table(
    store: str | os.PathLike,
    analysis: str | os.PathLike | None = None,
    *,
    n_features: int = DEFAULT_FEATURES,
    neighbors: int = DEFAULT_NEIGHBORS,
    umap: bool | None = None,
    seed: int = 0,
    allow_incomplete: bool = False,
    thumbnails: int | None = None,
    image_root: str | os.PathLike | None = None,
) -> Any:
    """One row per embedding of ``store``, with the analyzers' per-row numbers (see the module docstring).

    Parameters
    ----------
    store : path
        A store directory.
    analysis : path, optional
        A ``clipgeo analyze`` output of the same store: its per-row tables are used instead of recomputing.
    n_features : int
        How many of the most separating features get a ``feature_<k>`` column (0: none).
    neighbors : int
        Nearest neighbours per row in ``neighbors``, the row itself included (0: no column).
    umap : bool, optional
        Add ``umap_x``/``umap_y`` (None: when ``umap-learn`` is installed; True without it is an error).
    seed : int
        Seed of the Mahalanobis folds and the UMAP.
    allow_incomplete : bool
        Read the finished shards of an unfinished store.
    thumbnails : int, optional
        Add a ``thumbnail`` column of PNG bytes at most this many pixels a side for the image rows (Embedding
        Atlas shows them); 0: none; None: 96 when the first image paths can be read.
    image_root : path, optional
        Folder that relative image paths are relative to (default: the folders the store's ``source`` names,
        then the working directory).

    Returns
    -------
    pandas.DataFrame
        ``n_image + n_text`` rows: image rows first, then text rows, each in store order.
    """
    import pandas as pd

    from .store import read_store
    from .validation import check_count

    n_features = check_count(n_features, "n_features", minimum=0)
    neighbors = check_count(neighbors, "neighbors", minimum=0)
    if umap and not umap_installed():
        raise InputError("umap=True needs umap-learn; pip install 'clipgeo[atlas]' (or umap-learn), or pass umap=False")
    es = read_store(store, allow_incomplete=allow_incomplete)
    if es.n_image + es.n_text == 0:
        raise InputError(f"store {store} has no rows; nothing to explore")
    if analysis is not None:
        per_row, ranking = _analysis_rows(Path(analysis), es)
    else:
        per_row, ranking = _computed_rows(es, seed)

    n_img, n_txt = es.n_image, es.n_text
    link = np.asarray(es.text_image_index, dtype=np.int64)
    first_caption = np.full(n_img, -1, dtype=np.int64)
    paired = np.flatnonzero(link >= 0)
    if len(paired):
        # the first caption of each image: reversed assignment leaves the lowest text row
        first_caption[link[paired][::-1]] = paired[::-1]
    captions = np.asarray(es.captions, dtype=object) if len(es.captions) else np.full(n_txt, "", dtype=object)
    paths = np.asarray(es.image_paths, dtype=object) if len(es.image_paths) else np.full(n_img, "", dtype=object)

    image_text = np.where(first_caption >= 0, captions[np.maximum(first_caption, 0)] if n_txt else "", "")
    text_image = np.where(link >= 0, paths[np.maximum(link, 0)] if n_img else "", "")
    frame = pd.DataFrame(
        {
            "modality": np.array(["image"] * n_img + ["text"] * n_txt, dtype=object),
            "row": np.concatenate([np.arange(n_img), np.arange(n_txt)]).astype(np.int64),
            "id": np.concatenate([np.asarray(es.image_ids, dtype=object), np.asarray(es.text_ids, dtype=object)]),
            "text": np.concatenate([image_text.astype(object), captions.astype(object)]),
            "image": np.concatenate([paths.astype(object), text_image.astype(object)]),
            "partner": np.concatenate(
                [np.where(first_caption >= 0, first_caption + n_img, -1), np.where(link >= 0, link, -1)]
            ),
        }
    )
    frame["text"] = frame["text"].fillna("").astype(str)
    frame["image"] = frame["image"].fillna("").astype(str)
    frame["id"] = frame["id"].astype(str)
    counts = {"image": n_img, "text": n_txt}
    for column in (*BASE_COLUMNS[6:], "x", "y"):
        parts = []
        for m in MODALITIES:
            values = per_row.get(m, {}).get(column)
            parts.append(values if values is not None and len(values) == counts[m] else np.full(counts[m], np.nan))
        frame[column] = np.concatenate(parts).astype(np.float64)

    x_all = np.concatenate([np.asarray(es.image, dtype=np.float32), np.asarray(es.text, dtype=np.float32)])
    if ranking is not None and n_features:
        for k in [int(k) for k in ranking[:n_features]]:
            frame[f"feature_{k}"] = x_all[:, k].astype(np.float64)
    if umap is None:
        umap = umap_installed() and len(frame) >= 4
    if umap:
        if len(frame) < 4:
            raise InputError(f"UMAP needs at least 4 rows, the store has {len(frame)}; pass umap=False")
        import umap as umap_learn  # the optional extra

        reducer = umap_learn.UMAP(  # seeded: one thread (n_jobs=1 says so, without umap's warning)
            n_components=2, metric="cosine", random_state=seed, n_jobs=1, n_neighbors=min(15, len(frame) - 1)
        )
        coords = reducer.fit_transform(x_all)
        frame["umap_x"], frame["umap_y"] = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
    if neighbors:
        ids, dist = nearest_neighbors(x_all, neighbors)
        frame["neighbors"] = [{"ids": i.tolist(), "distances": d.tolist()} for i, d in zip(ids, dist, strict=True)]
    if thumbnails is None or thumbnails:
        thumbs = _thumbnails(paths, _image_dirs(es.meta.source, image_root), thumbnails)
        if thumbs is not None:
            frame["thumbnail"] = pd.Series([*thumbs, *([None] * n_txt)], dtype=object)
    return frame


def _image_dirs(source: str, image_root: str | os.PathLike | None) -> list[Path]:
    """Where a relative image path may live: ``image_root``, the folders the store's ``source`` names."""
    import re

    dirs = [Path(image_root)] if image_root is not None else []
    for token in re.split(r"[:,;=\s]+", str(source or "")):
        if token and Path(token).is_dir() and Path(token) not in dirs:
            dirs.append(Path(token))
    return dirs


def _thumbnails(paths: np.ndarray, dirs: list[Path], size: int | None) -> list[bytes | None] | None:
    """PNG thumbnails of the image rows (None for an unreadable one); None when ``size`` is None and the
    first paths cannot be read (no column then)."""
    import io

    from PIL import Image

    from ._progress import progress

    def find(path: str) -> Path | None:
        if not path:
            return None
        return next((c for c in [Path(path), *(d / path for d in dirs)] if c.is_file()), None)

    if size is None:
        if not any(find(str(p)) for p in paths[:8]):
            return None
        size = 96
    out: list[bytes | None] = []
    for path in progress(paths, desc="thumbnails", unit="img"):
        found = find(str(path))
        if found is None:
            out.append(None)
            continue
        try:
            with Image.open(found) as img:
                img = img.convert("RGB")
                img.thumbnail((size, size))
                buffer = io.BytesIO()
                img.save(buffer, format="PNG", optimize=True)
            out.append(buffer.getvalue())
        except (OSError, ValueError):  # not an image: no thumbnail for that row
            out.append(None)
    return out


def atlas_command(
    path: str | os.PathLike, *, columns: Any = None, host: str | None = None, port: int | None = None
) -> list[str]:
    """The ``embedding-atlas`` command line that opens the table at ``path`` with its coordinates and neighbours."""
    cols = set(columns) if columns is not None else None
    image = "thumbnail" if cols is not None and "thumbnail" in cols else "image"
    cmd = ["embedding-atlas", os.fspath(path), "--x", "x", "--y", "y", "--text", "text", "--image", image]
    if cols is None or "neighbors" in cols:
        cmd += ["--neighbors", "neighbors"]
    if host is not None:
        cmd += ["--host", host]
    if port is not None:
        cmd += ["--port", str(port)]
    return cmd


@dataclass
class AtlasRun:
    """What :func:`write_atlas` wrote."""

    path: Path
    rows: int
    columns: list[str] = field(default_factory=list)

    @property
    def command(self) -> list[str]:
        return atlas_command(self.path, columns=self.columns)

    def command_line(self) -> str:
        return shlex.join(self.command)


def write_atlas(
    store: str | os.PathLike, out: str | os.PathLike, analysis: str | os.PathLike | None = None, **options: Any
) -> AtlasRun:
    """:func:`atlas_table` of ``store`` written atomically to the Parquet file ``out`` (provenance in its metadata).

    Raises
    ------
    InputError
        ``out`` is a directory or not a ``.parquet`` file name; the store or analysis is unusable.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._io import atomic_path, to_jsonable
    from .provenance import provenance

    target = Path(out)
    if target.is_dir():
        raise InputError(f"out={str(target)!r} is a directory; give a file name such as {target / 'atlas.parquet'}")
    if target.suffix.lower() != ".parquet":
        raise InputError(f"out={str(target)!r} must end in .parquet (Embedding Atlas reads Parquet tables)")
    frame = atlas_table(store, analysis, **options)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    record = provenance(
        {"store": os.fspath(store), "analysis": None if analysis is None else os.fspath(analysis), **options}
    )
    meta = dict(table.schema.metadata or {})
    meta[b"clipgeo"] = json.dumps(to_jsonable(record)).encode("utf-8")
    table = table.replace_schema_metadata(meta)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)
    return AtlasRun(path=target, rows=len(frame), columns=list(frame.columns))


def open_atlas(
    path: str | os.PathLike, *, host: str = "127.0.0.1", port: int | None = None, columns: Any = None, **popen: Any
) -> subprocess.Popen:
    """Start ``embedding-atlas`` on the table (it serves until stopped); returns the process.

    Raises
    ------
    InputError
        ``embedding-atlas`` is not installed (``pip install 'clipgeo[atlas]'``).
    """
    exe = atlas_installed()
    if exe is None:
        raise InputError(
            "embedding-atlas is not installed; pip install 'clipgeo[atlas]', or run: "
            + shlex.join(atlas_command(path, columns=columns))
        )
    cmd = [exe, *atlas_command(path, columns=columns, host=host, port=port)[1:]]
    return subprocess.Popen(cmd, **popen)
