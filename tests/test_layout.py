"""The layout rules of CONTRIBUTING, checked: torch-free parts, no import cycles, library messages in
parameter names, a clean lint."""

from __future__ import annotations

import ast
import json
import pkgutil
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import clipgeo

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(clipgeo.__file__).resolve().parent

#: the parts that must import (and run) without torch, open_clip or torchvision; packages with every submodule
TORCH_FREE = (
    "clipgeo",
    "clipgeo.errors",
    "clipgeo.validation",
    "clipgeo._io",
    "clipgeo.provenance",
    "clipgeo.synthetic",
    "clipgeo.analyzers",
    "clipgeo.store",
    "clipgeo.report",
    "clipgeo.plotting",
)

_BLOCKED_IMPORTS = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys, traceback

    BLOCKED = {"torch", "open_clip", "torchvision"}

    def importer():
        # the innermost clipgeo module on the stack: the one whose import statement asked for torch
        frame = sys._getframe(2)
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if name.split(".")[0] == "clipgeo":
                return f"{name} (line {frame.f_lineno})"
            frame = frame.f_back
        return "?"

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked; imported by {importer()}")
            return None

    sys.meta_path.insert(0, Blocker())

    def modules(top):
        yield top
        if top == "clipgeo":  # the root alone: its subpackages are listed one by one
            return
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=top + "."):
            yield info.name

    failures, seen = [], set()
    for top in json.loads(sys.argv[1]):
        try:
            names = list(modules(top))
        except Exception as exc:
            failures.append({"module": top, "error": f"{type(exc).__name__}: {exc}"})
            continue
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            try:
                importlib.import_module(name)
            except Exception as exc:
                failures.append({"module": name, "error": f"{type(exc).__name__}: {exc}"})

    probe = "ok"
    try:
        import numpy as np
        import clipgeo as cg

        rng = np.random.default_rng(0)
        x = np.concatenate([rng.normal(-2, 1, (20, 3)), rng.normal(2, 1, (20, 3))])
        y = np.repeat([0, 1], 20)
        cg.linear_probe(x, y)
    except Exception as exc:
        probe = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"failures": failures, "linear_probe": probe}))
    """
)


def test_torch_free_parts_import_and_run_without_torch():
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCKED_IMPORTS, json.dumps(TORCH_FREE)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    problems = [f"import {f['module']}: {f['error']}" for f in result["failures"]]
    if result["linear_probe"] != "ok":
        problems.append(f"clipgeo.linear_probe on tiny data: {result['linear_probe']}")
    assert not problems, "torch-free modules need torch (or fail):\n  " + "\n  ".join(problems)


def test_streaming_workers_import_no_analyzers_and_no_scipy():
    """What a Dask worker unpickles (the per-shard tasks) must stay lean: each worker process of a streamed
    analysis would otherwise carry scipy and every analyzer (~60 MB) through both passes."""
    code = ("import sys, clipgeo.stream._tasks, clipgeo.stream._engine; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'sklearn', 'torch', 'matplotlib') "
            "or m.startswith('clipgeo.analyzers') or m.startswith('clipgeo.report')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


# -- import cycles -------------------------------------------------------------------------------------------


def _all_modules() -> dict[str, Path]:
    """Every module of the package, name -> file, found with pkgutil without importing anything."""
    found = {"clipgeo": PACKAGE / "__init__.py"}

    def walk(directory: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(directory)]):
            name = f"{prefix}.{info.name}"
            if info.ispkg:
                found[name] = directory / info.name / "__init__.py"
                walk(directory / info.name, name)
            else:
                found[name] = directory / f"{info.name}.py"

    walk(PACKAGE, "clipgeo")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Absolute names of everything ``module`` imports, at any depth (function-level imports too).

    Imports under ``if TYPE_CHECKING:`` never run and are left out.
    """
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def _import_graph() -> dict[str, set[str]]:
    modules = _all_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        own = {".".join(module.split(".")[:k]) for k in range(1, module.count(".") + 2)}  # itself and its packages
        edges = set()
        for name in _imported_names(tree, module, path.name == "__init__.py"):
            parts = name.split(".")
            # importing a.b.c runs the packages a and a.b too; those around `module` are already running
            for k in range(1, len(parts) + 1):
                target = ".".join(parts[:k])
                if target in modules and target not in own:
                    edges.add(target)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph) + 100))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _path_within(graph: dict[str, set[str]], component: list[str]) -> str:
    """One closed import chain through ``component``, for the message (``a -> b -> a``)."""
    members = set(component)
    start = component[0]
    chain, seen, node = [start], {start}, start
    while True:
        succ = sorted(graph[node] & members)
        back = [s for s in succ if s == start]
        if back and len(chain) > 1:
            return " -> ".join([*chain, start])
        fresh = [s for s in succ if s not in seen]
        if not fresh:
            return " -> ".join([*chain, succ[0] if succ else "?"])
        node = fresh[0]
        chain.append(node)
        seen.add(node)


