"""Reading embedding files in row chunks, so that an import never holds a whole matrix.

:func:`open_matrix` looks at a file spec (``PATH`` or ``PATH:KEY``, as :func:`clipgeo.store.load_matrix`)
and returns a :class:`MatrixSource`: its shape and dtype from the header alone, and
:meth:`MatrixSource.chunks` to read it ``rows`` at a time:

========== ===========================================================================================
``.npy``   header parsed, rows read with ``readinto`` at their offset (C order; a Fortran-order file
           is memory-mapped); ``FILE:i`` slices a 3-D array without reading the other slices
``.npz``   the member's ``.npy`` header, then its bytes streamed out of the zip (stored or deflated)
``.pt``    ``torch.load(mmap=True)``: the tensor's storage stays on disk, chunks are copied out
``.parquet`` ``iter_batches`` of the vector column (or of the numeric columns)
``.csv``   ``pandas.read_csv(chunksize=...)``
========== ===========================================================================================
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._formats import MATRIX_FORMATS, split_spec


@dataclass
class MatrixSource:
    """An (n, d) matrix on disk (or in memory) read in row chunks.

    Attributes
    ----------
    what : str
        Where it comes from, for messages (``"image embeddings in a.npy"``).
    shape : tuple of int
    dtype : numpy dtype
    """

    what: str
    shape: tuple[int, int]
    dtype: np.dtype
    _read: Callable[[int], Iterator[np.ndarray]]

    def chunks(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, block)`` with ``block`` of shape (<= rows, d), in row order."""
        start = 0
        for block in self._read(int(rows)):
            yield start, block
            start += len(block)
        if start != self.shape[0]:
            raise InputError(f"{self.what} ended after {start} of {self.shape[0]} rows; the file is truncated")


def array_source(x: np.ndarray, what: str) -> MatrixSource:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise InputError(f"{what} is {arr.ndim}-D with shape {arr.shape}; expected a 2-D array (rows × dim)")

    def read(rows: int) -> Iterator[np.ndarray]:
        for s in range(0, len(arr), rows):
            yield arr[s:s + rows]

    return MatrixSource(what, arr.shape, arr.dtype, read)


def _shape2(shape: tuple[int, ...], key: str | None, path: Path, what: str) -> tuple[tuple[int, int], int]:
    """(rows, dim) of the matrix a spec names, and the index of the slice (-1 for none)."""
    if key is not None:
        try:
            i = int(key)
        except ValueError:
            raise InputError(f"{path}:{key}: an array file takes an integer slice key (e.g. {path}:0)") from None
        if len(shape) < 2 or not -shape[0] <= i < shape[0]:
            raise InputError(f"{path}:{key}: slice {i} is out of range for shape {shape}")
        shape, index = shape[1:], i % shape[0]
    else:
        index = -1
    if len(shape) != 2:
        hint = "select one slice with FILE:0 (or FILE:key)" if len(shape) == 3 else "reshape it to (rows, dim)"
        raise InputError(f"{what} is {len(shape)}-D with shape {tuple(shape)}; expected a 2-D array (rows × dim): {hint}")
    return (int(shape[0]), int(shape[1])), index


def _npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    return np.lib.format.read_array_header_2_0(handle)


def _stream_rows(handle, dtype: np.dtype, d: int, n: int, rows: int) -> Iterator[np.ndarray]:
    """Read n rows of d values from a binary stream positioned at the first one."""
    row_bytes = d * dtype.itemsize
    done = 0
    while done < n:
        k = min(rows, n - done)
        block = np.empty((k, d), dtype=dtype)
        view = memoryview(block).cast("B")
        got = 0
        while got < k * row_bytes:
            read = handle.readinto(view[got:])
            if not read:
                return  # truncated: chunks() says so
            got += read
        yield block
        done += k


def _npy(path: Path, key: str | None, what: str) -> MatrixSource:
    with open(path, "rb") as handle:
        shape, fortran, dtype = _npy_header(handle)
        offset = handle.tell()
    if dtype.hasobject:
        raise InputError(f"{what} holds Python objects; save a numeric array")
    (n, d), index = _shape2(shape, key, path, what)
    if fortran:  # rare: columns are contiguous, so read through a memory map
        arr = np.load(path, mmap_mode="r")
        arr = arr[index] if index >= 0 else arr

        def read_f(rows: int) -> Iterator[np.ndarray]:
            for s in range(0, n, rows):
                yield np.ascontiguousarray(arr[s:s + rows])

        return MatrixSource(what, (n, d), dtype, read_f)

    start = offset + (index * n * d * dtype.itemsize if index >= 0 else 0)

    def read(rows: int) -> Iterator[np.ndarray]:
        with open(path, "rb", buffering=0) as handle:
            handle.seek(start)
            yield from _stream_rows(handle, dtype, d, n, rows)

    return MatrixSource(what, (n, d), dtype, read)


def _npz(path: Path, key: str | None, what: str) -> MatrixSource:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InputError(f"{path} is not a readable .npz archive; save it with numpy.savez") from None
    with archive:
        names = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
        if key is None:
            if len(names) != 1:
                raise InputError(f"{path} holds arrays {names}; choose one with {path}:KEY")
            key = names[0]
        if key not in names:
            raise InputError(f"{path} has no array {key!r}; it holds {names}")
        with archive.open(key + ".npy") as member:
            shape, fortran, dtype = _npy_header(member)
    (n, d), _ = _shape2(shape, None, path, what)
    if fortran:
        raise InputError(f"{path}:{key} is stored in Fortran order; save it with numpy.ascontiguousarray first")

    def read(rows: int) -> Iterator[np.ndarray]:
        with zipfile.ZipFile(path) as zf, zf.open(key + ".npy") as member:
            _npy_header(member)
            yield from _stream_rows(member, dtype, d, n, rows)

    return MatrixSource(what, (n, d), dtype, read)


