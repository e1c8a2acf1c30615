"""The plots of the HTML conformance report: matplotlib figures as inline SVG strings.

Each public function takes one part of a run's ``results.json`` (shapes in
``docs/results-format.md``; the city's in ``chargetwin.twin.model.series``)
and returns one ``<svg>`` element to paste into the report's HTML, or None
when that part is missing, malformed or holds nothing to draw.

Every SVG returned:

- is XML without declaration, DOCTYPE or comments; text stays text
  (``svg.fonttype = "none"``) and there is no metadata, so it is small;
- has ``role="img"``, an ``aria-label`` and a ``<title>`` naming what it
  draws;
- scales with the page: ``width="100%"`` and a ``viewBox``, no height
  (the report's CSS may cap its width);
- prefixes every element id, and scopes matplotlib's ``<style>``, with an id
  of its own made from its content (``ct-<plot>-<8 hex digits>``), so that
  several SVGs share one HTML page; the same input gives the same SVG.

Colours are the Okabe-Ito palette, told apart with the common colour-vision
deficiencies; station statuses keep the map's colours (available green, in
use blue, unavailable red), unavailable also hatched for greyscale print.
Simulated time reads as clock time (HH:MM, the city's or ``start``'s UTC
offset) when a start is known, else as h:mm since the start.

Rendering uses ``Figure`` and the SVG canvas, never pyplot, from
matplotlib's default style plus this module's settings (a user's
``matplotlibrc`` changes nothing). Those settings are process-wide, so a
render holds a module lock while they apply (``style.context``): calls from
several threads are safe, one at a time, but other matplotlib code running
in the process meanwhile would see them.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final
from xml.etree import ElementTree

import numpy as np
from matplotlib import style, ticker
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D

__all__ = ["MAX_POINTS", "PALETTE", "STATUS_COLOURS", "city_energy", "city_queue", "city_sessions",
           "city_status_mix", "city_timeline", "latency_histograms", "latency_over_time", "throughput"]

PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
"""Okabe-Ito colours (blue, orange, bluish green, reddish purple, vermillion, sky blue, black)."""

STATUS_COLOURS: Final = {"available": "#009E73", "in_use": "#0072B2", "unavailable": "#D55E00"}
"""Station status -> colour: the map icons' green, blue and red, in their colour-blind-safe shades."""

MAX_POINTS: Final = 400
"""Throughput series longer than this are summed into wider buckets before drawing."""

_BLUE, _ORANGE, _GREEN, _PURPLE, _RED, _SKY, _BLACK = PALETTE
_GREY: Final = "#777777"
_WIDTH: Final = 7.5
"""Figure width in inches: a printed A4 or Letter page's text width at 72 user units per inch."""
_PAD: Final = 6 / 72
"""Inches around the axes: room for browsers whose text runs a little wider than matplotlib measured."""

_RC: Final[dict[str, Any]] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "chargetwin",  # fixed: matplotlib's hashed ids stay the same from run to run
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # laid out with matplotlib's own font; "sans-serif" where it is missing
    "font.size": 9.0,
    "axes.titlesize": 9.0,
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "lines.linewidth": 1.4,
    "hatch.linewidth": 0.8,
}
_METADATA: Final[dict[str, Any]] = {"Creator": None, "Date": None, "Format": None, "Type": None}
_LOCK: Final = threading.Lock()

_TICK_STEPS_S: Final = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
_SVG: Final = "http://www.w3.org/2000/svg"
_XLINK_HREF: Final = "{http://www.w3.org/1999/xlink}href"
_TEXTUAL: Final = {"text", "style", "title"}
_URL: Final = re.compile(r"url\(#([^)]+)\)")
_DECIMALS: Final = re.compile(r"-?\d+\.\d+")


# --- the public plots -------------------------------------------------------------------------


