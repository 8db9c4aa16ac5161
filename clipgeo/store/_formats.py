"""Loading embeddings, captions and pair maps from files written by other tools.

A file spec is ``PATH`` or ``PATH:KEY``.  KEY picks an array in a ``.npz``, a
tensor in a ``.pt`` dict, a column of a ``.parquet``/``.csv`` file, or (an
integer) one slice of a 3-D array such as ``features.npy:0``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError

MATRIX_FORMATS = (".npy", ".npz", ".pt", ".pth", ".parquet", ".csv")


def split_spec(spec: str | Path) -> tuple[Path, str | None]:
    """``"a/b.npz:key"`` -> (Path("a/b.npz"), "key"); a bare path has key None."""
    text = str(spec)
    path = Path(text)
    if path.exists():
        return path, None
    head, sep, key = text.rpartition(":")
    if sep and head and "/" not in key:
        return Path(head), key
    return path, None


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} file {path} does not exist; check the path")
    if path.is_dir():
        raise InputError(f"{what} path {path} is a directory; give a file")


def _pick_slice(arr: np.ndarray, key: str | None, path: Path) -> np.ndarray:
    if key is None:
        return arr
    try:
        i = int(key)
    except ValueError:
        raise InputError(f"{path}:{key}: an array file takes an integer slice key (e.g. {path}:0)") from None
    if arr.ndim < 2 or not -arr.shape[0] <= i < arr.shape[0]:
        raise InputError(f"{path}:{key}: slice {i} is out of range for shape {arr.shape}")
    return arr[i]


def _from_npz(path: Path, key: str | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        if key is None:
            if len(keys) != 1:
                raise InputError(f"{path} holds arrays {keys}; choose one with {path}:KEY")
            key = keys[0]
        if key not in keys:
            raise InputError(f"{path} has no array {key!r}; it holds {keys}")
        return archive[key]


def _from_torch(path: Path, key: str | None) -> np.ndarray:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        raise InputError(f"reading {path} needs torch; pip install torch") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise InputError(f"{path} is not a loadable torch file ({type(exc).__name__}); save a tensor with torch.save") from None
    if isinstance(obj, dict):
        tensors = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
        if key is None or not key.lstrip("-").isdigit():
            if key is None and len(tensors) != 1:
                raise InputError(f"{path} holds tensors {tensors}; choose one with {path}:KEY")
            name = key if key is not None else tensors[0]
            if name not in tensors:
                raise InputError(f"{path} has no tensor {name!r}; it holds {tensors}")
            return obj[name].detach().float().numpy() if obj[name].dtype == torch.bfloat16 else obj[name].detach().numpy()
        raise InputError(f"{path} holds a dict; choose a tensor by name with {path}:KEY")
    if not isinstance(obj, torch.Tensor):
        raise InputError(f"{path} holds a {type(obj).__name__}, not a tensor; save a tensor with torch.save")
    tensor = obj.detach()
    arr = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    return _pick_slice(arr, key, path)


def _from_table(path: Path, key: str | None) -> np.ndarray:
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:
        raise InputError(f"{path} could not be read as {path.suffix[1:]} ({type(exc).__name__}: {exc})".split("\n")[0]) from None
    if key is not None:
        if key not in frame.columns:
            raise InputError(f"{path} has no column {key!r}; columns are {list(frame.columns)[:8]}")
        column = frame[key]
        if column.dtype == object:  # a list / array column
            return np.stack([np.asarray(v, dtype=np.float64) for v in column]) if len(column) else np.empty((0, 0))
        return column.to_numpy()[:, None]
    list_cols = [c for c in frame.columns if frame[c].dtype == object and len(frame) and hasattr(frame[c].iloc[0], "__len__") and not isinstance(frame[c].iloc[0], str)]
    if list_cols:
        if len(list_cols) > 1 and "embedding" not in list_cols:
            raise InputError(f"{path} has several vector columns {list_cols}; choose one with {path}:COLUMN")
        col = "embedding" if "embedding" in list_cols else list_cols[0]
        return np.stack([np.asarray(v) for v in frame[col]])
    numeric = frame.select_dtypes("number")
    if numeric.shape[1] == 0:
        raise InputError(f"{path} has no numeric columns; expected one column per embedding dimension or a vector column")
    return numeric.to_numpy()


def load_matrix(spec: str | Path, what: str = "embedding") -> np.ndarray:
    """Load an array from ``PATH[:KEY]`` (.npy, .npz, .pt/.pth, .parquet, .csv)."""
    path, key = split_spec(spec)
    _require(path, what)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = _pick_slice(np.load(path, allow_pickle=False), key, path)
        elif suffix == ".npz":
            arr = _from_npz(path, key)
        elif suffix in (".pt", ".pth"):
            arr = _from_torch(path, key)
        elif suffix in (".parquet", ".csv"):
            arr = _from_table(path, key)
        else:
            raise InputError(f"unknown format {suffix or '(no extension)'} for {path}; use one of {', '.join(MATRIX_FORMATS)}")
    except (ValueError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{path} could not be read as {suffix[1:]} ({str(exc).splitlines()[0]})") from None
    return np.asarray(arr)


#: strings read at a time from a captions / image-paths file
STRING_CHUNK = 65536
_TEXT_COLUMNS = ("caption", "text", "description", "path", "file_name")


def _text_column(columns: list[str], is_text, path: Path, key: str | None) -> str:
    """The column of a table file that holds the strings: ``key``, else the first likely text column."""
    if key is None:
        candidates = [c for c in _TEXT_COLUMNS if c in columns]
        candidates += [c for c in columns if is_text(c) and c not in candidates]
        if not candidates:
            raise InputError(f"{path} has no text column; choose one with {path}:COLUMN")
        key = candidates[0]
    if key not in columns:
        raise InputError(f"{path} has no column {key!r}; columns are {list(columns)[:8]}")
    return key


def _string_batches(path: Path, key: str | None, what: str, chunk: int):
    """Lists of strings of a .txt/.json/.jsonl/.csv/.parquet file, in file order, ``chunk`` or so at a time.

    Only a .json list is read whole (JSON has no streaming form); the others are read a chunk at a time.
    """
    suffix = path.suffix.lower()

    def cleaned(values) -> list[str]:
        return ["" if v is None else str(v) for v in values]

    if suffix == ".txt":
        batch: list[str] = []
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                batch.extend(line.splitlines())  # the separators of str.splitlines, one line at a time
                if len(batch) >= chunk:
                    yield batch
                    batch = []
        if batch:
            yield batch
    elif suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict) and key is not None:
            data = data.get(key)
        if not isinstance(data, list):
            raise InputError(f"{path} must hold a JSON list of strings (or {{KEY: [...]}} with {path}:KEY)")
        values = cleaned(d.get(key, "") if isinstance(d, dict) and key else d for d in data)
        for start in range(0, len(values), chunk):
            yield values[start:start + chunk]
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(path)
        schema = handle.schema_arrow
        column = _text_column(schema.names, lambda c: pa.types.is_string(schema.field(c).type)
                              or pa.types.is_large_string(schema.field(c).type), path, key)
        for part in handle.iter_batches(batch_size=chunk, columns=[column]):
            yield cleaned(part.column(0).to_pandas().fillna("").astype(str))
    elif suffix in (".csv", ".jsonl"):
        import pandas as pd

        reader = pd.read_csv(path, chunksize=chunk) if suffix == ".csv" else pd.read_json(path, lines=True, chunksize=chunk)
        column = None
        with reader:
            for frame in reader:
                if column is None:
                    column = _text_column(list(frame.columns), lambda c, f=frame: pd.api.types.is_string_dtype(f[c]), path, key)
                if column not in frame.columns:
                    raise InputError(f"{path} has no column {column!r} after row 1; give a file with one header")
                yield cleaned(frame[column].fillna("").astype(str))
    else:
        raise InputError(f"unknown format {suffix or '(no extension)'} for {what} file {path}; use .txt, .json, .jsonl, .csv or .parquet")


class StringChunks:
    """The strings of a captions / image-paths file (or a list), handed out in row order by :meth:`take`.

    A file is opened once to count its entries (a .parquet file's count is in its footer), so a file with
    the wrong number of entries is refused before anything is written; it is then read again a chunk at a
    time, so memory stays at one chunk whatever the number of rows.
    """

    def __init__(self, spec, what: str, n: int, chunk: int = STRING_CHUNK) -> None:
        self.what, self.n, self.chunk = what, int(n), int(chunk)
        if isinstance(spec, (list, tuple)):
            self.path, self.key = None, None
            self._values = ["" if v is None else str(v) for v in spec]
            if len(self._values) != self.n:
                raise InputError(f"{len(self._values)} {what} for {self.n} rows; give one per row")
        else:
            self.path, self.key = split_spec(spec)
            _require(self.path, what)
            self._values = None
            _check_count(self._count(), self.n, what, self.path)
        self._batches = None
        self._buffer: list[str] = []
        self._given = 0

    def _count(self) -> int:
        if self.path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(self.path).metadata.num_rows
        return sum(len(b) for b in _string_batches(self.path, self.key, self.what, self.chunk))

    def take(self, k: int) -> list[str]:
        """The next ``k`` strings."""
        if self._values is not None:
            out = self._values[self._given:self._given + k]
        else:
            if self._batches is None:
                self._batches = _string_batches(self.path, self.key, self.what, self.chunk)
            while len(self._buffer) < k:
                more = next(self._batches, None)
                if more is None:
                    break
                self._buffer.extend(more)
            out, self._buffer = self._buffer[:k], self._buffer[k:]
        self._given += len(out)
        if len(out) < k:  # the file changed since it was counted
            raise InputError(f"{self.what} file {self.path} ended after {self._given} entries; it changed while it "
                             "was read: import again")
        return out


def _check_count(count: int, n: int, what: str, path: Path) -> None:
    if count != n:
        raise InputError(f"{what} file {path} has {count} entries but there are {n} rows; give one per row")


def load_strings(spec: str | Path, what: str, n: int) -> list[str]:
    """Load ``n`` strings (captions, image paths) from .txt/.json/.jsonl/.csv/.parquet[:COLUMN], all at once
    (:class:`StringChunks` hands them out a chunk at a time)."""
    path, key = split_spec(spec)
    _require(path, what)
    values = [v for batch in _string_batches(path, key, what, STRING_CHUNK) for v in batch]
    _check_count(len(values), n, what, path)
    return values


def load_pairs(spec: str | Path, n_image: int, n_text: int) -> np.ndarray:
    """Text row -> image row map from a pairs file.

    One column: the image row of every text row (``-1`` for text-only rows).
    Two columns: ``(text_row, image_row)`` pairs; text rows not listed are
    text-only.  Returns int64 array of shape (n_text,).
    """
    arr = load_matrix(spec, "pairs")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if not np.issubdtype(arr.dtype, np.number) or (arr.size and not np.all(np.mod(arr, 1) == 0)):
        raise InputError(f"pairs file {spec} must hold integer row numbers")
    arr = arr.astype(np.int64)
    if arr.ndim == 1:
        if len(arr) != n_text:
            raise InputError(f"pairs file {spec} has {len(arr)} entries but there are {n_text} text rows; give one image row per text row (-1 for none)")
        index = arr
    elif arr.ndim == 2 and arr.shape[1] == 2:
        text_rows, image_rows = arr[:, 0], arr[:, 1]
        bad = np.flatnonzero((text_rows < 0) | (text_rows >= n_text))
        if len(bad):
            raise InputError(f"pairs file {spec} row {bad[0]} names text row {text_rows[bad[0]]} but there are only {n_text} text rows (0-based)")
        if len(np.unique(text_rows)) != len(text_rows):
            raise InputError(f"pairs file {spec} lists a text row twice; each text row pairs with at most one image")
        index = np.full(n_text, -1, dtype=np.int64)
        index[text_rows] = image_rows
    else:
        raise InputError(f"pairs file {spec} has shape {arr.shape}; expected (n_text,) or (n_pairs, 2) as (text_row, image_row)")
    bad = np.flatnonzero((index < -1) | (index >= n_image))
    if len(bad):
        raise InputError(
            f"pairs file {spec} pairs text row {bad[0]} with image row {index[bad[0]]}, out of range for {n_image} image rows (0-based)"
        )
    return index
