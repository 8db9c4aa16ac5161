"""The figure registry: one entry per figure of SPEC §10, and what every figure function receives.

A figure function takes a :class:`FigureInput` (the analyzer results of one
embedding set, bundled in a :class:`clipgeo.report.Report`) and returns
``(figure, data)``: a matplotlib :class:`~matplotlib.figure.Figure` and the
dict of the numbers it plots (saved as JSON beside the image).  It never
recomputes an analyzer result.  When the data at hand cannot give the figure
(one modality only, no captions, ...), it raises :class:`FigureSkipped` with
the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

    from ..report import Report


class FigureSkipped(Exception):
    """The data at hand cannot give this figure; the message says why (one line)."""


@dataclass
class FigureInput:
    """Everything a figure function may read: analyzer results, never raw embeddings.

    Attributes
    ----------
    report : Report
        Analyzer results of one embedding set (from :func:`clipgeo.report.analyze`
        or read back from a ``clipgeo analyze`` output directory).
    theory : pandas.DataFrame, optional
        The thin-shell simulation of SPEC §3 (``thin_shell_theory.csv``:
        ``distribution, dim, mean_norm, std_norm, sqrt_dim, relative_thickness``);
        drawn with :func:`clipgeo.synthetic.thin_shell_curve` on first use when absent.
    origin : str
        Where the results came from (a store or report path), for the provenance.
    features : tuple of int, optional
        Features (0-based) the user named (``clipgeo figures --features 92,133``): the feature
        figures show these instead of the top-ranked ones.
    """

    report: Report
    theory: pd.DataFrame | None = None
    origin: str = ""
    features: tuple[int, ...] | None = None

    def thin_shell_theory(self) -> pd.DataFrame:
        """The thin-shell theory table: ``theory``, else the report's, else simulated once with the report's seed."""
        if self.theory is None:
            self.theory = self.report.thin_shell_theory
        if self.theory is None:  # a Report built by hand, or read from a directory without the table
            from ..synthetic import thin_shell_curve

            self.theory = thin_shell_curve(seed=int(self.report.config.get("seed", 0)))
        return self.theory

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.report.meta or {})

    @property
    def model(self) -> str:
        """The model that produced the embeddings, as the store names it."""
        meta = self.meta
        return str(meta.get("model_id") or meta.get("model") or "unknown model")

    @property
    def data(self) -> str:
        """A short name of the data set the rows come from."""
        return data_label(str(self.meta.get("source") or ""))

    def caption(self) -> str:
        """One line under every figure: model, data, row counts, dimension."""
        r = self.report
        parts = [f"model: {self.model}"]
        if self.data:
            parts.append(f"data: {self.data}")
        parts.append(f"{r.n_image} image / {r.n_text} text rows, {r.n_pairs} pairs, d = {r.dim}")
        return "  ·  ".join(parts)

    def unit_norm(self, modality: str) -> bool:
        """True when that modality's rows were already L2-normalised (raw norms degenerate)."""
        return bool(self.report.unit_norm.get(modality, False))


_PATH = re.compile(r"(?:[A-Za-z]:)?[\w.~-]*[/\\][^,;\s]+")


def data_label(source: str, limit: int = 60) -> str:
    """Shorten a store's ``source`` string: file paths become their folder names.

    ``"image=/x/hm_products/image.npy, text=/x/hm_products/text.npy"`` gives
    ``"hm_products"``; a source without paths is kept (cut at ``limit`` characters).
    """
    from pathlib import PurePath

    paths = _PATH.findall(source)
    if paths:
        names: list[str] = []
        for p in paths:
            pure = PurePath(p)
            name = pure.parent.name if pure.suffix else pure.name
            if name and name not in names:
                names.append(name)
        if names:
            source = ", ".join(names)
    return source if len(source) <= limit else source[: limit - 1] + "…"


FigureFunction = Callable[[FigureInput], "tuple[Figure, dict[str, Any]]"]


@dataclass(frozen=True)
class FigureSpec:
    """One registered figure.

    Attributes
    ----------
    name : str
        File stem and ``--only`` name.
    description : str
        One line, shown by ``clipgeo figures --list``.
    spec : str
        The SPEC section of the claim it illustrates.
    func : callable
        ``func(FigureInput) -> (Figure, dict)``.
    """

    name: str
    description: str
    spec: str
    func: FigureFunction


#: name -> FigureSpec, in drawing order (the order of SPEC §10)
FIGURES: dict[str, FigureSpec] = {}


def register(name: str, description: str, spec: str) -> Callable[[FigureFunction], FigureFunction]:
    """Decorator: add a figure function to :data:`FIGURES` under ``name``."""

    def wrap(func: FigureFunction) -> FigureFunction:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} is registered twice")
        FIGURES[name] = FigureSpec(name=name, description=description, spec=spec, func=func)
        return func

    return wrap


def list_figures() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every registered figure, in drawing order."""
    return [(s.name, s.description) for s in FIGURES.values()]


def resolve_names(only: list[str] | tuple[str, ...] | str | None) -> list[str]:
    """The figure names to draw: all of them, or ``only`` (names or comma lists) checked against the registry.

    Raises
    ------
    InputError
        An unknown name (the message lists the known ones).
    """
    if only is None:
        return list(FIGURES)
    items = [only] if isinstance(only, str) else list(only)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in FIGURES:
                raise InputError(
                    f"unknown figure {name!r}; known figures: {', '.join(FIGURES)} (see `clipgeo figures --list`)"
                )
            if name not in names:
                names.append(name)
    if not names:
        raise InputError("the list of figures to draw is empty; name one or more of: " + ", ".join(FIGURES))
    return names