def latency_over_time(lot: Mapping[str, Any] | None, *, start: str | None = None) -> str | None:
    """``metrics.latency_over_time``: p50 (solid) and p99 (dashed) of each latency, one panel per name.

    Log y axis in ms, shared by the panels; a bucket's percentiles are drawn
    at its middle, lone buckets (no neighbour with samples) as dots.
    ``start`` (ISO 8601, as ``metrics.city.start``) puts clock time on the x
    axis. None when no latency has a sample.
    """
    if not isinstance(lot, Mapping):
        return None
    bucket, t = _positive(lot.get("bucket_s")), _numbers(lot.get("t_sim"))
    series = lot.get("series")
    if bucket is None or not t or not isinstance(series, Mapping):
        return None
    drawn = {str(name): pair for name, s in series.items() if (pair := _percentiles(s, len(t))) is not None}
    if not drawn:
        return None
    x = np.asarray(t) + bucket / 2
    axis = _TimeAxis(t[-1] + bucket, _parse_start(start))

    def draw(fig: Figure) -> None:
        axes = _grid(fig, len(drawn), sharey=True)
        for ax, (name, (p50, p99)) in zip(axes, drawn.items(), strict=True):
            _latency_panel(ax, x, p50, p99, name)
        _log_ms_limits(axes[0], np.concatenate([p for pair in drawn.values() for p in pair]))
        for ax in axes:
            axis.apply(ax, max_ticks=4)
        _label_outer(axes, xlabel=axis.label, ylabel="latency (ms, log)")
        fig.legend(handles=[Line2D([], [], color=_BLUE, label="p50"),
                            Line2D([], [], color=_BLUE, linestyle="--", label="p99")],
                   loc="outside upper center", ncols=2)

    names = ", ".join(drawn)
    return _render("latency-over-time", f"Latency p50 and p99 over simulated time, in ms: {names}",
                   _grid_size(len(drawn)), draw)


def latency_histograms(hist: Mapping[str, Any] | None) -> str | None:
    """``metrics.latency_histograms``: each latency's share of samples per bucket, one panel per name.

    Log x axis; the buckets ``(edge before, edge]`` of ``edges_ms``, the
    first from half the first edge, the last (slower than every edge) up to
    twice the last edge. Names without samples are left out; None when no
    name has one.
    """
    if not isinstance(hist, Mapping):
        return None
    edges = _numbers(hist.get("edges_ms"))
    counts = hist.get("counts")
    if not edges or not isinstance(counts, Mapping) or any(e <= 0 for e in edges):
        return None
    drawn = {str(name): c for name, values in counts.items()
             if (c := _numbers(values)) is not None and len(c) == len(edges) + 1 and sum(c) > 0}
    if not drawn:
        return None
    bounds = np.asarray([edges[0] / 2, *edges, edges[-1] * 2])

    def draw(fig: Figure) -> None:
        axes = _grid(fig, len(drawn), sharey=True)
        for ax, (name, c) in zip(axes, drawn.items(), strict=True):
            total = sum(c)
            ax.stairs(np.asarray(c) * 100.0 / total, bounds, fill=True, color=_BLUE, alpha=0.8)
            ax.set_title(f"{_plain(name)} (n = {total:,.0f})")
            ax.set_xscale("log")
            ax.set_xlim(bounds[0], bounds[-1])
            ax.xaxis.set_major_locator(ticker.FixedLocator(_ms_ticks(bounds[0], bounds[-1])))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(_ms_label))
            ax.xaxis.set_minor_locator(ticker.NullLocator())
        axes[0].set_ylim(0, 100)
        _label_outer(axes, xlabel="latency (log scale)", ylabel="share of samples (%)")

    return _render("latency-histograms", f"Latency distributions, share of samples per bucket: {', '.join(drawn)}",
                   _grid_size(len(drawn)), draw)


