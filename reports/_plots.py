"""The one door to the plots (``chargetwin.reports.plots``, matplotlib to inline SVG).

:func:`draw` calls a plot function by name and never lets a plot break the
report: when the module or the function is missing, when there is no data,
or when drawing fails, the report shows a note saying so (and the numbers
are in tables beside every plot anyway). The module is imported on first
use: matplotlib takes a while to import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from markupsafe import Markup

__all__ = ["PLOTS_MODULE", "Plot", "draw"]

PLOTS_MODULE: Final = "chargetwin.reports.plots"


@dataclass(frozen=True, slots=True)
class Plot:
    """An inline ``<svg>`` (trusted: drawn by our plots module), or None and a note saying why not."""

    name: str
    svg: Markup | None
    note: str | None = None


def draw(name: str, data: Any, **options: Any) -> Plot:
    """The plot ``name`` of ``data`` (the part of results.json the plot function takes), with ``options``."""
    if data is None:
        return Plot(name, None, "no data for this plot: the results file does not hold it")
    function = _function(name)
    if function is None:
        return Plot(name, None, "plot unavailable: this installation has no plotting module for it")
    try:
        svg = function(data, **options)
    except Exception as error:  # a plot must never cost the reader the rest of the report
        return Plot(name, None, f"plot unavailable: drawing it failed ({type(error).__name__}: {error})")
    if svg is None:
        return Plot(name, None, "nothing to plot in this run")
    start = svg.find("<svg") if isinstance(svg, str) else -1
    if start < 0:
        return Plot(name, None, "plot unavailable: the plotting module returned no SVG")
    return Plot(name, Markup(svg[start:]))  # from <svg on: an XML prolog has no place inside HTML


def _function(name: str) -> Callable[..., Any] | None:
    try:
        module = importlib.import_module(PLOTS_MODULE)
    except ImportError:
        return None
    function = getattr(module, name, None)
    return function if callable(function) else None
