"""Base class of the analyzer results: frozen dataclasses holding numpy arrays."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into Python floats, ints and lists (JSON-able)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value


class Result:
    """Mixin of every analyzer result.

    Subclasses are frozen dataclasses.  :meth:`to_dict` gives the JSON-able
    summary (the scalar fields, plus whatever :meth:`_summary` adds); the array
    fields stay on the object for tables and figures.
    """

    #: array fields that do not belong in the summary dict
    _arrays: tuple[str, ...] = ()

    def _summary(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in self._arrays:
                continue
            out[f.name] = getattr(self, f.name)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The summary as plain Python values (floats, ints, lists, dicts), ready for JSON."""
        return plain(self._summary())

    def to_frame(self):
        """A pandas table: one row per element of the 1-D array fields (the longest ones), or the
        one-row summary when the result holds no such arrays."""
        import pandas as pd

        arrays = {
            name: value
            for name in self._arrays
            if isinstance(value := getattr(self, name), np.ndarray) and value.ndim == 1 and len(value)
        }
        if not arrays:
            return pd.DataFrame([{k: v for k, v in self.to_dict().items() if not isinstance(v, (list, dict))}])
        n = max(len(v) for v in arrays.values())
        return pd.DataFrame({"index": np.arange(n), **{k: v for k, v in arrays.items() if len(v) == n}})

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}"
            for k, v in self.to_dict().items()
            if not isinstance(v, (list, dict))
        )
        return f"{type(self).__name__}({items})"
