"""clipgeo._progress: one progress-bar helper, shown on a terminal only, off under --quiet."""

from __future__ import annotations

import io
import sys

import pytest

from clipgeo import _progress as P


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch):
    """A stderr that says it is a terminal and records what the bar writes (installed by :func:`_use`)."""
    monkeypatch.delenv("CLIPGEO_PROGRESS", raising=False)
    return _Terminal()


def _use(monkeypatch, stream) -> None:
    # in the test body: pytest's capture sets sys.stderr again between a fixture's setup and the call
    monkeypatch.setattr(sys, "stderr", stream)


def test_a_bar_on_a_terminal_none_in_a_pipe(terminal, monkeypatch):
    _use(monkeypatch, terminal)
    assert list(P.progress(range(3), desc="figures")) == [0, 1, 2]
    assert "figures:" in terminal.getvalue() and "/3" in terminal.getvalue()
    pipe = io.StringIO()  # isatty() is False: a file, a pipe, CI
    monkeypatch.setattr(sys, "stderr", pipe)
    assert list(P.progress(range(3), desc="figures")) == [0, 1, 2]
    assert pipe.getvalue() == ""


def test_quiet_scope_and_explicit_show(terminal, monkeypatch):
    _use(monkeypatch, terminal)
    with P.quiet_scope(True):
        assert not P.enabled()
        list(P.progress(range(2), desc="quiet"))
        assert P.enabled(show=True)  # an explicit --progress wins
        with P.quiet_scope(False):  # an inner scope cannot turn an outer --quiet off
            assert not P.enabled()
    assert P.enabled() and "quiet" not in terminal.getvalue()
    assert not P.enabled(show=False)


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("0", False), ("off", False)])
def test_environment_forces(monkeypatch, value, expected):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    monkeypatch.setenv("CLIPGEO_PROGRESS", value)
    assert P.enabled() is expected


def test_manual_bar_counts(terminal, monkeypatch):
    _use(monkeypatch, terminal)
    with P.progress(total=10, desc="extract", unit="pair") as bar:
        bar.update(4)
        bar.update(6)
        assert bar.n == 10
    assert "extract" in terminal.getvalue()