def throughput(tp: Mapping[str, Any] | None) -> str | None:
    """``metrics.throughput``: messages per second on each hop over wall time, one panel per hop.

    Each panel draws the hop's ``series`` as steps of ``series_bucket_s``
    (summed further when longer than :data:`MAX_POINTS`) and names its total
    and peak. None when no hop has a series.
    """
    if not isinstance(tp, Mapping):
        return None
    step, hops = _positive(tp.get("series_bucket_s")), tp.get("hops")
    if step is None or not isinstance(hops, Mapping):
        return None
    drawn = {str(hop): (counts, h) for hop, h in hops.items()
             if isinstance(h, Mapping) and (counts := _numbers(h.get("series")))}
    if not drawn:
        return None
    length = max(len(counts) for counts, _ in drawn.values())
    factor = max(1, math.ceil(length / MAX_POINTS))
    width = step * factor
    minutes = length * step > 300
    unit = 60.0 if minutes else 1.0
    edges = np.arange(math.ceil(length / factor) + 1) * width / unit

    def draw(fig: Figure) -> None:
        axes = _grid(fig, len(drawn), sharey=False)
        for ax, (hop, (counts, h)) in zip(axes, drawn.items(), strict=True):
            rates = _coarsen(counts, factor, len(edges) - 1) / width
            ax.stairs(rates, edges, color=_BLUE, linewidth=1.0)
            ax.set_title(_hop_title(hop, h, sum(counts), rates))
            ax.set_xlim(0, edges[-1])
            ax.set_ylim(bottom=0)
            _thousands(ax)
        per = f"one step = {_duration(width)}"
        _label_outer(axes, xlabel=f"wall time since the run's start ({'min' if minutes else 's'}; {per})",
                     ylabel="messages/s")

    return _render("throughput", f"Throughput per hop over wall time, messages per second: {', '.join(drawn)}",
                   _grid_size(len(drawn)), draw)


def city_sessions(city: Mapping[str, Any] | None) -> str | None:
    """``metrics.city``: sessions active and connectors available at the end of each bucket.

    A dotted line marks all connectors (``connectors.total``). None when
    neither series is there.
    """
    frame = _City.read(city)
    if frame is None:
        return None
    sessions = frame.values("sessions_active")
    connectors = _mapping(frame.data.get("connectors"))
    available = frame.values("available", connectors)
    if sessions is None and available is None:
        return None
    total = _positive(connectors.get("total"))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        if sessions is not None:
            ax.plot(frame.ends, sessions, color=_BLUE, label="sessions active")
        if available is not None:
            ax.plot(frame.ends, available, color=_GREEN, linestyle="--", label="connectors available")
        if total is not None:
            ax.axhline(total, color=_GREY, linestyle=":", linewidth=1.0, label=f"connectors in all ({total:,.0f})")
        ax.set_ylim(bottom=0)
        _thousands(ax)
        frame.axis.apply(ax, max_ticks=8)
        ax.set_xlabel(frame.axis.label)
        ax.set_ylabel("sessions, connectors")
        fig.legend(loc="outside upper center", ncols=3)

    return _render("city-sessions", "Sessions active and connectors available over simulated time",
                   (_WIDTH, 3.0), draw)


def city_status_mix(city: Mapping[str, Any] | None) -> str | None:
    """``metrics.city``: stations by map status (available, in use, unavailable), stacked, per bucket end.

    Colours :data:`STATUS_COLOURS`; unavailable is hatched too. None when no
    status series is there.
    """
    frame = _City.read(city)
    if frame is None:
        return None
    stations = _mapping(frame.data.get("stations"))
    layers = {status: v for status in STATUS_COLOURS if (v := frame.values(status, stations)) is not None}
    if not layers:
        return None
    labels = {"available": "available", "in_use": "in use", "unavailable": "unavailable"}

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        base = np.zeros(len(frame.ends))
        for status, values in layers.items():
            top = base + np.nan_to_num(values)
            ax.fill_between(frame.ends, base, top, facecolor=STATUS_COLOURS[status], linewidth=0,
                            hatch="///" if status == "unavailable" else None, edgecolor="#ffffff",
                            label=labels[status])
            base = top
        ax.set_ylim(0, max(1.0, float(base.max())))
        ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        _thousands(ax)
        frame.axis.apply(ax, max_ticks=8)
        ax.set_xlabel(frame.axis.label)
        ax.set_ylabel("stations")
        fig.legend(loc="outside upper center", ncols=len(layers), title="station status on the map")

    return _render("city-status-mix", "Stations by status over simulated time: available, in use, unavailable",
                   (_WIDTH, 3.2), draw)


