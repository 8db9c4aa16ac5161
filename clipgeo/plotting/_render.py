"""Draw figures and save them deterministically, each with a JSON file of the numbers it plots.

Saving is byte-for-byte reproducible: figures are built without pyplot (no
global state), rendered by Agg (PNG) or the PDF/SVG backends with fixed
metadata (no dates, a fixed software string, a fixed SVG hash salt), and every
random subset they draw is seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, to_jsonable, write_json
from ..errors import InputError
from ..validation import check_features
from ._registry import FIGURES, FigureSkipped, resolve_names
from ._source import load_source
from ._style import DEFAULT_DPI, style

FORMATS = ("png", "pdf", "svg")
#: arrays with more elements than this go to ``<name>.npz`` beside the JSON instead of into it
MAX_JSON_ELEMENTS = 20_000


def check_formats(formats: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """``"png,pdf"`` or ``["png", "svg"]`` as a checked list of formats (default png)."""
    if formats is None:
        return ["png"]
    items = [formats] if isinstance(formats, str) else list(formats)
    out: list[str] = []
    for item in items:
        for fmt in str(item).split(","):
            fmt = fmt.strip().lower().lstrip(".")
            if not fmt:
                continue
            if fmt not in FORMATS:
                raise InputError(f"unknown figure format {fmt!r}; use one or more of {', '.join(FORMATS)} (e.g. formats='png,pdf')")
            if fmt not in out:
                out.append(fmt)
    if not out:
        raise InputError(f"no figure format given; use one or more of {', '.join(FORMATS)}")
    return out


def _metadata(fmt: str, title: str) -> dict[str, Any]:
    """Fixed file metadata per format: no creation date, a constant creator."""
    from .._version import __version__

    creator = f"clipgeo {__version__}"
    if fmt == "png":
        return {"Software": creator, "Title": title}
    if fmt == "pdf":
        return {"Creator": creator, "Producer": creator, "CreationDate": None, "ModDate": None, "Title": title}
    return {"Creator": creator, "Date": None, "Title": title}


def _split_arrays(data: Any, arrays: dict[str, np.ndarray], key: str = "") -> Any:
    """``data`` with numpy arrays larger than :data:`MAX_JSON_ELEMENTS` moved into ``arrays``.

    A moved array is replaced by ``{"npz": key, "shape": [...]}`` naming its entry in the ``.npz`` file.
    """
    if isinstance(data, dict):
        return {k: _split_arrays(v, arrays, f"{key}.{k}" if key else str(k)) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_split_arrays(v, arrays, f"{key}.{i}") for i, v in enumerate(data)]
    if isinstance(data, np.ndarray) and data.size > MAX_JSON_ELEMENTS:
        arrays[key] = data
        return {"npz": key, "shape": list(data.shape)}
    return data


def save_figure(
    fig: Any,
    data: dict[str, Any],
    out_dir: str | Path,
    name: str,
    *,
    formats: list[str] | tuple[str, ...] = ("png",),
    dpi: int = DEFAULT_DPI,
    provenance: dict[str, Any] | None = None,
) -> list[Path]:
    """Save ``fig`` as ``<name>.<fmt>`` for each format and ``data`` as ``<name>.json`` beside it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    data : dict
        The plotted numbers (numpy arrays allowed; large ones go to ``<name>.npz``).
    out_dir : path
    name : str
    formats : sequence of {"png", "pdf", "svg"}
    dpi : int
        Resolution of raster output.
    provenance : dict, optional
        Recorded under ``"provenance"`` in the JSON.

    Returns
    -------
    list of Path
        The image files, then the JSON (and the ``.npz`` when one was needed).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = str(data.get("title", name))
    paths = []
    with style():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_metadata(fmt, title))
            paths.append(path)
    arrays: dict[str, np.ndarray] = {}
    body = _split_arrays(data, arrays)
    npz = out / f"{name}.npz"
    if arrays:
        with atomic_path(npz) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    elif npz.exists():
        npz.unlink()
    record = {
        "figure": name,
        **to_jsonable(body),
        "files": [p.name for p in paths] + ([npz.name] if arrays else []),
        "provenance": to_jsonable(provenance or {}),
    }
    paths.append(write_json(out / f"{name}.json", record, indent=1))
    if arrays:
        paths.append(npz)
    return paths


