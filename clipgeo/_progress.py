"""Progress bars for the long jobs, one way everywhere (tqdm, on stderr).

A bar shows only when stderr is a terminal and the caller is not quiet: piped into a file or run by CI, a
job prints its result lines and no bar.  ``CLIPGEO_PROGRESS=1`` forces bars on (``0`` forces them off),
whatever the terminal; :func:`quiet_scope` (the commands' ``--quiet``) turns them off for a block, and
``show=True/False`` (an explicit ``--progress/--no-progress``) decides for one bar.

>>> from clipgeo._progress import progress
>>> for name in progress(["a", "b"], desc="figures"):     # doctest: +SKIP
...     draw(name)
>>> with progress(total=1000, desc="extract", unit="pair") as bar:   # doctest: +SKIP
...     bar.update(256)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["enabled", "progress", "quiet_scope"]

#: set by :func:`quiet_scope` (the CLI's ``--quiet``): no bar anywhere in the process while it holds
_QUIET = False


def enabled(show: bool | None = None) -> bool:
    """Whether a bar shows: ``show`` when given (an explicit ``--progress/--no-progress``), else not inside
    :func:`quiet_scope` and ``CLIPGEO_PROGRESS`` says so or stderr is a terminal."""
    if show is not None:
        return bool(show)
    if _QUIET:
        return False
    forced = os.environ.get("CLIPGEO_PROGRESS", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    show: bool | None = None,
    leave: bool = False,
) -> Any:
    """A tqdm bar around ``iterable`` (or a manual one with ``total``), disabled unless :func:`enabled`.

    Parameters
    ----------
    iterable : iterable, optional
    total : int, optional
        Steps of a manual bar (``bar.update(n)``); default ``len(iterable)`` when it has one.
    desc, unit : str
        Label and unit shown.
    show : bool, optional
        True: a bar whatever the terminal; False: none; None: :func:`quiet_scope`, ``CLIPGEO_PROGRESS`` and the
        terminal decide.
    leave : bool
        Keep the finished bar on screen.

    Returns
    -------
    tqdm.tqdm
        Iterates like ``iterable``; a context manager with ``update(n)`` and ``set_postfix_str``.
    """
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        leave=leave,
        dynamic_ncols=True,
        disable=not enabled(show),
        file=sys.stderr,
    )


class quiet_scope:
    """``with quiet_scope(True): ...``: no progress bar in the block (the commands' ``--quiet``)."""

    def __init__(self, quiet: bool = True) -> None:
        self.quiet = bool(quiet)
        self._before = False

    def __enter__(self) -> quiet_scope:
        global _QUIET
        self._before, _QUIET = _QUIET, self.quiet or _QUIET
        return self

    def __exit__(self, *exc: object) -> None:
        global _QUIET
        _QUIET = self._before
