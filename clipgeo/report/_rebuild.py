"""Rebuilding analyzer result objects from what a report directory holds (JSON summaries, table columns).

Shared by every reader of the format (:mod:`._read` and the readers of further sections); imports no reader.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def _build(cls: type, summary: dict[str, Any] | None, **arrays: Any) -> Any:
    """An analyzer result of type ``cls`` from its JSON summary plus the arrays read from the tables.

    Fields found in neither are set to None (array fields: an empty array).
    """
    summary = summary or {}
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in arrays:
            kwargs[f.name] = arrays[f.name]
        elif f.name in summary:
            value = summary[f.name]
            kwargs[f.name] = np.asarray(value, dtype=np.float64) if isinstance(value, list) else value
        elif f.name in getattr(cls, "_arrays", ()):
            kwargs[f.name] = np.empty(0)
        elif f.default is not dataclasses.MISSING:
            kwargs[f.name] = f.default
        else:
            kwargs[f.name] = None
    return cls(**kwargs)


def _column(frame: Any, name: str, dtype: type = np.float64) -> np.ndarray | None:
    if frame is None or name not in frame:
        return None
    return frame[name].to_numpy(dtype=dtype)


def _nan_list(values: Any) -> np.ndarray:
    """A JSON list (None for non-finite values) as a float64 array with nan."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
