"""A run's spec coverage: every item the contracts know, against what the trace exercised.

:class:`Coverage`, the pipeline's consumer, counts as the records pass how
many are each :class:`~chargetwin.contracts.coverage.SpecItem` and how
many of those broke the contracts (per the ``schema_and_rules`` check's
result), and says of each item whether the run saw it valid, saw it with
violations, never saw it, or could not observe it. The result is the
``coverage`` object of ``results.json`` (docs/results-format.md).

Pairing: an OCPP CALLRESULT names no action, and the backend's answer to a
CMS event names no event; each is paired with its request as the records
pass (the OCPP uniqueId on the same charge point's channel; the
``request_id`` the HTTP tap gives a request and its response).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ..contracts.catalog import CMS_EVENTS_CHANNEL
from ..contracts.coverage import HEARTBEAT_KEYS, OCPP_ROUTE, SPEC_ITEMS, key_of, route_of
from .checks import CheckResult, InvariantViolation
from .pipeline import Consumer, Found
from .trace import TraceRecord

__all__ = ["STATES", "Coverage", "coverage"]

STATES: Final = ("valid", "violations", "never seen", "not observed")
"""What a run says of an item: seen and all valid; seen with violations; not seen; no way to see it."""

_HEARTBEAT: Final = frozenset(HEARTBEAT_KEYS.values())


class _Items:
    """The item key of each record in trace order (:meth:`of`), pairing answers with their requests.

    OCPP CALLs wait by (channel, uniqueId), CMS events by request id, until
    their answer comes. The copies of a fan-out (one message object on many
    records of a route) are looked up once.
    """

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], str] = {}
        self._events: dict[str, str] = {}
        self._last: dict[str | None, tuple[Any, str, int | None, str | None]] = {}

    def of(self, record: TraceRecord) -> str | None:
        route, message, direction, status = route_of(record.channel), record.message, record.direction, record.status
        if route == OCPP_ROUTE:
            return key_of(route, direction, status, message, answers=self._ocpp(record.channel, message))
        if route == CMS_EVENTS_CHANNEL:
            return key_of(route, direction, status, message, answers=self._cms_event(record))
        last = self._last.get(route)
        if last is not None and last[0] is message and last[1] == direction and last[2] == status:
            return last[3]
        key = key_of(route, direction, status, message)
        self._last[route] = (message, direction, status, key)
        return key

    def _ocpp(self, channel: str, frame: Any) -> str | None:
        """Note a CALL's action; the action of the CALL a CALLRESULT or CALLERROR answers (else None)."""
        if type(frame) is not list or len(frame) < 3 or type(frame[1]) is not str:
            return None
        kind = frame[0]
        if kind == 2:
            if type(frame[2]) is str:
                self._calls[channel, frame[1]] = frame[2]
                _bound(self._calls)
            return None
        return self._calls.pop((channel, frame[1]), None) if kind in (3, 4) else None

    def _cms_event(self, record: TraceRecord) -> str | None:
        """Note an event by its request id; the event a response answers (else None)."""
        request_id, message = record.request_id, record.message
        if request_id is None:
            return None
        if record.direction == "request":
            event = message.get("event") if type(message) is dict else None
            if type(event) is str:
                self._events[request_id] = event
                _bound(self._events)
            return None
        return self._events.pop(request_id, None)


_MAX_WAITING: Final = 4096
"""Requests waiting for their answer; past it the oldest is forgotten (an answer never came)."""


def _bound(waiting: dict[Any, Any]) -> None:
    while len(waiting) > _MAX_WAITING:
        del waiting[next(iter(waiting))]


class Coverage(Consumer):
    """The pipeline's coverage consumer: each record's item, and whether the contracts found it broken.

    A record is invalid when ``schema_and_rules`` reports a violation of it
    (the pipeline hands a record's violations over right after the
    record), counted once however many it has. Pings and pongs an app saw
    (``websocket`` records of direction ``ping`` / ``pong``) count as the
    heartbeat items; ``heartbeat_observed=False`` (a capture that could not
    see them) shows those items ``not observed`` unless one is seen.
    """

    def __init__(self, *, heartbeat_observed: bool = True) -> None:
        self.seen = {item.key: 0 for item in SPEC_ITEMS}
        self.invalid = dict(self.seen)
        self.unmatched = 0
        self.heartbeat_observed = heartbeat_observed
        self._items = _Items()
        self._current: tuple[TraceRecord, str] | None = None
        self._marked: TraceRecord | None = None

    def on_record(self, record: TraceRecord) -> Found:
        if record.hop == "twin":
            return None
        if record.channel == "websocket" and record.direction in HEARTBEAT_KEYS:
            self.seen[HEARTBEAT_KEYS[record.direction]] += 1
            self.heartbeat_observed = True
            return None
        key = self._items.of(record)
        if key is None:
            self.unmatched += 1
            self._current = None
            return None
        self.seen[key] += 1
        self._current = (record, key)
        return None

    def on_violation(self, violation: InvariantViolation) -> None:
        current = self._current
        if (current is None or violation.check != "schema_and_rules" or not violation.records
                or violation.records[0] is not current[0] or self._marked is current[0]):
            return
        self._marked = current[0]
        self.invalid[current[1]] += 1

    def result(self) -> dict[str, Any]:
        """The ``coverage`` object of results.json: every spec item with its counts and state."""
        items: list[dict[str, Any]] = []
        for item in SPEC_ITEMS:
            observed = self.heartbeat_observed or item.key not in _HEARTBEAT
            seen, invalid = self.seen[item.key], self.invalid[item.key]
            items.append({"key": item.key, "group": item.group, "label": item.label, "spec": item.spec,
                          "seen": seen, "invalid": invalid, "state": _state(seen, invalid, observed=observed)})
        states = Counter(entry["state"] for entry in items)
        summary = {"items": len(items)} | {state: states[state] for state in STATES}
        return {"items": items, "unmatched": self.unmatched, "summary": summary}


def _state(seen: int, invalid: int, *, observed: bool) -> str:
    if not observed:
        return "not observed"
    if invalid:
        return "violations"
    return "valid" if seen else "never seen"


def coverage(records: Iterable[TraceRecord], schema_result: CheckResult, *,
             heartbeat: Mapping[str, int] | None = None) -> dict[str, Any]:
    """:class:`Coverage` over a finished list of records, given the ``schema_and_rules`` result over them.

    A record is invalid when one of ``schema_result``'s violations points at
    it: at its line, or, for records not read from a file (line 0), at the
    record itself. ``heartbeat`` adds pings the apps received and pongs they
    sent (``{"ping": n, "pong": n}``); without it and without ping records
    the heartbeat items are ``not observed``.
    """
    lines = {v.records[0].line for v in schema_result.violations if v.records and v.records[0].line}
    objects = {id(v.records[0]) for v in schema_result.violations if v.records and not v.records[0].line}
    counter = Coverage(heartbeat_observed=heartbeat is not None)
    for record in records:
        counter.on_record(record)
        current = counter._current
        if current is not None and (record.line in lines if record.line else id(record) in objects):
            counter.invalid[current[1]] += 1
    for name, key in HEARTBEAT_KEYS.items():
        counter.seen[key] += int((heartbeat or {}).get(name, 0))
    return counter.result()
