"""The simulated city in numbers (``metrics.city``), so that the report reads without its plots.

State series (sessions, connectors, stations, queue, energy) hold the state
at the end of each bucket of simulated time; count series (arrivals, balks,
gave up) count the events of each bucket. The table samples a few bucket
ends across the run; its counts add up everything since the previous row,
so that the column totals are the run's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ._format import MISSING, clock, is_number, number
from ._tables import Table

__all__ = ["SAMPLES", "TIMELINE_KINDS", "City", "city"]

SAMPLES: Final = 8
"""Rows of the city table (bucket ends spread evenly over the run, the last one included)."""

TIMELINE_KINDS: Final = {
    "fault": "fault",
    "repair": "repair",
    "maintenance_started": "maintenance starts",
    "maintenance_start": "maintenance starts",
    "maintenance_ended": "maintenance ends",
    "maintenance_end": "maintenance ends",
}

_COLUMNS: Final = ("until", "sessions active", "connectors available", "occupied", "out of service",
                   "stations available", "in use", "unavailable", "queueing", "arrivals", "balks", "gave up",
                   "energy (kWh)")


@dataclass(frozen=True, slots=True)
class City:
    """``present`` is false when results.json has no ``metrics.city``."""

    present: bool
    start: str | None = None
    samples: Table | None = None
    highlights: Table | None = None
    timeline: Table | None = None
    timeline_kinds: tuple[tuple[str, int], ...] = ()


def city(document: Any, *, duration_s: Any = None) -> City:
    """The city's tables from ``metrics.city`` (``docs/results-format.md``)."""
    if not isinstance(document, Mapping):
        return City(False)
    start = document.get("start") if isinstance(document.get("start"), str) else None
    return City(True, start, _samples(document, start, duration_s), _highlights(document, start),
                *_timeline(document, start))


def _series(document: Mapping[str, Any], *path: str) -> list[Any]:
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, list) else []


def _at(values: Sequence[Any], index: int) -> Any:
    return values[index] if 0 <= index < len(values) else None


def _sum(values: Sequence[Any], after: int, upto: int) -> Any:
    chunk = [v for v in values[after + 1: upto + 1] if is_number(v)]
    return sum(chunk) if chunk else None


def _samples(document: Mapping[str, Any], start: str | None, duration_s: Any) -> Table | None:
    t_sim = _series(document, "t_sim")
    if not t_sim:
        return None
    last = len(t_sim) - 1
    picks = sorted({round(i * last / (SAMPLES - 1)) for i in range(SAMPLES)}) if last else [0]
    bucket = document.get("bucket_s")
    state = [_series(document, "sessions_active"), *(_series(document, "connectors", k) for k in
             ("available", "occupied", "out_of_service")), *(_series(document, "stations", k) for k in
             ("available", "in_use", "unavailable")), _series(document, "queue")]
    counts = [_series(document, k) for k in ("arrivals", "balks", "gave_up")]
    energy = _series(document, "energy_kwh")
    rows = []
    for before, index in zip([-1, *picks], picks, strict=False):
        end = _bucket_end(_at(t_sim, index), bucket, duration_s)
        rows.append((clock(start, end), *(number(_at(s, index)) for s in state),
                     *(number(_sum(c, before, index)) for c in counts), number(_at(energy, index), 1)))
    totals = (f"{number(_total(document, 'connectors'))} connectors, {number(_total(document, 'stations'))} stations; "
              f"state at each time shown, counts since the row before, energy since the start.")
    return Table("The city over the run", _COLUMNS, tuple(rows), totals)


def _bucket_end(t_sim: Any, bucket: Any, duration_s: Any) -> Any:
    if not is_number(t_sim) or not is_number(bucket):
        return t_sim
    end = t_sim + bucket
    return min(end, duration_s) if is_number(duration_s) and duration_s > t_sim else end


def _total(document: Mapping[str, Any], key: str) -> Any:
    part = document.get(key)
    return part.get("total") if isinstance(part, Mapping) else None


def _highlights(document: Mapping[str, Any], start: str | None) -> Table | None:
    t_sim, bucket = _series(document, "t_sim"), document.get("bucket_s")
    rows = []
    for label, values, pick in (("most sessions active", _series(document, "sessions_active"), max),
                                ("fewest connectors available", _series(document, "connectors", "available"), min),
                                ("longest queue", _series(document, "queue"), max)):
        numbers = [(v, i) for i, v in enumerate(values) if is_number(v)]
        if numbers:
            value, index = pick(numbers, key=lambda pair: pair[0])
            rows.append((label, number(value), clock(start, _bucket_end(_at(t_sim, index), bucket, None))))
    for label, key in (("drivers arriving", "arrivals"), ("balked", "balks"), ("gave up", "gave_up")):
        values = [v for v in _series(document, key) if is_number(v)]
        if values:
            rows.append((label, number(sum(values)), "whole run"))
    energy = [v for v in _series(document, "energy_kwh") if is_number(v)]
    if energy:
        rows.append(("energy delivered (kWh)", number(energy[-1], 1), "whole run"))
    return Table("Peaks and totals", ("figure", "value", "when"), tuple(rows), text=(0, 2)) if rows else None


def _timeline(document: Mapping[str, Any], start: str | None) -> tuple[Table | None, tuple[tuple[str, int], ...]]:
    entries = [e for e in _series(document, "timeline") if isinstance(e, Mapping)]
    dropped = document.get("timeline_dropped")
    note = f"{number(dropped)} later events are not listed in the results file." if is_number(dropped) and dropped \
        else None
    kinds: dict[str, int] = {}
    rows = []
    for entry in entries:
        kind = TIMELINE_KINDS.get(str(entry.get("kind")), str(entry.get("kind")))
        kinds[kind] = kinds.get(kind, 0) + 1
        rows.append((clock(start, entry.get("t_sim")), kind, _plain(entry.get("station_id")),
                     _plain(entry.get("charge_point_id")), _plain(entry.get("detail"))))
    if not rows and note is None:
        return None, ()
    return Table("Faults and maintenance", ("time", "event", "station", "charge point", "detail"), tuple(rows),
                 note, text=(0, 1, 2, 3, 4)), tuple(kinds.items())


def _plain(value: Any) -> str:
    return MISSING if value is None else str(value)
