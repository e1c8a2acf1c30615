"""Key figures of a run, computed from the event stream.

:class:`KpiCollector` is a sink: subscribe it to a :class:`World` before the
run, call :meth:`KpiCollector.result` after it. Figures count from
``warmup`` seconds on (the run's ``warmup``), so that a run can start from
an empty network and still report steady-state figures; peaks of
concurrency (sessions, open apps) are over the whole run.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from . import events as ev
from .world import World

__all__ = ["OCCUPIED", "KpiCollector", "percentiles"]

OCCUPIED = frozenset({"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing"})
"""Connector statuses in which a car is plugged in."""


def percentiles(values: Sequence[float], *, digits: int = 2) -> dict[str, float | int]:
    """count, mean, p10, p50, p90, p95, p99 and max of ``values`` (zeros when empty)."""
    if not values:
        return {"count": 0, "mean": 0.0, "p10": 0.0, "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], digits)

    return {"count": len(ordered), "mean": round(statistics.fmean(ordered), digits), "p10": at(0.10),
            "p50": at(0.50), "p90": at(0.90), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], digits)}


class KpiCollector:
    """Counts, energies, durations, waits, utilisation and app use of one run."""

    def __init__(self, world: World) -> None:
        self._world = world
        self._warmup = world.scenario.run.warmup
        self._kind = {cp.id: cp.kind for cp in world.charge_points.values()}
        self._connectors = sum(1 for _ in world.network.connectors())
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.MeterSample: self._sample,
            ev.ConnectorStatusChanged: self._status,
            ev.TransactionStarted: self._started,
            ev.TransactionStopped: self._stopped,
            ev.PlugIn: self._plug_in,
            ev.Arrival: self._count("arrivals"),
            ev.Balk: self._count("balks"),
            ev.Fault: self._count("faults"),
            ev.Repair: self._count("repairs"),
            ev.MaintenanceStarted: self._count("maintenance_windows"),
            ev.Departure: self._departure,
            ev.AppOpened: self._app_opened,
            ev.AppClosed: self._app_closed,
        }
        self.counts: dict[str, int] = defaultdict(int)
        self._active = 0
        self._peak = 0
        self._apps_open = 0
        self._peak_apps_open = 0
        self._samples = 0
        self._starts: dict[int, tuple[float, str]] = {}
        self._energy: dict[str, list[float]] = {"AC": [], "DC": []}
        self._durations: dict[str, list[float]] = {"AC": [], "DC": []}
        self._plugged: dict[str, list[float]] = {"AC": [], "DC": []}
        self._waits: list[float] = []
        self._occupied_since: dict[tuple[str, int], float] = {}
        self._busy_by_hour: dict[int, float] = defaultdict(float)
        self._plugged_area = 0.0  # integral of cars plugged in over time, after the warmup
        self._plug_ins_after_warmup = 0
        self._sojourns_after_warmup: list[float] = []

    def __call__(self, event: ev.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _count(self, name: str) -> Callable[[ev.Event], None]:
        def count(event: ev.Event) -> None:
            if event.t >= self._warmup:
                self.counts[name] += 1
        return count

    def _sample(self, event: ev.MeterSample) -> None:
        self._samples += 1

    def _started(self, event: ev.TransactionStarted) -> None:
        self._starts[event.session_id] = (event.t, self._kind[event.charge_point_id])
        self._active += 1
        self._peak = max(self._peak, self._active)
        if event.t >= self._warmup:
            self.counts["sessions_started"] += 1

    def _stopped(self, event: ev.TransactionStopped) -> None:
        self._active -= 1
        started, kind = self._starts.pop(event.session_id)
        if started < self._warmup:
            return
        self.counts["sessions_completed"] += 1
        self.counts["energy_wh"] += event.energy_wh
        self._energy[kind].append(event.energy_wh / 1000.0)
        self._durations[kind].append((event.t - started) / 60.0)
        if event.error_code is not None:
            self.counts["sessions_ended_by_fault"] += 1

    def _plug_in(self, event: ev.PlugIn) -> None:
        if event.t >= self._warmup:
            self._waits.append(event.waited)
            self._plug_ins_after_warmup += 1

    def _departure(self, event: ev.Departure) -> None:
        if event.t >= self._warmup and event.reason == "gave_up":
            self.counts["gave_up"] += 1

    def _app_opened(self, event: ev.AppOpened) -> None:
        """Count an app opened, and whether it is a browse (asked of the world as the event is published)."""
        self._apps_open += 1
        self._peak_apps_open = max(self._peak_apps_open, self._apps_open)
        if event.t >= self._warmup:
            self.counts["apps_opened"] += 1
            if self._world.is_browsing(event.user_id):
                self.counts["browses"] += 1

    def _app_closed(self, event: ev.AppClosed) -> None:
        self._apps_open -= 1

    def _status(self, event: ev.ConnectorStatusChanged) -> None:
        key = (event.charge_point_id, event.connector_id)
        now_occupied, was_occupied = event.status in OCCUPIED, event.previous in OCCUPIED
        if now_occupied and not was_occupied:
            self._occupied_since[key] = event.t
        elif was_occupied and not now_occupied:
            since = self._occupied_since.pop(key)
            self._add_occupancy(since, event.t)
            self._plugged[self._kind[event.charge_point_id]].append((event.t - since) / 60.0)
            if since >= self._warmup:
                self._sojourns_after_warmup.append(event.t - since)

    def _add_occupancy(self, since: float, until: float) -> None:
        """Add the plugged-in interval to the busy time of each run hour it covers."""
        self._plugged_area += max(0.0, until - max(since, self._warmup))
        t = since
        while t < until:
            hour = int(t // 3600)
            end = min(until, (hour + 1) * 3600.0)
            self._busy_by_hour[hour] += end - t
            t = end

    def result(self) -> dict[str, Any]:
        """Every figure as JSON-ready data; call it once, after the run."""
        world = self._world
        now = world.env.now
        for since in self._occupied_since.values():
            self._add_occupancy(since, now)
        self._occupied_since.clear()
        in_progress = [world.sample(s, now).energy_wh for s in world.sessions.values()
                       if s.started >= self._warmup]
        window = max(now - self._warmup, 1e-9)
        arrivals = self.counts["arrivals"]
        mean_sojourn = statistics.fmean(self._sojourns_after_warmup) if self._sojourns_after_warmup else 0.0
        start = world.scenario.run.start
        return {
            "sessions": {"started": self.counts["sessions_started"], "completed": self.counts["sessions_completed"],
                         "in_progress_at_end": len(world.sessions),
                         "by_kind": {k: len(v) for k, v in self._energy.items()}},
            "energy_delivered_kwh": round((self.counts["energy_wh"] + sum(in_progress)) / 1000.0, 3),
            "arrivals": arrivals,
            "balks": self.counts["balks"],
            "gave_up": self.counts["gave_up"],
            "balk_share": round(self.counts["balks"] / arrivals, 4) if arrivals else 0.0,
            "waits_s": percentiles(self._waits, digits=1),
            "peak_concurrent_sessions": self._peak,
            "utilisation_by_hour": {
                (start + timedelta(hours=h)).isoformat(timespec="minutes"):
                    round(busy / (self._connectors * min(3600.0, now - h * 3600.0)), 4)
                for h, busy in sorted(self._busy_by_hour.items()) if h * 3600 < now},
            "faults": self.counts["faults"],
            "repairs": self.counts["repairs"],
            "sessions_ended_by_fault": self.counts["sessions_ended_by_fault"],
            "maintenance_windows": self.counts["maintenance_windows"],
            "apps_opened": self.counts["apps_opened"],
            "peak_apps_open": self._peak_apps_open,
            "browses": self.counts["browses"],
            "energy_per_session_kwh": {k: percentiles(v) for k, v in self._energy.items()},
            "session_duration_min": {k: percentiles(v, digits=1) for k, v in self._durations.items()},
            "plugged_duration_min": {k: percentiles(v, digits=1) for k, v in self._plugged.items()},
            "meter_samples": self._samples,
            "littles_law": {
                "mean_cars_plugged_in": round(self._plugged_area / window, 3),
                "plug_ins_per_hour": round(self._plug_ins_after_warmup / window * 3600.0, 3),
                "mean_plugged_hours": round(mean_sojourn / 3600.0, 4),
            },
        }
