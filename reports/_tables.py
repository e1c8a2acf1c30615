"""The report's tables of figures: checks, latency, capacity, the model's KPIs, and the key figures.

Each function reads one part of results.json's ``metrics`` and returns
:class:`Table` s of text, ready for the template; a part missing from the
file gives no table (the template says so), a figure missing from a part
shows as an em dash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ._format import MISSING, duration, is_number, mapping, number, percent
from ._words import SpecRef, spec_ref

__all__ = [
    "PERCENTILES",
    "CheckRow",
    "Table",
    "capacity_tables",
    "check_rows",
    "key_figures",
    "latency_table",
    "model_tables",
]

PERCENTILES: Final = ("count", "mean", "p10", "p50", "p90", "p95", "p99", "max")

_END_TO_END: Final = "end to end"
"""The ``kind`` of an end-to-end latency in ``metrics.latency_descriptions`` (the others are "hop")."""

_UNDESCRIBED: Final = ("This results file does not describe its latencies (it has no "
                       "metrics.latency_descriptions): the rows are in the file's order.")

_FACTS: Final = (0, 1)
"""Two-column tables of figures and values: values are often compound ("3 / 1"), left-aligned."""


@dataclass(frozen=True, slots=True)
class Table:
    """A table of text: the first column names the row (a row header); ``text`` columns align left, others right."""

    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str | None = None
    text: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One check of the run: what it asserts, how much it judged, what it found."""

    name: str
    description: str | None
    spec: SpecRef | None
    checked: str
    violations: int
    kept: int

    @property
    def passed(self) -> bool:
        return self.violations == 0


def check_rows(checks: Sequence[Mapping[str, Any]], *, spec_url: str | None = None) -> tuple[CheckRow, ...]:
    """Every check, in the order of results.json."""
    return tuple(CheckRow(c["name"], _str(c.get("description")), spec_ref(_str(c.get("spec")), spec_url),
                          number(c["checked"]), c["violations"], len(c.get("examples") or ())) for c in checks)


def latency_table(latency_ms: Any, descriptions: Any = None) -> Table | None:
    """Percentiles per latency name (wall milliseconds): hops first, then end to end, else in the file's order.

    ``descriptions`` is ``metrics.latency_descriptions``: per name, its
    ``kind`` ("hop" or "end to end") and ``description`` (what is measured,
    from -> to). Files written before it show both as an em dash.
    """
    if not isinstance(latency_ms, Mapping) or not latency_ms:
        return None
    words = {name: _latency_words(descriptions, name) for name in latency_ms}
    names = sorted(latency_ms, key=lambda name: words[name][0] == _END_TO_END)
    rows = tuple((name, *words[name], *_percentiles(latency_ms[name], digits=1)) for name in names)
    return Table("Latency percentiles (wall milliseconds)", ("latency", "kind", "from → to", *PERCENTILES), rows,
                 None if isinstance(descriptions, Mapping) else _UNDESCRIBED, text=(0, 1, 2))


def _latency_words(descriptions: Any, name: str) -> tuple[str, str]:
    """The kind of latency ``name`` and what it measures, from ``metrics.latency_descriptions``."""
    entry = mapping(mapping(descriptions).get(name))
    return _str(entry.get("kind")) or MISSING, _str(entry.get("description")) or MISSING


def _percentiles(stats: Any, *, digits: int = 2) -> tuple[str, ...]:
    stats = stats if isinstance(stats, Mapping) else {}
    return tuple(number(stats.get(p), 0 if p == "count" else digits) for p in PERCENTILES)


def capacity_tables(metrics: Mapping[str, Any]) -> tuple[Table, ...]:
    """Messages per second per hop, sockets, the gateway's counters, clock lag and the CMS backlog."""
    tables = [_throughput(metrics.get("throughput"), metrics.get("messages_per_hop")), _run(metrics),
              _sockets(metrics.get("apps"), metrics.get("gateway")), _lag(metrics)]
    return tuple(t for t in tables if t is not None)


def _throughput(throughput: Any, per_hop: Any) -> Table | None:
    hops = throughput.get("hops") if isinstance(throughput, Mapping) else None
    if isinstance(hops, Mapping) and hops:
        rows = tuple((hop, *(number(s.get(k)) for k in ("total", "mean", "p50", "p99", "peak")))
                     for hop, s in hops.items() if isinstance(s, Mapping))
        bucket = number(throughput.get("bucket_s"))
        return Table(f"Messages per second per hop (buckets of {bucket} wall s)",
                     ("hop", "messages", "mean/s", "p50/s", "p99/s", "peak/s"), rows)
    if isinstance(per_hop, Mapping) and per_hop:
        return Table("Messages per hop", ("hop", "messages"), tuple((h, number(n)) for h, n in per_hop.items()))
    return None


def _run(metrics: Mapping[str, Any]) -> Table | None:
    rows = [("messages checked", number(metrics.get("messages_checked"))),
            ("messages per wall second", number(metrics.get("messages_per_second"), 1)),
            ("wall time (checks excluded)", duration(metrics.get("wall_seconds")))]
    if all(value == MISSING for _, value in rows):
        return None
    return Table("The run", ("figure", "value"), tuple(rows), text=_FACTS)