def _torch(path: Path, key: str | None, what: str) -> MatrixSource:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        raise InputError(f"reading {path} needs torch; pip install torch") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise InputError(f"{path} is not a loadable torch file ({type(exc).__name__}); save a tensor with torch.save") from None
    if isinstance(obj, dict):
        tensors = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
        if key is None and len(tensors) != 1:
            raise InputError(f"{path} holds tensors {tensors}; choose one with {path}:KEY")
        name = key if key is not None else tensors[0]
        if name not in tensors:
            raise InputError(f"{path} has no tensor {name!r}; it holds {tensors}")
        tensor, key = obj[name], None
    elif isinstance(obj, torch.Tensor):
        tensor = obj
    else:
        raise InputError(f"{path} holds a {type(obj).__name__}, not a tensor; save a tensor with torch.save")
    (n, d), index = _shape2(tuple(tensor.shape), key, path, what)
    tensor = tensor.detach()
    if index >= 0:
        tensor = tensor[index]
    bf16 = tensor.dtype == torch.bfloat16
    dtype = np.dtype(np.float32) if bf16 else torch.empty(0, dtype=tensor.dtype).numpy().dtype

    def read(rows: int) -> Iterator[np.ndarray]:
        for s in range(0, n, rows):
            block = tensor[s:s + rows]
            yield (block.float() if bf16 else block).contiguous().numpy().copy()

    return MatrixSource(what, (n, d), dtype, read)


def _parquet(path: Path, key: str | None, what: str) -> MatrixSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} could not be read as parquet ({str(exc).splitlines()[0]})") from None
    schema = handle.schema_arrow
    vectors = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)
               or pa.types.is_large_list(f.type)]
    numeric = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    n = handle.metadata.num_rows
    if key is not None:
        if key not in schema.names:
            raise InputError(f"{path} has no column {key!r}; columns are {schema.names[:8]}")
        columns, vector = [key], key in vectors
    elif vectors:
        if len(vectors) > 1 and "embedding" not in vectors:
            raise InputError(f"{path} has several vector columns {vectors}; choose one with {path}:COLUMN")
        columns, vector = ["embedding" if "embedding" in vectors else vectors[0]], True
    elif numeric:
        columns, vector = numeric, False
    else:
        raise InputError(f"{path} has no numeric columns; expected one column per embedding dimension or a vector column")

    def block_of(batch) -> np.ndarray:
        if not vector:
            return np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in columns])
        col = batch.column(columns[0])
        if col.null_count:
            raise InputError(f"{what} has empty (null) vectors; drop those rows")
        flat = col.flatten().to_numpy(zero_copy_only=False)
        k = len(col)
        if k and len(flat) % k:
            raise InputError(f"{what}: the vectors of column {columns[0]!r} have different lengths; all must have dim values")
        return flat.reshape(k, len(flat) // k if k else 0)

    first = next(handle.iter_batches(batch_size=1, columns=columns), None)
    d = block_of(first).shape[1] if first is not None else 0
    dtype = block_of(first).dtype if first is not None else np.dtype(np.float32)

    def read(rows: int) -> Iterator[np.ndarray]:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns):
            block = block_of(batch)
            if block.shape[1] != d:
                raise InputError(f"{what}: rows have {block.shape[1]} values where the first had {d}; all must have dim values")
            yield block

    return MatrixSource(what, (n, d), np.dtype(dtype), read)


def _csv(path: Path, key: str | None, what: str) -> MatrixSource:
    import pandas as pd

    head = pd.read_csv(path, nrows=2)
    numeric = list(head.select_dtypes("number").columns) if key is None else [key]
    if key is not None and key not in head.columns:
        raise InputError(f"{path} has no column {key!r}; columns are {list(head.columns)[:8]}")
    if not numeric:
        raise InputError(f"{path} has no numeric columns; expected one column per embedding dimension")
    with open(path, "rb") as handle:
        n = max(sum(1 for _ in handle) - 1, 0)

    def read(rows: int) -> Iterator[np.ndarray]:
        for frame in pd.read_csv(path, chunksize=rows, usecols=numeric):
            yield frame.to_numpy(dtype=np.float64)

    return MatrixSource(what, (n, len(numeric)), np.dtype(np.float64), read)


def open_matrix(spec: Any, what: str) -> MatrixSource:
    """A :class:`MatrixSource` for an array or a file spec ``PATH[:KEY]`` (.npy .npz .pt .pth .parquet .csv)."""
    if isinstance(spec, np.ndarray):
        return array_source(spec, what)
    path, key = split_spec(spec)
    label = f"{what} in {spec}"
    if not path.exists():
        raise InputError(f"{what} file {path} does not exist; check the path")
    if path.is_dir():
        raise InputError(f"{what} path {path} is a directory; give a file")
    suffix = path.suffix.lower()
    readers = {".npy": _npy, ".npz": _npz, ".pt": _torch, ".pth": _torch, ".parquet": _parquet, ".csv": _csv}
    if suffix not in readers:
        raise InputError(f"unknown format {suffix or '(no extension)'} for {path}; use one of {', '.join(MATRIX_FORMATS)}")
    try:
        return readers[suffix](path, key, label)
    except InputError:
        raise
    except (ValueError, OSError) as exc:
        raise InputError(f"{path} could not be read as {suffix[1:]} ({str(exc).splitlines()[0]})") from None
