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

:func:`latency_summary` gives percentiles per name (``chargetwin.twin.model.kpi.percentiles``).
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from ..twin.model.kpi import percentiles
from .trace import TraceRecord

__all__ = ["LATENCIES", "latencies", "latency_summary"]

LATENCIES = ("rest.start", "rest.stop", "ocpp.call", "gateway.push", "e2e.start_to_session_started",
             "e2e.meter_values_to_app")


def _key(message: Any) -> str:
    return json.dumps(message, sort_keys=True, separators=(",", ":"))


def latencies(records: Iterable[TraceRecord]) -> dict[str, list[float]]:
    """Every measured latency (ms) by name, in trace order."""
    found: dict[str, list[float]] = {name: [] for name in LATENCIES}
    rest: dict[tuple[int | None, str], deque[float]] = defaultdict(deque)
    calls: dict[tuple[str, str], float] = {}
    published: dict[tuple[str, str], float] = {}
    starts: dict[int | None, deque[float]] = defaultdict(deque)
    meters: dict[tuple[Any, Any], float] = {}
    for r in records:
        message = r.message
        if r.hop == "app-backend":
            _rest(r, rest, found, starts)
        elif r.hop == "ocpp" and isinstance(message, list) and len(message) >= 3:
            _ocpp(r, message, calls, meters, found)
        elif r.hop == "redis" and r.channel.startswith("redis:user:"):
            user = r.channel.split(":")[2]
            published.setdefault((user, _key(message)), r.t_wall)
        elif r.hop == "gateway-app" and r.direction == "receive" and isinstance(message, dict):
            sent = published.get((str(r.user_id), _key(message)))
            if sent is not None:
                found["gateway.push"].append((r.t_wall - sent) * 1000)
            _app_message(r, message, starts, meters, found)
    return found


def _rest(r: TraceRecord, rest: dict[tuple[int | None, str], deque[float]], found: dict[str, list[float]],
          starts: dict[int | None, deque[float]]) -> None:
    name = {"backend:/api/charging/start": "rest.start", "backend:/api/charging/stop": "rest.stop"}.get(r.channel)
    if name is None:
        return
    if r.direction == "request":
        rest[r.user_id, name].append(r.t_wall)
        if name == "rest.start":
            starts[r.user_id].append(r.t_wall)
    elif rest[r.user_id, name]:
        found[name].append((r.t_wall - rest[r.user_id, name].popleft()) * 1000)


def _ocpp(r: TraceRecord, frame: list[Any], calls: dict[tuple[str, str], float],
          meters: dict[tuple[Any, Any], float], found: dict[str, list[float]]) -> None:
    kind, unique = frame[0], str(frame[1])
    if kind == 2:
        calls[r.channel, unique] = r.t_wall
        if frame[2] == "MeterValues" and len(frame) > 3 and isinstance(frame[3], dict):
            payload = frame[3]
            for sample in payload.get("meterValue", []):
                meters.setdefault((payload.get("transactionId"), sample.get("timestamp")), r.t_wall)
    elif kind in (3, 4) and (r.channel, unique) in calls:
        found["ocpp.call"].append((r.t_wall - calls.pop((r.channel, unique))) * 1000)


def _app_message(r: TraceRecord, message: dict[str, Any], starts: dict[int | None, deque[float]],
                 meters: dict[tuple[Any, Any], float], found: dict[str, list[float]]) -> None:
    event = message.get("event")
    if event == "session_started" and starts[r.user_id]:
        found["e2e.start_to_session_started"].append((r.t_wall - starts[r.user_id].popleft()) * 1000)
    elif event == "meter_value":
        data = message.get("data") or {}
        sampled = meters.get((message.get("transaction_id"), data.get("timestamp")))
        if sampled is not None:
            found["e2e.meter_values_to_app"].append((r.t_wall - sampled) * 1000)


def latency_summary(records: Iterable[TraceRecord]) -> dict[str, dict[str, float | int]]:
    """Percentiles (ms) of every latency of :data:`LATENCIES`."""
    return {name: percentiles(values, digits=1) for name, values in latencies(records).items()}
