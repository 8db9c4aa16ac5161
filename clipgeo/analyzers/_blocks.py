"""Row blocks: the analyzers' full-size float64 work without full-size float64 copies.

An analyzer given float32 rows (a store sample) used to widen them to one float64 copy and then make more
(unit rows, centred rows, pair differences).  These helpers take the rows as given (float16/32/64) and widen
one block of :data:`BLOCK_ROWS` rows at a time.  The numbers are the same as on a float64 copy:

- row-wise results (norms, cosines, distances) are computed per row, so blocks do not change them;
- :func:`column_sums` adds the rows in the order ``numpy.sum(x, axis=0)`` does (one row after the other,
  each block appended to the running sum), so column sums, means and variances are bitwise those of
  ``x.astype(np.float64).sum(axis=0)``, ``.mean(axis=0)`` and ``.var(axis=0, ddof=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .. import validation
from ..validation import check_embeddings, to_numpy

#: rows widened to float64 at a time (8192 × 512 float64 = 32 MiB)
BLOCK_ROWS = validation.BLOCK_ROWS

_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def float_rows(
    X: object,
    name: str = "X",
    *,
    min_rows: int = 1,
    dim: int | None = None,
    dim_source: str | None = None,
    warn_unit: bool = False,
) -> np.ndarray:
    """:func:`~clipgeo.validation.check_embeddings` keeping float16/32/64 rows as given (no float64 copy).

    Other numeric input (ints, bools) becomes float64, as ``check_embeddings`` makes it.  With
    ``warn_unit`` the unit-norm test runs block by block (the same test, without widening all rows).
    """
    arr = to_numpy(X)
    dtype = None if np.issubdtype(arr.dtype, np.floating) else np.float64
    return check_embeddings(arr, name, min_rows=min_rows, dim=dim, dim_source=dim_source, dtype=dtype,
                            warn_unit=warn_unit)


def float_pair(
    image: object,
    text: object,
    *,
    paired: bool = False,
    min_rows: int = 2,
    names: tuple[str, str] = ("img", "txt"),
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~clipgeo.validation.check_pair` keeping float rows as given (see :func:`float_rows`)."""
    from ..validation import check_pair

    first, second = names
    a = float_rows(image, first, min_rows=min_rows)
    b = float_rows(text, second, min_rows=min_rows, dim=a.shape[1], dim_source="the other modality")
    if paired and len(a) != len(b):
        check_pair(a, b, paired=True, min_rows=min_rows, names=names)  # raises the one-line error
    return a, b