def test_cycle_finder_sees_function_level_imports():
    tree = ast.parse("def f():\n    from .probe import x\n")
    assert "clipgeo.train.probe" in _imported_names(tree, "clipgeo.train.compare", False)
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _path_within(graph, ["a", "b", "c"]) == "a -> b -> c -> a"


def test_no_import_cycles_between_modules():
    graph = _import_graph()
    assert len(graph) > 50  # the walk found the package
    cycles = _cycles(graph)
    assert not cycles, "import cycles (function-level imports included):\n  " + "\n  ".join(
        _path_within(graph, c) + (f"   [component: {', '.join(c)}]" if len(c) > 2 else "") for c in cycles
    )


# -- library messages name parameters; only the CLI shows flags ----------------------------------------------

#: (file, flag) -> why a message of that library file may name a command-line flag.  Everything else
#: names the parameter (``batch_size``, ``out='x'``); ``clipgeo.cli._options.flag_errors`` shows it as a flag.
FLAGS_IN_LIBRARY_MESSAGES: dict[tuple[str, str], str] = {
    ("clipgeo/plotting/_shift.py", "--alphas"): "tells the user to rerun another command (`clipgeo analyze`) with its flag",
}

_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
#: a quoted command line (`clipgeo analyze --features 1,2`, `pip install ...`): its flags are that command's own
_QUOTED_COMMAND = re.compile(r"`(?:clipgeo|python|pip|torchrun|embedding-atlas|dask)\b[^`]*`")
_MESSAGE_CALLS = ("Error", "Exception", "Skipped", "Warning", "warn")


def _text(node: ast.AST) -> str:
    """The literal text of a message expression (f-string fields as ``{}``), pieces of calls joined by spaces."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else ""
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    return " ".join(_text(child) for child in ast.iter_child_nodes(node))


def _messages(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every exception built and every warning issued in a module."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name.endswith(_MESSAGE_CALLS):
            found.append((node.lineno, " ".join(_text(a) for a in [*node.args, *(k.value for k in node.keywords)])))
    return found


def _flags_in_messages(source: str) -> list[tuple[int, str, str]]:
    """(line, flag, message) for each ``--flag`` a message names outside a quoted command line."""
    out = []
    for line, text in _messages(ast.parse(source)):
        for flag in _FLAG.findall(_QUOTED_COMMAND.sub("", text)):
            out.append((line, flag, text))
    return sorted(out)


def test_flag_finder_sees_messages_and_spares_quoted_commands():
    source = textwrap.dedent(
        """
        def f(x, out):
            if x:
                raise InputError(f"--limit must be at least 1, got {x}")
            warnings.warn("use " + "--decode pil")
            raise InputError(f"out={out!r} is a file; rerun `clipgeo analyze --features 1,2` first")
        """
    )
    assert [(line, flag) for line, flag, _ in _flags_in_messages(source)] == [(4, "--limit"), (5, "--decode")]


def test_library_messages_name_parameters_not_flags():
    found, used = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("clipgeo/cli/"):
            continue
        for line, flag, text in _flags_in_messages(path.read_text()):
            if (rel, flag) in FLAGS_IN_LIBRARY_MESSAGES:
                used.add((rel, flag))
                continue
            found.append(f"{rel}:{line}: {flag} in {text[:110]!r}")
    assert not found, (
        "library messages that name command-line flags (name the parameter, e.g. out='x' or batch_size; "
        "the CLI's flag_errors shows it as a flag):\n  " + "\n  ".join(found)
    )


# -- lint --------------------------------------------------------------------------------------------------


def test_ruff_is_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed")
    proc = subprocess.run([ruff, "check", "clipgeo", "tests", "benchmarks"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