def city_queue(city: Mapping[str, Any] | None) -> str | None:
    """``metrics.city``: drivers queueing at each bucket's end (line); balks and gave-ups per bucket (steps).

    Gave-ups (drivers who left the queue) stack on balks (drivers who saw
    the queue and left) when the series is there. None when neither the
    queue nor the balks are there.
    """
    frame = _City.read(city)
    if frame is None:
        return None
    queue, balks, gave_up = frame.values("queue"), frame.values("balks"), frame.values("gave_up")
    if queue is None and balks is None:
        return None
    per = _duration(frame.bucket)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        edges = np.asarray([*frame.t, frame.ends[-1]])
        base = np.zeros(len(frame.t))
        if balks is not None:
            base = np.nan_to_num(balks)
            ax.stairs(base, edges, fill=True, color=_ORANGE, alpha=0.75, label=f"balked (per {per})")
        if gave_up is not None and np.nansum(gave_up) > 0:
            ax.stairs(base + np.nan_to_num(gave_up), edges, baseline=base, fill=True, color=_PURPLE, alpha=0.75,
                      label=f"gave up waiting (per {per})")
        if queue is not None:
            ax.plot(frame.ends, queue, color=_BLUE, label="queueing (at the bucket's end)")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        _thousands(ax)
        frame.axis.apply(ax, max_ticks=8)
        ax.set_xlabel(frame.axis.label)
        ax.set_ylabel("drivers")
        fig.legend(loc="outside upper center", ncols=3)

    return _render("city-queue", "Drivers queueing, balking and giving up over simulated time", (_WIDTH, 3.0), draw)


def city_energy(city: Mapping[str, Any] | None) -> str | None:
    """``metrics.city``: energy delivered since the start (kWh, cumulative), from 0 at the start."""
    frame = _City.read(city)
    if frame is None:
        return None
    energy = frame.values("energy_kwh")
    if energy is None:
        return None
    x, y = np.asarray([0.0, *frame.ends]), np.asarray([0.0, *energy])

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        ax.fill_between(x, 0, y, color=_GREEN, alpha=0.2, linewidth=0)
        ax.plot(x, y, color=_GREEN)
        last = y[~np.isnan(y)]
        if last.size:
            ax.annotate(f"{last[-1]:,.0f} kWh", (x[~np.isnan(y)][-1], last[-1]), xytext=(-4, 4),
                        textcoords="offset points", ha="right", va="bottom")
        ax.set_ylim(bottom=0)
        _thousands(ax)
        frame.axis.apply(ax, max_ticks=8)
        ax.set_xlabel(frame.axis.label)
        ax.set_ylabel("energy delivered (kWh)")

    return _render("city-energy", "Energy delivered over simulated time, cumulative, in kWh", (_WIDTH, 2.8), draw)