def row_blocks(n: int, size: int | None = None) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` (default :data:`BLOCK_ROWS`) rows covering ``range(n)``."""
    size = size or BLOCK_ROWS
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def rows64(x: np.ndarray, rows: slice | np.ndarray | None = None) -> np.ndarray:
    """``x[rows]`` as float64 (a copy only when ``x`` is not float64 or ``rows`` is an index array)."""
    block = x if rows is None else x[rows]
    return np.asarray(block, dtype=np.float64)


def index_blocks(x: np.ndarray, rows: np.ndarray | None) -> Iterator[slice | np.ndarray]:
    """Blocks of at most :data:`BLOCK_ROWS` rows of ``x[rows]`` (all rows when None): slices or index arrays."""
    if rows is None:
        yield from row_blocks(len(x))
    else:
        for sl in row_blocks(len(rows)):
            yield rows[sl]


def column_sums(
    x: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Column sums of ``fn(x[rows])`` in float64, block by block, bitwise equal to one ``sum(axis=0)``.

    Parameters
    ----------
    x : ndarray of shape (n, d)
    fn : callable, optional
        Maps a float64 block (k, d) to a float64 block (k, d'); default the block itself.
    rows : int ndarray, optional
        The rows to sum (default all), in this order.

    Returns
    -------
    ndarray of shape (d',)

    Notes
    -----
    ``numpy.sum(axis=0)`` of a C-ordered array adds row after row into a running sum; here each block is
    written below the running sum of the blocks before it and reduced the same way, so the additions
    happen in the same order.
    """
    total = None
    buf = None
    for sel in index_blocks(x, rows):
        block = rows64(x, sel)
        if fn is not None:
            block = fn(block)
        if total is None:
            total = block.sum(axis=0)
            continue
        k = len(block)
        if buf is None:
            buf = np.empty((BLOCK_ROWS + 1, block.shape[1]))
        buf[0] = total
        buf[1 : k + 1] = block
        total = buf[: k + 1].sum(axis=0)
    if total is None:
        width = x.shape[1] if fn is None else fn(np.zeros((0, x.shape[1]))).shape[1]
        return np.zeros(width)
    return total


def column_mean(x: np.ndarray, *, rows: np.ndarray | None = None) -> np.ndarray:
    """``x[rows].astype(np.float64).mean(axis=0)`` without the copy (bitwise the same)."""
    n = len(x) if rows is None else len(rows)
    return column_sums(x, rows=rows) / n


def column_var(
    x: np.ndarray, ddof: int = 0, *, mean: np.ndarray | None = None, rows: np.ndarray | None = None
) -> np.ndarray:
    """``x[rows].astype(np.float64).var(axis=0, ddof=ddof)`` without the copy (bitwise the same).

    ``mean`` is :func:`column_mean` of the same rows when already known.
    """
    n = len(x) if rows is None else len(rows)
    m = column_mean(x, rows=rows) if mean is None else mean

    def squares(block: np.ndarray) -> np.ndarray:
        block = block - m
        return np.multiply(block, block, out=block)

    return column_sums(x, squares, rows=rows) / max(n - ddof, 0)


def row_values(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], *, rows: np.ndarray | None = None) -> np.ndarray:
    """``fn`` of every float64 block of ``x[rows]``, each giving one value per row, joined: shape (len(rows),)."""
    n = len(x) if rows is None else len(rows)
    out = np.empty(n)
    start = 0
    for sel in index_blocks(x, rows):
        value = fn(rows64(x, sel))
        out[start : start + len(value)] = value
        start += len(value)
    return out


def row_norms(x: np.ndarray, center: np.ndarray | None = None, *, rows: np.ndarray | None = None) -> np.ndarray:
    """``||x_i - center||`` (or ``||x_i||``) of every row, in float64, as ``np.linalg.norm(..., axis=1)``."""
    if center is None:
        return row_values(x, lambda b: np.linalg.norm(b, axis=1), rows=rows)
    return row_values(x, lambda b: np.linalg.norm(b - center, axis=1), rows=rows)


def row_groups(x: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Groups of equal rows of ``x[rows]``, numbered in order of first appearance.

    The same grouping as ``np.unique(x[rows], axis=0, return_index=True, return_inverse=True)`` renumbered
    by first appearance, without sorting a copy of every row: rows are hashed block by block, and only
    rows whose hash is shared are compared with ``np.unique``.

    Returns
    -------
    group : ndarray of int64, shape (n,)
        Group of each row (0 for the first row's group, 1 for the next new row, ...).
    first : ndarray of int64, shape (n_groups,)
        Position (in ``rows``) of the first row of each group, ascending.
    """
    index = np.arange(len(x)) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(index)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    width = _UINT[x.dtype.itemsize]
    weights = np.random.default_rng(0x5EED).integers(1, 2**63, size=x.shape[1], dtype=np.uint64) * 2 + 1
    hashes = np.empty(n, dtype=np.uint64)
    for sl in row_blocks(n):
        block = np.ascontiguousarray(x[index[sl]]) + x.dtype.type(0)  # -0.0 -> 0.0: np.unique calls them equal
        bits = block.view(width).astype(np.uint64)
        bits *= weights
        hashes[sl] = bits.sum(axis=1, dtype=np.uint64)
    _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    rep = np.arange(n)  # position of the first equal row
    clash = np.flatnonzero(counts[inverse.reshape(-1)] > 1)
    if len(clash):
        _, first, inv = np.unique(x[index[clash]], axis=0, return_index=True, return_inverse=True)
        rep[clash] = clash[first[inv.reshape(-1)]]
    first, group = np.unique(rep, return_inverse=True)
    return group.reshape(-1).astype(np.int64), first.astype(np.int64)
