"""User-facing errors.

Every problem caused by the user's input (a missing file, a wrong shape, a store
written by another model, a network that is down) raises :class:`ClipgeoError`
with a one-line message that names the problem and says how to fix it.  The CLI
prints that line to stderr and exits with status 1, without a traceback.

Inputs are checked by :mod:`clipgeo.validation`; its messages name the library's
parameters (``overwrite=True``), which the CLI rewrites as flags (``--overwrite``).
"""

from __future__ import annotations


class ClipgeoError(Exception):
    """An error the user can fix; its message is one line: problem + fix."""


class StoreError(ClipgeoError):
    """The embedding store is missing, incomplete, inconsistent or mixed."""


class InputError(ClipgeoError, ValueError):
    """Arrays or files given to clipgeo have the wrong shape, dtype or values."""