def city_timeline(city: Mapping[str, Any] | None) -> str | None:
    """``metrics.city.timeline``: faults, repairs and maintenance as markers on the simulated time axis.

    One row per station when at most 12 stations appear, else one row per
    kind; marker and colour by kind, with a legend. Entries the run did not
    keep (``timeline_dropped``) are noted. None when the timeline is empty.
    """
    frame = _City.read(city)
    if frame is None:
        return None
    events = _events(frame.data.get("timeline"))
    if not events:
        return None
    dropped = frame.data.get("timeline_dropped")
    by_station = len({station for _, _, station in events}) <= 12
    rows = sorted({station if by_station else kind for _, kind, station in events},
                  key=_natural if by_station else _kind_order)
    span = max(frame.ends[-1], max(t for t, _, _ in events))
    axis = _TimeAxis(span, frame.axis.start)

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot()
        for kind in sorted({kind for _, kind, _ in events}, key=_kind_order):
            label, marker, colour = _KINDS.get(kind, (kind, ".", _BLACK))
            picked = [(t, rows.index(station if by_station else kind)) for t, k, station in events if k == kind]
            ax.plot([t for t, _ in picked], [row for _, row in picked], linestyle="none", marker=marker,
                    color=colour, markersize=6, label=_plain(label))
        ax.set_yticks(range(len(rows)), [_plain(r if by_station else _KINDS.get(r, (r,))[0]) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="y", visible=False)
        axis.apply(ax, max_ticks=8)
        ax.set_xlabel(axis.label)
        ax.set_ylabel("station" if by_station else "")
        fig.legend(loc="outside upper center", ncols=4)
        if isinstance(dropped, int) and dropped > 0:
            entries = "entry" if dropped == 1 else "entries"
            fig.text(0.99, 0.01, f"{dropped:,} later {entries} not kept by the run", ha="right", va="bottom",
                     color=_GREY)

    return _render("city-timeline", "Faults, repairs and maintenance over simulated time",
                   (_WIDTH, 1.6 + 0.22 * len(rows)), draw)


# --- rendering --------------------------------------------------------------------------------


def _render(name: str, title: str, size: tuple[float, float], draw: Callable[[Figure], None]) -> str:
    """Draw a figure of ``size`` inches with the report's settings and return it as inline SVG."""
    buffer = io.StringIO()
    with _LOCK, style.context(["default", _RC]):
        fig = Figure(figsize=size, layout=ConstrainedLayoutEngine(w_pad=_PAD, h_pad=_PAD))
        FigureCanvasSVG(fig)
        draw(fig)
        fig.savefig(buffer, format="svg", metadata=_METADATA)
    return _inline(buffer.getvalue(), name=name, title=title)


def _inline(raw: str, *, name: str, title: str) -> str:
    """matplotlib's SVG document made a small element of an HTML page (module docstring).

    Ids nothing refers to go, the others become the figure's prefix and a
    number; groups left without attributes are dissolved, whitespace
    between elements dropped, coordinates rounded to 0.1 of a point (0.02 % of the width);
    ``xlink:href`` becomes SVG 2's ``href``.
    """
    prefix = f"ct-{name}-{hashlib.sha256((title + raw).encode()).hexdigest()[:8]}"
    root = ElementTree.fromstring(raw)
    wanted = {ref for elem in root.iter() for value in elem.attrib.values() for ref in _URL.findall(value)}
    wanted.update(elem.attrib[_XLINK_HREF][1:] for elem in root.iter() if _XLINK_HREF in elem.attrib)
    _tidy(root, _Ids(prefix, wanted))
    view_box = root.get("viewBox", "")
    root.attrib.clear()
    root.attrib.update({"xmlns": _SVG, "id": prefix, "viewBox": view_box, "width": "100%", "role": "img",
                        "aria-label": title})
    caption = ElementTree.Element("title")
    caption.text = title
    root.insert(0, caption)
    for sheet in root.iter("style"):
        sheet.text = f"#{prefix} {sheet.text}"
    return ElementTree.tostring(root, encoding="unicode")


class _Ids:
    """The ids an SVG refers to, renamed ``<prefix>-<n>`` in order of first sight."""

    def __init__(self, prefix: str, wanted: set[str]) -> None:
        self.prefix = prefix
        self.wanted = wanted
        self.names: dict[str, str] = {}

    def __getitem__(self, ident: str) -> str:
        return self.names.setdefault(ident, f"{self.prefix}-{len(self.names)}")


def _tidy(elem: ElementTree.Element, ids: _Ids) -> None:
    """:func:`_inline`'s rewriting of ``elem`` and, recursively, of its children (tags lose their namespace)."""
    elem.tag = elem.tag.rpartition("}")[2]
    ident = elem.attrib.pop("id", None)
    if ident in ids.wanted:
        elem.set("id", ids[ident])
    href = elem.attrib.pop(_XLINK_HREF, None)
    if href is not None:
        elem.set("href", f"#{ids[href[1:]]}")
    for key, value in elem.attrib.items():
        value = _URL.sub(lambda m: f"url(#{ids[m.group(1)]})", value)
        elem.set(key, " ".join(_DECIMALS.sub(_round, value).split()) if key in {"d", "x", "y"} else value)
    if elem.tag not in _TEXTUAL and elem.text is not None and not elem.text.strip():
        elem.text = None
    children: list[ElementTree.Element] = []
    for child in elem:
        _tidy(child, ids)
        child.tail = None
        bare_group = child.tag == "g" and not child.attrib
        children.extend(list(child) if bare_group else [child])
    elem[:] = children


def _round(number: re.Match[str]) -> str:
    text = f"{float(number.group(0)):.1f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _grid_size(panels: int) -> tuple[float, float]:
    return _WIDTH, 0.8 + 1.7 * math.ceil(panels / 2)


def _grid(fig: Figure, panels: int, *, sharey: bool) -> list[Axes]:
    """``panels`` axes in two columns sharing x (and y if asked); the spare cell of an odd count removed."""
    cols = 1 if panels == 1 else 2
    grid = fig.subplots(math.ceil(panels / cols), cols, sharex=True, sharey=sharey, squeeze=False)
    cells: list[Axes] = list(grid.flat)
    for spare in cells[panels:]:
        spare.remove()
    return cells[:panels]


def _label_outer(axes: Sequence[Axes], *, xlabel: str, ylabel: str) -> None:
    """x tick labels and label on each column's lowest panel; y label on the left column's."""
    cols = 1 if len(axes) == 1 else 2
    for i, ax in enumerate(axes):
        bottom = i + cols >= len(axes)
        ax.tick_params(labelbottom=bottom)
        ax.set_xlabel(xlabel if bottom else "")
        if i % cols == 0:
            ax.set_ylabel(ylabel)


def _thousands(ax: Axes) -> None:
    """y tick labels with thousands separators (14,000), fractions as they are (0.5)."""
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:,.10g}"))