def draw_figure(name: str, source: Any) -> tuple[Any, dict[str, Any]]:
    """Draw one registered figure.

    Parameters
    ----------
    name : str
        A name from :func:`list_figures`.
    source : path, Report, EmbeddingSet or FigureInput
        See :func:`load_source`.

    Returns
    -------
    fig : matplotlib.figure.Figure
    data : dict
        The numbers it plots, with ``title``, ``caption`` and ``notes``.

    Raises
    ------
    FigureSkipped
        The data cannot give this figure (the message says why).
    InputError
        Unknown name or unusable source.
    """
    (name,) = resolve_names([name])
    inp = load_source(source)
    with style():
        return FIGURES[name].func(inp)


@dataclass
class FigureRun:
    """What :func:`render_figures` did.

    Attributes
    ----------
    out_dir : Path
    written : dict of str to list of Path
        Figure name -> its files (images, JSON, npz).
    skipped : dict of str to str
        Figure name -> why it could not be drawn from this data.
    """

    out_dir: Path
    written: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def render_figures(
    source: Any,
    out_dir: str | Path,
    *,
    only: list[str] | tuple[str, ...] | str | None = None,
    formats: str | list[str] | tuple[str, ...] | None = ("png",),
    dpi: int | None = DEFAULT_DPI,
    provenance: dict[str, Any] | None = None,
    features: str | list[int] | tuple[int, ...] | None = None,
) -> FigureRun:
    """Draw every registered figure (or ``only`` some) from ``source`` into ``out_dir``.

    Parameters
    ----------
    source : path, Report, EmbeddingSet or FigureInput
        A store directory, a ``clipgeo analyze`` output directory, or results in memory.
    out_dir : path
    only : list of str, optional
        Figure names (or comma-separated lists); default all.
    formats : str or sequence of str
        Any of png, pdf, svg (``"png,pdf"`` works too).
    dpi : int, optional
        Raster resolution (None: :data:`DEFAULT_DPI`).
    provenance : dict, optional
        Provenance of this run, written into every JSON beside the store's and
        the analysis's; default :func:`clipgeo.provenance.provenance`.
    features : str or sequence of int, optional
        Features (0-based, e.g. ``"92,133"``) the feature figures show instead of the top-ranked
        ones; each must be below the dimension, and a report directory must carry their values.

    Returns
    -------
    FigureRun
        Files written per figure, and the figures skipped with the reason.

    Raises
    ------
    InputError
        Unknown figure or format, bad dpi, unusable source, or ``only`` names
        figures none of which this data can give.
    """
    names = resolve_names(only)
    fmts = check_formats(formats)
    dpi = DEFAULT_DPI if dpi is None else dpi
    if not 10 <= int(dpi) <= 1200:
        raise InputError(f"dpi must lie between 10 and 1200, got {dpi}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"out='{out}' is a file; give a directory for the figures")
    named = check_features(features)  # not integers: a one-line error before any work
    inp = load_source(source, features=named or None)
    if named:
        check_features(named, inp.report.dim)
        missing = [k for k in named if any(k not in v for v in inp.report.top_feature_values.values())]
        if missing or not inp.report.top_feature_values:
            listed = ",".join(map(str, missing or named))
            raise InputError(
                f"the results from {inp.origin or 'the source'} carry no values of feature(s) {listed}; draw from the "
                f"store, or rerun `clipgeo analyze --features {','.join(map(str, named))}` first"
            )
        inp.features = tuple(named)
    if provenance is None:
        from ..provenance import provenance as make_provenance

        provenance = make_provenance({"source": inp.origin, "formats": fmts, "dpi": int(dpi)})
    record = {
        **provenance,
        "store": inp.report.meta,
        "analysis": {"config": inp.report.config, "source": inp.origin},
    }
    from .._progress import progress

    run = FigureRun(out_dir=out)
    for name in progress(names, desc="figures", unit="fig"):  # a bar on a terminal only (clipgeo._progress)
        spec = FIGURES[name]
        try:
            with style():
                fig, data = spec.func(inp)
        except FigureSkipped as exc:
            run.skipped[name] = str(exc)
            continue
        data = {"description": spec.description, "spec": spec.spec, **data}
        run.written[name] = save_figure(fig, data, out, name, formats=fmts, dpi=int(dpi), provenance=record)
    if only is not None and not run.written:
        reasons = "; ".join(f"{k}: {v}" for k, v in run.skipped.items())
        raise InputError(f"none of the requested figures can be drawn from this data ({reasons})")
    return run
