"""Latencies of a run, in wall milliseconds, read off the trace.

Each figure pairs two records the taps wrote (their ``t_wall``):

==================================  ===============================================================
name                                from -> to
==================================  ===============================================================
``rest.start``, ``rest.stop``       an app's REST request -> its response (per user, in order)
``ocpp.call``                       an OCPP CALL -> the CALLRESULT/CALLERROR with its uniqueId
``gateway.push``                    a Redis publish on ``user:U:*`` -> the same message on a socket of U
``e2e.start_to_session_started``    an app's start request -> the first ``session_started`` on its sockets
``e2e.meter_values_to_app``         a charge point's MeterValues -> the app's ``meter_value`` of that
                                    transaction and timestamp
==================================  ===============================================================

:func:`latency_samples` yields each pair once it is complete, with the
``t_sim`` of the record that completed it (for latency over simulated time,
:mod:`.series`); :func:`latencies` groups them by name and
:func:`latency_summary` gives percentiles per name
(``chargetwin.twin.model.kpi.percentiles``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import suppress
from typing import Any, NamedTuple

from ..twin.model.kpi import percentiles
from ._access import fingerprint
from .trace import TraceRecord

__all__ = ["LATENCIES", "LatencySample", "latencies", "latency_samples", "latency_summary"]

LATENCIES = ("rest.start", "rest.stop", "ocpp.call", "gateway.push", "e2e.start_to_session_started",
             "e2e.meter_values_to_app")

_REST = {"backend:/api/charging/start": "rest.start", "backend:/api/charging/stop": "rest.stop"}


class LatencySample(NamedTuple):
    """One measured latency: its name (of :data:`LATENCIES`), when it completed (``t_sim``), how long (ms)."""

    name: str
    t_sim: float
    ms: float


def _key(message: Any) -> bytes:
    return fingerprint(message)


class _Pairs:
    """The open halves of every pair; :meth:`feed` takes records in trace order, returns completed pairs."""

    def __init__(self) -> None:
        self.rest: dict[tuple[int | None, str], deque[float]] = defaultdict(deque)
        self.calls: dict[tuple[str, str], float] = {}
        self.published: dict[tuple[str, bytes], float] = {}
        self.starts: dict[int | None, deque[float]] = defaultdict(deque)
        self.meters: dict[tuple[Any, Any], float] = {}

    def feed(self, r: TraceRecord) -> list[tuple[str, float]]:
        """(name, ms) of each pair ``r`` completes, and note ``r`` as the first half of later ones."""
        message = r.message
        if r.hop == "app-backend":
            return self._rest(r)
        if r.hop == "ocpp" and isinstance(message, list) and len(message) >= 3:
            return self._ocpp(r, message)
        if r.hop == "redis" and r.channel.startswith("redis:user:"):
            user = r.channel.split(":")[2]
            self.published.setdefault((user, _key(message)), r.t_wall)
        elif r.hop == "gateway-app" and r.direction == "receive" and isinstance(message, dict):
            sent = self.published.get((str(r.user_id), _key(message)))
            pushed = [] if sent is None else [("gateway.push", (r.t_wall - sent) * 1000)]
            return pushed + self._app_message(r, message)
        return []

    def _rest(self, r: TraceRecord) -> list[tuple[str, float]]:
        name = _REST.get(r.channel)
        if name is None:
            return []
        pending = self.rest[r.user_id, name]
        if r.direction == "request":
            pending.append(r.t_wall)
            if name == "rest.start":
                self.starts[r.user_id].append(r.t_wall)
            return []
        if not pending:
            return []
        requested = pending.popleft()
        if name == "rest.start" and r.status != 200:
            # A refused start leads to no session_started: it must not pair with the user's next one.
            with suppress(ValueError):
                self.starts[r.user_id].remove(requested)
        return [(name, (r.t_wall - requested) * 1000)]

    def _ocpp(self, r: TraceRecord, frame: list[Any]) -> list[tuple[str, float]]:
        kind, unique = frame[0], str(frame[1])
        if kind == 2:
            self.calls[r.channel, unique] = r.t_wall
            if frame[2] == "MeterValues" and len(frame) > 3 and isinstance(frame[3], dict):
                payload = frame[3]
                for sample in payload.get("meterValue", []):
                    self.meters.setdefault((payload.get("transactionId"), sample.get("timestamp")), r.t_wall)
        elif kind in (3, 4) and (r.channel, unique) in self.calls:
            return [("ocpp.call", (r.t_wall - self.calls.pop((r.channel, unique))) * 1000)]
        return []

    def _app_message(self, r: TraceRecord, message: dict[str, Any]) -> list[tuple[str, float]]:
        event = message.get("event")
        if event == "session_started" and self.starts[r.user_id]:
            return [("e2e.start_to_session_started", (r.t_wall - self.starts[r.user_id].popleft()) * 1000)]
        if event == "meter_value":
            data = message.get("data") or {}
            sampled = self.meters.get((message.get("transaction_id"), data.get("timestamp")))
            if sampled is not None:
                return [("e2e.meter_values_to_app", (r.t_wall - sampled) * 1000)]
        return []


def latency_samples(records: Iterable[TraceRecord]) -> Iterator[LatencySample]:
    """Every measured latency, in trace order of the record that completes its pair (whose ``t_sim`` it has)."""
    pairs = _Pairs()
    for r in records:
        for name, ms in pairs.feed(r):
            yield LatencySample(name, r.t_sim, ms)


def latencies(records: Iterable[TraceRecord], *, samples: Iterable[LatencySample] | None = None,
              ) -> dict[str, list[float]]:
    """Every measured latency (ms) by name, in trace order (of ``samples`` when given: the records' samples)."""
    found: dict[str, list[float]] = {name: [] for name in LATENCIES}
    for sample in latency_samples(records) if samples is None else samples:
        found[sample.name].append(sample.ms)
    return found


def latency_summary(records: Iterable[TraceRecord], *, samples: Iterable[LatencySample] | None = None,
                    ) -> dict[str, dict[str, float | int]]:
    """Percentiles (ms) of every latency of :data:`LATENCIES` (``samples``: as for :func:`latencies`)."""
    return {name: percentiles(values, digits=1) for name, values in latencies(records, samples=samples).items()}