def _sockets(apps: Any, gateway: Any) -> Table | None:
    apps, gateway = mapping(apps), mapping(gateway)
    if not apps and not gateway:
        return None
    closes = apps.get("closes")
    close_text = ", ".join(f"{code}: {number(n)}" for code, n in closes.items()) \
        if isinstance(closes, Mapping) and closes else MISSING
    rows = (("app sockets opened", number(apps.get("sockets_opened"))),
            ("app sockets open at the peak", number(apps.get("peak_sockets_open"))),
            ("app sockets open at the end", number(apps.get("sockets_open"))),
            ("close codes the apps saw", close_text),
            ("dropped slow clients (gateway)", number(gateway.get("dropped_slow_clients"))),
            ("Redis messages received (gateway)", number(gateway.get("messages_received"))),
            ("forwarded to sockets", number(gateway.get("messages_forwarded"))),
            ("for no connected socket", number(gateway.get("messages_unrouted"))),
            ("invalid, not forwarded", number(gateway.get("messages_invalid"))),
            ("Redis reconnects", number(gateway.get("redis_reconnects"))),
            ("starts accepted / refused", _pair(apps, "starts_accepted", "starts_refused")),
            ("stops accepted / refused", _pair(apps, "stops_accepted", "stops_refused")),
            ("request errors (apps)", number(apps.get("request_errors"))))
    return Table("Sockets, the gateway and the apps", ("figure", "value"), rows, text=_FACTS)


def _lag(metrics: Mapping[str, Any]) -> Table | None:
    lag, backlog = metrics.get("clock_lag_s"), metrics.get("cms_event_backlog")
    rows = []
    if isinstance(lag, Mapping):
        rows.append(("clock lag (ms)", *_percentiles(_scaled(lag, 1000.0))))
    if isinstance(backlog, Mapping):
        rows.append(("CMS event backlog (events)", *_percentiles(backlog, digits=1)))
    if not rows:
        return None
    note = None
    if isinstance(backlog, Mapping):
        note = (f"CMS events still queued when the model froze: {number(backlog.get('at_end'))}; "
                f"when the checks began: {number(backlog.get('after_settle'))} (above 0, the stack could not keep up).")
    return Table("How far the run fell behind", ("measure", *PERCENTILES), tuple(rows), note)


def _scaled(stats: Mapping[str, Any], factor: float) -> dict[str, Any]:
    return {k: (v * factor if is_number(v) and k != "count" else v) for k, v in stats.items()}


def model_tables(model: Any) -> tuple[Table, ...]:
    """The model's KPIs (``metrics.model``): sessions, drivers, energy, faults; utilisation per hour."""
    if not isinstance(model, Mapping) or not model:
        return ()
    sessions, waits = mapping(model.get("sessions")), mapping(model.get("waits_s"))
    rows = (("sessions started / completed / running at the end",
             f"{number(sessions.get('started'))} / {number(sessions.get('completed'))} / "
             f"{number(sessions.get('in_progress_at_end'))}"),
            ("peak concurrent sessions", number(model.get("peak_concurrent_sessions"))),
            ("energy delivered (kWh)", number(model.get("energy_delivered_kwh"), 1)),
            ("drivers arriving", number(model.get("arrivals"))),
            ("balked (left a full station)", f"{number(model.get('balks'))} ({percent(model.get('balk_share'))})"),
            ("gave up waiting", number(model.get("gave_up"))),
            ("wait before plugging in: p50 / p90 / max",
             " / ".join(duration(waits.get(p)) for p in ("p50", "p90", "max"))),
            ("faults / repairs / sessions ended by a fault",
             f"{number(model.get('faults'))} / {number(model.get('repairs'))} / "
             f"{number(model.get('sessions_ended_by_fault'))}"),
            ("maintenance windows", number(model.get("maintenance_windows"))),
            ("apps opened / open at the peak", _pair(model, "apps_opened", "peak_apps_open")))
    tables = [Table("The model's key figures", ("figure", "value"), rows, text=_FACTS)]
    hours = model.get("utilisation_by_hour")
    if isinstance(hours, Mapping) and hours:
        tables.append(Table("Connector utilisation by hour", ("hour", "utilisation"),
                            tuple((str(h), percent(u)) for h, u in hours.items())))
    return tuple(tables)


def key_figures(results: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The handful of figures under the verdict: how much, how fast, how busy."""
    metrics = mapping(results.get("metrics"))
    latency, model = mapping(metrics.get("latency_ms")), mapping(metrics.get("model"))
    descriptions = metrics.get("latency_descriptions")
    figures = [("messages checked", number(metrics.get("messages_checked"))),
               ("messages per second", number(metrics.get("messages_per_second"), 1))]
    for name, stats in latency.items():
        if _latency_words(descriptions, name)[0] == _END_TO_END and isinstance(stats, Mapping):
            figures.append((f"{name} p50 / p99", f"{number(stats.get('p50'), 1)} / {number(stats.get('p99'), 1)} ms"))
    sessions = mapping(model.get("sessions"))
    if model:
        figures.append(("sessions started", number(sessions.get("started"))))
        figures.append(("energy delivered", f"{number(model.get('energy_delivered_kwh'), 1)} kWh"))
    return tuple(figures)


def _pair(part: Mapping[str, Any], first: str, second: str) -> str:
    return f"{number(part.get(first))} / {number(part.get(second))}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
