"""Generate the CLI reference of README.md from the CLI itself, so it cannot drift.

    python tools/cli_reference.py          # rewrite the block between the markers in README.md
    python tools/cli_reference.py --check  # exit 1 if README.md is out of date (run by the tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- cli-reference:begin -->", "<!-- cli-reference:end -->"


def _commands(group, prefix: str, ctx):
    for name in sorted(group.list_commands(ctx)):
        cmd = group.get_command(ctx, name)
        if cmd is None or cmd.hidden:
            continue
        path = f"{prefix} {name}"
        sub = cmd.context_class(cmd, info_name=name, parent=ctx)
        if hasattr(cmd, "list_commands"):  # a group (typer bundles its own click)
            yield from _commands(cmd, path, sub)
        else:
            yield path, cmd, sub


def reference() -> str:
    from clipgeo.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="clipgeo", terminal_width=100, max_content_width=100)
    parts = []
    for path, cmd, sub in _commands(root, "clipgeo", ctx):
        sub.terminal_width = sub.max_content_width = 100
        usage = cmd.get_help(sub).replace("Usage: clipgeo", "Usage: clipgeo", 1)
        parts.append(f"#### `{path}`\n\n```text\n{usage.rstrip()}\n```\n")
    return "\n".join(parts)


def render(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{reference()}\n{END}{tail}"


def main() -> int:
    text = README.read_text()
    if BEGIN not in text or END not in text:
        print(f"README.md lacks the markers {BEGIN} … {END}", file=sys.stderr)
        return 1
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md's CLI reference is out of date: run `python tools/cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
