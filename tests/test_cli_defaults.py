"""CLI options that the library also defines take the library's default, so the two cannot drift apart."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path


def _shown(*path: str) -> dict:
    """Option name -> default of a `clipgeo` subcommand, as Typer registered it."""
    import typer.main

    from clipgeo.cli import app

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {p.name: p.default for p in command.params}


def _signature_default(function, name: str):
    default = inspect.signature(function).parameters[name].default
    assert default is not inspect.Parameter.empty, f"{function.__name__} has no default for {name}"
    return default


def test_analyze_streaming_options_default_to_the_stream_engines():
    from clipgeo.stream import StreamConfig, dask_client
    from clipgeo.stream._engine import DEFAULT_CONNECT_TIMEOUT

    shown = _shown("analyze")
    fields = {f.name: f.default for f in dataclasses.fields(StreamConfig)}
    assert shown["sample_size"] == fields["sample_size"]
    # analyze_store(connect_timeout=None) waits DEFAULT_CONNECT_TIMEOUT, dask_client's own default
    assert shown["connect_timeout"] == _signature_default(dask_client, "timeout") == DEFAULT_CONNECT_TIMEOUT


def test_simulate_store_dtype_defaults_to_simulate_stores():
    from clipgeo.simulate import simulate_store

    assert _shown("simulate", "double-ellipsoid")["store_dtype"] == _signature_default(simulate_store, "store_dtype")


def test_study_preset_and_out_default_to_the_study_functions():
    from clipgeo.train.study import PRESETS, study

    shown = _shown("study")
    assert shown["preset"] == _signature_default(study, "config") and shown["preset"] in PRESETS
    assert Path(shown["out"]) == Path(_signature_default(study, "out"))