def _plain(text: str) -> str:
    """Data-borne text drawn as is: a ``$`` would otherwise start mathtext."""
    return text.replace("$", r"\$")


# --- time axes --------------------------------------------------------------------------------


class _TimeAxis:
    """Simulated seconds from 0 to ``span_s`` on x: clock time from ``start``, else h:mm since the start."""

    def __init__(self, span_s: float, start: datetime | None) -> None:
        self.span_s = span_s if span_s > 0 else 60.0
        self.start = start

    @property
    def label(self) -> str:
        if self.start is None:
            return "simulated time since the start (h:mm)"
        offset = self.start.strftime("%z")
        zone = f", UTC{offset[:3]}:{offset[3:]}" if offset else ""
        return f"simulated time ({self.start:%Y-%m-%d}{zone})"

    def apply(self, ax: Axes, *, max_ticks: int) -> None:
        ax.set_xlim(0, self.span_s)
        ax.xaxis.set_major_locator(ticker.FixedLocator(self.ticks(max_ticks)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda t, _pos: self.text(t)))

    def ticks(self, max_ticks: int) -> list[float]:
        """Round clock times (or elapsed times), at most about ``max_ticks`` of them."""
        step = next((float(s) for s in _TICK_STEPS_S if self.span_s / s <= max_ticks),
                    86400.0 * math.ceil(self.span_s / max_ticks / 86400))
        offset = 0.0
        if self.start is not None:
            offset = self.start.hour * 3600.0 + self.start.minute * 60.0 + self.start.second
        first = math.ceil(offset / step) * step - offset
        return [first + i * step for i in range(int((self.span_s - first) // step) + 1)]

    def text(self, t: float) -> str:
        if self.start is None:
            minutes = round(t / 60)
            return f"{minutes // 60}:{minutes % 60:02d}"
        moment = self.start + timedelta(seconds=round(t))
        return f"{moment:%m-%d %H:%M}" if self.span_s > 86400 else f"{moment:%H:%M}"


def _parse_start(start: object) -> datetime | None:
    if not isinstance(start, str):
        return None
    try:
        return datetime.fromisoformat(start)
    except ValueError:
        return None


def _duration(seconds: float) -> str:
    if seconds < 60 or seconds % 60:
        return f"{seconds:g} s"
    return f"{seconds / 60:g} min" if seconds < 3600 or seconds % 3600 else f"{seconds / 3600:g} h"


# --- reading the results ----------------------------------------------------------------------


class _City:
    """``metrics.city``'s buckets: their starts ``t``, ends (the state series' times) and time axis."""

    def __init__(self, data: Mapping[str, Any], bucket: float, t: list[float]) -> None:
        self.data = data
        self.bucket = bucket
        self.t = t
        self.ends = np.asarray(t) + bucket
        self.axis = _TimeAxis(float(self.ends[-1]), _parse_start(data.get("start")))

    @classmethod
    def read(cls, city: Mapping[str, Any] | None) -> _City | None:
        if not isinstance(city, Mapping):
            return None
        bucket, t = _positive(city.get("bucket_s")), _numbers(city.get("t_sim"))
        return cls(city, bucket, t) if bucket is not None and t else None

    def values(self, key: str, within: Mapping[str, Any] | None = None) -> np.ndarray[Any, Any] | None:
        """The series ``key`` (of ``within``, else the city) as one value per bucket, NaN where missing."""
        values = _optional_numbers((self.data if within is None else within).get(key))
        if not values:
            return None
        return _fit(values, len(self.t))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: object) -> float | None:
    if not isinstance(value, int | float) or not _is_number(value) or value <= 0:
        return None
    return float(value)


def _numbers(value: object) -> list[float] | None:
    """A list of finite numbers, else None."""
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        return None
    return [float(v) for v in value]


def _optional_numbers(value: object) -> list[float | None] | None:
    """A list of finite numbers and nulls, else None."""
    if not isinstance(value, list) or not all(v is None or _is_number(v) for v in value):
        return None
    return [None if v is None else float(v) for v in value]


def _fit(values: Sequence[float | None], length: int) -> np.ndarray[Any, Any]:
    """``values`` cut or padded with NaN to ``length``, nulls as NaN."""
    out = np.full(length, np.nan)
    kept = values[:length]
    out[:len(kept)] = [np.nan if v is None else v for v in kept]
    return out


def _percentiles(series: object, length: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    """A latency's p50 and p99 per bucket (NaN without samples), or None when it has none."""
    if not isinstance(series, Mapping):
        return None
    p50, p99 = _optional_numbers(series.get("p50")), _optional_numbers(series.get("p99"))
    if p50 is None or p99 is None:
        return None
    pair = _fit(p50, length), _fit(p99, length)
    return None if np.isnan(pair[0]).all() and np.isnan(pair[1]).all() else pair


def _events(timeline: object) -> list[tuple[float, str, str]]:
    """The timeline's well-formed entries as (t_sim, kind, station id)."""
    if not isinstance(timeline, list):
        return []
    return [(float(e["t_sim"]), str(e.get("kind")), str(e.get("station_id")))
            for e in timeline if isinstance(e, Mapping) and _is_number(e.get("t_sim"))]


# --- pieces of the plots ----------------------------------------------------------------------


_KINDS: Final = {
    "fault": ("fault", "X", _RED),
    "repair": ("repair", "o", _GREEN),
    "maintenance_start": ("maintenance starts", ">", _BLUE),
    "maintenance_started": ("maintenance starts", ">", _BLUE),
    "maintenance_end": ("maintenance ends", "<", _SKY),
    "maintenance_ended": ("maintenance ends", "<", _SKY),
}
"""Timeline kind -> (legend label, marker, colour); other kinds are drawn as black dots under their own name."""


def _kind_order(kind: str) -> tuple[int, str]:
    order = list(_KINDS)
    return (order.index(kind), kind) if kind in _KINDS else (len(order), kind)


def _natural(text: str) -> list[tuple[int, int | str]]:
    """Sort key putting S2 before S10."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text) if part]


def _latency_panel(ax: Axes, x: np.ndarray[Any, Any], p50: np.ndarray[Any, Any], p99: np.ndarray[Any, Any],
                   name: str) -> None:
    for values, dashes, marker in ((p50, "-", "o"), (p99, "--", "^")):
        shown = np.where(values > 0, values, 0.05)  # 0.0 ms (rounded) sits at the axis' bottom, not off it
        shown[np.isnan(values)] = np.nan
        ax.plot(x, shown, color=_BLUE, linestyle=dashes)
        alone = _lone(shown)
        if alone.any():
            ax.plot(x[alone], shown[alone], color=_BLUE, linestyle="none", marker=marker, markersize=3)
    ax.set_title(_plain(name))


def _lone(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Where a value has no neighbour to draw a line to."""
    present = ~np.isnan(values)
    before = np.concatenate([[False], present[:-1]])
    after = np.concatenate([present[1:], [False]])
    result: np.ndarray[Any, Any] = present & ~before & ~after
    return result


def _log_ms_limits(ax: Axes, values: np.ndarray[Any, Any]) -> None:
    """Log y from the decade below the least value to the one above the greatest (two labelled ticks at least)."""
    shown = values[~np.isnan(values)]
    low = math.floor(math.log10(max(float(shown.min()), 0.05)))
    high = max(low + 1, math.ceil(math.log10(max(float(shown.max()), 0.05))))
    ax.set_yscale("log")
    ax.set_ylim(10.0**low, 10.0**high)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_locator(ticker.NullLocator())  # decades and the grid suffice; minor ticks doubled the size


def _ms_ticks(low: float, high: float) -> list[float]:
    return [v for v in (0.1, 1, 10, 100, 1_000, 10_000, 60_000, 600_000) if low <= v <= high]


def _ms_label(ms: float, _pos: int | None = None) -> str:
    if ms < 1_000:
        return f"{ms:g} ms"
    return f"{ms / 1_000:g} s" if ms < 60_000 else f"{ms / 60_000:g} min"


def _coarsen(counts: Sequence[float], factor: int, length: int) -> np.ndarray[Any, Any]:
    """Counts summed over ``factor`` buckets, padded with zeros to ``length`` points."""
    padded = np.zeros(length * factor)
    padded[:len(counts)] = counts[:length * factor]
    summed: np.ndarray[Any, Any] = padded.reshape(length, factor).sum(axis=1)
    return summed


def _hop_title(hop: str, h: Mapping[str, Any], counted: float, rates: np.ndarray[Any, Any]) -> str:
    """The hop, its messages and its peak rate (the results' own, per ``bucket_s``, when there)."""
    total, peak = _positive(h.get("total")), _positive(h.get("peak"))
    peak_value = peak if peak is not None else float(rates.max(initial=0.0))
    return f"{_plain(hop)}: {total if total is not None else counted:,.0f} messages, peak {peak_value:g}/s"
