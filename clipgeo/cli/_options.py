"""What the subcommands share about their options: defaults read from the library, errors shown as flags.

The library owns the defaults (the dataclasses ``ExtractOptions`` and ``TrainConfig``, the keyword
defaults of ``compare_runs`` and ``probe_runs``); a Typer option takes ``D["batch_size"]`` instead
of restating ``64``.  Library messages name parameters the
way Python calls them (``batch_size``, ``resume=True``, ``device='cpu'``); :func:`flag_errors`
rewrites those names into the command's flags (``--batch-size``, ``--resume``, ``--device cpu``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["as_flags", "defaults", "flag_errors"]


def defaults(cls: type | Callable[..., Any]) -> dict[str, Any]:
    """Field name -> default of a dataclass, or parameter -> default of a function (those without one left out)."""
    out: dict[str, Any] = {}
    if not dataclasses.is_dataclass(cls):
        params = inspect.signature(cls).parameters.values()
        return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


#: one pass over a message, left to right: ``name=value``, then text that is never a parameter (a path, a
#: quoted string), then a bare ``snake_case`` name; the first alternative that matches at a position wins
_TOKEN = re.compile(
    r"(?<![\w-])(?P<name>[a-z][a-z0-9_]*)=(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;()]+)"
    r"|(?P<verbatim>[^\s'\"]*[/\\][^\s,;'\"]*|'[^']*'|\"[^\"]*\")"
    r"|(?<![\w=-])(?P<bare>[a-z][a-z0-9]*_[a-z0-9_]+)(?![\w=])"
)


def as_flags(message: str, names: set[str] | Callable[..., Any], aliases: dict[str, str] | None = None) -> str:
    """``message`` with the parameter names in ``names`` written as command-line flags.

    ``name=True`` -> ``--name``, ``name=False`` -> ``--no-name``, ``name=value`` / ``name='value'``
    -> ``--name value``, and a bare name with an underscore (``batch_size``) -> ``--batch-size``.
    Paths and quoted text are left as they are (a folder called ``coco_images`` stays one).
    ``names`` is a set or the command function (its parameters); ``aliases`` maps a library name
    to the command's own (``{"warmup_steps": "warmup"}``).
    """
    known = set(inspect.signature(names).parameters) if callable(names) else set(names)
    aliases = aliases or {}
    known |= set(aliases)

    def token(match: re.Match) -> str:
        if match.group("verbatim") is not None:
            return match.group(0)
        name = match.group("name") or match.group("bare")
        if name not in known:
            return match.group(0)
        flag = _flag(aliases.get(name, name))
        value = match.group("value")
        if value is None:
            return flag
        if value == "True":
            return flag
        if value == "False":
            return "--no-" + flag[2:]
        return f"{flag} {value.strip(chr(39) + chr(34))}"

    return _TOKEN.sub(token, message)


@contextlib.contextmanager
def flag_errors(command: Callable[..., Any], aliases: dict[str, str] | None = None) -> Iterator[None]:
    """Re-raise a :class:`~clipgeo.errors.ClipgeoError` from the block with its parameter names as ``command``'s flags."""
    from ..errors import ClipgeoError

    try:
        yield
    except ClipgeoError as exc:
        text = str(exc)
        shown = as_flags(text, command, aliases)
        if shown == text:
            raise
        try:
            new = type(exc)(shown)
        except Exception:  # an error class with another constructor: keep it as it is
            raise exc from None
        raise new from None
