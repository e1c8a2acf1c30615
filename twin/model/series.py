"""The city over simulated time: sessions, connectors, stations, queues, energy, faults.

:class:`CitySeries` is a sink, like :class:`~.kpi.KpiCollector`: make it and
subscribe it to a :class:`World` before the run (at t = 0), call
:meth:`CitySeries.result` after it (``metrics.city``,
``docs/results-format.md``). Simulated time is cut into buckets of
``bucket_s`` seconds from the run's start; the bucket of an event is
``floor(t / bucket_s)``, so that these series line up with
``metrics.latency_over_time``.

- State series (sessions active, connectors and stations by status, cars
  queueing) hold the state at the end of each bucket: after every event of
  the bucket. The last bucket may be partial: it ends at ``world.env.now``.
- Count series (arrivals, balks, drivers who gave up, sessions started)
  count the events of each bucket.
- ``energy_kwh`` is the energy delivered since the run's start, up to the
  end of each bucket: stopped transactions' energy, plus that of running
  ones as their meters last reported it (what a central system knows). The
  last value is exact, read off the sessions as the KPIs do.
- The timeline lists faults, repairs and maintenance windows' starts and ends,
  the first ``timeline_limit`` of them.

Connector statuses fall in the classes of
:data:`chargetwin.contracts.status.CONNECTOR_CLASS` and stations take the
status of :func:`chargetwin.contracts.status.station_status` (DESIGN ruling
3), so that these series count what the map shows. Every event costs O(1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from chargetwin.contracts.status import CONNECTOR_CLASS, station_status

from . import events as ev
from .world import World

__all__ = ["CONNECTOR_SERIES", "SERIES_POINTS", "TIMELINE_LIMIT", "CitySeries", "default_bucket"]

SERIES_POINTS: Final = 60
"""About this many buckets over a run (see :func:`default_bucket`)."""

TIMELINE_LIMIT: Final = 500
"""At most this many timeline entries by default; later ones are only counted."""

CONNECTOR_SERIES: Final = {"available": "available", "in_use": "occupied", "unavailable": "out_of_service"}
"""Connector class (``CONNECTOR_CLASS``) -> name of its series under ``connectors``."""

_STATE: Final = ("sessions_active", "connectors_available", "connectors_occupied", "connectors_out_of_service",
                 "stations_available", "stations_in_use", "stations_unavailable", "queue", "energy_wh")
_COUNTS: Final = ("arrivals", "balks", "gave_up", "sessions_started")


def default_bucket(duration_s: float) -> float:
    """Seconds per bucket: ``duration_s`` / 60 rounded up to whole minutes, at least 60 s.

    A 15-minute run gets 1-minute buckets, 5 hours 5 minutes, a day 24
    minutes: about :data:`SERIES_POINTS` points whatever the run's length.
    The same rule as the harness's latency over time, so that both align.
    """
    return 60.0 * max(1, math.ceil(duration_s / 60 / SERIES_POINTS))


@dataclass(slots=True)
class _Station:
    """Connectors of one station by class, whether it is under maintenance, and its map status."""

    total: int
    by_class: dict[str, int]
    under_maintenance: bool
    status: str = ""

    def map_status(self) -> str:
        return station_status(available=self.by_class["available"], total=self.total,
                              unavailable=self.by_class["unavailable"], under_maintenance=self.under_maintenance)


class CitySeries:
    """Sessions, connectors, stations, queue, arrivals, balks and energy per bucket, and a timeline.

    ``bucket_s`` defaults to :func:`default_bucket` of the scenario's
    duration. The initial state is read off the world when the series is
    made (connector statuses, stations under maintenance, running sessions,
    drivers queueing): make it and subscribe it at once. ValueError when
    ``bucket_s`` is not positive or ``timeline_limit`` is negative.
    """

    def __init__(self, world: World, *, bucket_s: float | None = None,
                 timeline_limit: int = TIMELINE_LIMIT) -> None:
        bucket = default_bucket(world.scenario.run.duration) if bucket_s is None else float(bucket_s)
        if not bucket > 0 or math.isinf(bucket):
            raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")
        if timeline_limit < 0:
            raise ValueError(f"timeline_limit must be 0 or more, not {timeline_limit!r}")
        self._world = world
        self._bucket = bucket
        self._timeline_limit = timeline_limit
        self._index = 0
        self._edge = bucket
        self._counts = dict.fromkeys(_COUNTS, 0)
        self._series: dict[str, list[float]] = {name: [] for name in (*_STATE, *_COUNTS)}
        self._timeline: list[dict[str, Any]] = []
        self._dropped = 0
        self._read_world(world)
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.ConnectorStatusChanged: self._status,
            ev.TransactionStarted: self._started,
            ev.TransactionStopped: self._stopped,
            ev.Arrival: self._arrival,
            ev.PlugIn: self._left_queue,
            ev.Balk: self._balk,
            ev.Departure: self._departure,
            ev.Fault: self._fault,
            ev.Repair: self._repair,
            ev.MaintenanceStarted: self._maintenance_started,
            ev.MaintenanceEnded: self._maintenance_ended,
        }

    def _read_world(self, world: World) -> None:
        """The state before any event: statuses, maintenance, sessions and queues as the world has them."""
        self._connectors = dict.fromkeys(CONNECTOR_SERIES, 0)
        self._stations: dict[str, _Station] = {}
        self._mix = {"available": 0, "in_use": 0, "unavailable": 0}
        for station in world.network.stations:
            classes = [CONNECTOR_CLASS[c.status] for cp in station.charge_points for c in cp.connectors]
            state = _Station(len(classes), {name: classes.count(name) for name in CONNECTOR_SERIES},
                             station.under_maintenance)
            state.status = state.map_status()
            self._mix[state.status] += 1
            for name in CONNECTOR_SERIES:
                self._connectors[name] += state.by_class[name]
            self._stations[station.id] = state
        now = world.env.now
        self._meter_wh = {s.id: world.sample(s, now).energy_wh for s in world.sessions.values()}
        self._running_wh = sum(self._meter_wh.values())
        self._stopped_wh = 0
        self._waiting = {w.driver.user_id for s in world.network.stations for w in s.queue}

    # --- the stream ---------------------------------------------------------------------

    def __call__(self, event: ev.Event) -> None:
        if event.t >= self._edge:
            self._advance(math.floor(event.t / self._bucket))
        if type(event) is ev.MeterSample:  # most events: inlined, no handler call
            meter = self._meter_wh
            self._running_wh += event.energy_wh - meter[event.session_id]
            meter[event.session_id] = event.energy_wh
            return
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _advance(self, index: int) -> None:
        """Close the buckets before ``index`` (quiet ones repeat the state, with zero counts)."""
        while self._index < index:
            self._append(self._state(self._stopped_wh + self._running_wh), self._counts)
            self._counts = dict.fromkeys(_COUNTS, 0)
            self._index += 1
        self._edge = (self._index + 1) * self._bucket

    def _append(self, state: dict[str, float], counts: dict[str, int]) -> None:
        for name, value in state.items():
            self._series[name].append(value)
        for name, count in counts.items():
            self._series[name].append(count)

    def _state(self, energy_wh: float) -> dict[str, float]:
        return {"sessions_active": len(self._meter_wh),
                **{f"connectors_{CONNECTOR_SERIES[name]}": n for name, n in self._connectors.items()},
                **{f"stations_{name}": n for name, n in self._mix.items()},
                "queue": len(self._waiting), "energy_wh": energy_wh}

    def _started(self, event: ev.TransactionStarted) -> None:
        self._meter_wh[event.session_id] = 0
        self._counts["sessions_started"] += 1

    def _stopped(self, event: ev.TransactionStopped) -> None:
        self._running_wh -= self._meter_wh.pop(event.session_id)
        self._stopped_wh += event.energy_wh

    def _status(self, event: ev.ConnectorStatusChanged) -> None:
        if event.connector_id == 0:
            return  # the charging point's own status, not a connector's
        old, new = CONNECTOR_CLASS[event.previous], CONNECTOR_CLASS[event.status]
        if old == new:
            return
        self._connectors[old] -= 1
        self._connectors[new] += 1
        station = self._stations[event.station_id]
        station.by_class[old] -= 1
        station.by_class[new] += 1
        self._restatus(station)

    def _restatus(self, station: _Station) -> None:
        status = station.map_status()
        if status != station.status:
            self._mix[station.status] -= 1
            self._mix[status] += 1
            station.status = status

    # --- drivers: a driver queues from their arrival at a station to plugging in or balking ----------

    def _arrival(self, event: ev.Arrival) -> None:
        self._waiting.add(event.user_id)
        self._counts["arrivals"] += 1

    def _left_queue(self, event: ev.PlugIn) -> None:
        self._waiting.discard(event.user_id)

    def _balk(self, event: ev.Balk) -> None:
        self._waiting.discard(event.user_id)
        self._counts["balks"] += 1

    def _departure(self, event: ev.Departure) -> None:
        self._waiting.discard(event.user_id)
        if event.reason == "gave_up":
            self._counts["gave_up"] += 1

    # --- faults and maintenance ---------------------------------------------------------

    def _fault(self, event: ev.Fault) -> None:
        self._note(event.t, "fault", event.station_id, event.charge_point_id, event.error_code)

    def _repair(self, event: ev.Repair) -> None:
        self._note(event.t, "repair", event.station_id, event.charge_point_id, None)

    def _maintenance_started(self, event: ev.MaintenanceStarted) -> None:
        self._maintain(event.station_id, under=True)
        self._note(event.t, "maintenance_start", event.station_id, None, event.reason)

    def _maintenance_ended(self, event: ev.MaintenanceEnded) -> None:
        self._maintain(event.station_id, under=False)
        self._note(event.t, "maintenance_end", event.station_id, None, None)

    def _maintain(self, station_id: str, *, under: bool) -> None:
        station = self._stations[station_id]
        station.under_maintenance = under
        self._restatus(station)

    def _note(self, t: float, kind: str, station_id: str, charge_point_id: str | None, detail: str | None) -> None:
        if len(self._timeline) >= self._timeline_limit:
            self._dropped += 1
            return
        self._timeline.append({"t_sim": round(t, 1), "kind": kind, "station_id": station_id,
                              "charge_point_id": charge_point_id, "detail": detail})

    # --- the result ---------------------------------------------------------------------

    def result(self) -> dict[str, Any]:
        """Every series as JSON-ready data, up to ``world.env.now``.

        Call it after the run; between steps it is fine too (the series then
        end at that time, and go on afterwards).
        """
        now = self._world.env.now
        buckets = max(1, math.ceil(now / self._bucket))
        self._advance(buckets - 1)
        series = {name: list(values) for name, values in self._series.items()}
        final = self._state(self._stopped_wh + self._exact_running_wh(now))
        if len(series["queue"]) < buckets:
            for name, value in (final | self._counts).items():
                series[name].append(value)
        else:  # an event at exactly ``now``, on a bucket's edge (a command between steps): the last bucket's
            for name, value in final.items():
                series[name][-1] = value
            for name, count in self._counts.items():
                series[name][-1] += count
        return self._shape(series)

    def _exact_running_wh(self, now: float) -> float:
        world = self._world
        return sum(world.sample(s, now).energy_wh for s in world.sessions.values())

    def _shape(self, series: dict[str, list[float]]) -> dict[str, Any]:
        bucket = self._bucket
        return {
            "bucket_s": bucket,
            "start": self._world.scenario.run.start.isoformat(),
            "t_sim": [round(i * bucket, 3) for i in range(len(series["queue"]))],
            "sessions_active": series["sessions_active"],
            "connectors": {"total": sum(s.total for s in self._stations.values()),
                           **{name: series[f"connectors_{name}"] for name in CONNECTOR_SERIES.values()}},
            "stations": {"total": len(self._stations),
                         **{name: series[f"stations_{name}"] for name in self._mix}},
            "queue": series["queue"],
            "arrivals": series["arrivals"],
            "balks": series["balks"],
            "gave_up": series["gave_up"],
            "sessions_started": series["sessions_started"],
            "energy_kwh": [round(wh / 1000.0, 3) for wh in series["energy_wh"]],
            "timeline": list(self._timeline),
            "timeline_dropped": self._dropped,
        }
