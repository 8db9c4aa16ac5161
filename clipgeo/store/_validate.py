"""Checks on embedding arrays at the store boundary."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def _row_list(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (", …" if len(rows) > limit else "")


def check_embeddings(x: object, what: str, *, dim: int | None = None, allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a 2-D floating numpy array, or raise a one-line InputError.

    Checks: numeric, 2-D (rows × dim), at least one row unless ``allow_empty``,
    the expected dimension, and no NaN/inf (the message names how many rows and
    which).  float16/32/64 are kept as they are; other numeric types become
    float32.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{what} has dtype {arr.dtype}; expected numbers (a float array of rows × dim)")
    if arr.ndim != 2:
        hint = (
            "select one slice with FILE:0 (or FILE:key)" if arr.ndim == 3 else "reshape it to (rows, dim), e.g. x.reshape(1, -1)"
        )
        raise InputError(f"{what} is {arr.ndim}-D with shape {arr.shape}; expected a 2-D array (rows × dim): {hint}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    if arr.shape[0] == 0 and not allow_empty:
        raise InputError(f"{what} is empty (0 rows); give at least one embedding row")
    if arr.shape[1] == 0:
        raise InputError(f"{what} has 0 columns; expected rows × dim with dim ≥ 1")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(f"{what} has dimension {arr.shape[1]} but {dim} was expected; all rows must come from one model")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise InputError(
            f"{what} has {len(bad)} row(s) with NaN or inf (rows {_row_list(bad)}); drop or recompute those rows"
        )
    return arr
