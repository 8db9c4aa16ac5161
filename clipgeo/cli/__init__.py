"""The ``clipgeo`` command line: one small module per subcommand, each a thin
call into the library.

User errors (:class:`clipgeo.errors.ClipgeoError`) print one line to stderr and
exit 1; unexpected errors print one line too (set ``CLIPGEO_DEBUG=1`` for the
traceback).
"""

from __future__ import annotations

import os
import sys

# Subcommand modules register themselves on `app` when imported.
from . import analyze as _analyze  # noqa: E402,F401
from . import atlas as _atlas  # noqa: E402,F401
from . import compare as _compare  # noqa: E402,F401
from . import compare_stores as _compare_stores  # noqa: E402,F401
from . import demo as _demo  # noqa: E402,F401
from . import extract as _extract  # noqa: E402,F401
from . import figures as _figures  # noqa: E402,F401
from . import probe as _probe  # noqa: E402,F401
from . import report as _report  # noqa: E402,F401
from . import simulate as _simulate  # noqa: E402,F401
from . import store as _store  # noqa: E402,F401
from . import study as _study  # noqa: E402,F401
from . import train as _train  # noqa: E402,F401
from . import whiten as _whiten  # noqa: E402,F401
from ._app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``clipgeo`` console script and ``python -m clipgeo``."""
    from ..errors import ClipgeoError

    debug = os.environ.get("CLIPGEO_DEBUG") == "1"
    try:
        app(args=argv, prog_name="clipgeo", standalone_mode=False)
    except ClipgeoError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # Usage errors come from the click that typer bundles: recognise them by their interface.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            print("aborted", file=sys.stderr)
            sys.exit(1)
        if debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"error: unexpected {type(exc).__name__}: {first} (set CLIPGEO_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
