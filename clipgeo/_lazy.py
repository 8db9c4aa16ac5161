"""Lazy re-exports for packages whose public names live in heavy modules (torch, matplotlib, ...).

A package lists ``{name: relative_module}`` and gets a module ``__getattr__`` / ``__dir__`` that import the
defining module on first use, so ``import clipgeo.train`` stays cheap and torch-free until a name is used.

>>> __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` resolving ``exports`` on first access (then cached)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
