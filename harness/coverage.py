"""A run's spec coverage: every item the contracts know, against what the trace exercised.

:func:`coverage` counts, in one pass over a run's trace records, how many
records are each :class:`~chargetwin.contracts.coverage.SpecItem` and how
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
from .invariants import CheckResult
from .trace import TraceRecord

__all__ = ["STATES", "coverage"]

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
            return None
        return self._events.pop(request_id, None)


def _invalid_marks(schema_result: CheckResult) -> tuple[frozenset[int], frozenset[int]]:
    """Lines of the records with a violation; for records not read from a file (line 0), their ids."""
    lines: set[int] = set()
    objects: set[int] = set()
    for violation in schema_result.violations:
        for record in violation.records[:1]:
            if record.line:
                lines.add(record.line)
            else:
                objects.add(id(record))
    return frozenset(lines), frozenset(objects)


def _tally(records: Iterable[TraceRecord], schema_result: CheckResult) -> tuple[dict[str, int], dict[str, int], int]:
    """One pass: records per item key, invalid records per item key, records of no item."""
    seen = {item.key: 0 for item in SPEC_ITEMS}
    invalid = dict(seen)
    unmatched = 0
    lines, objects = _invalid_marks(schema_result)
    key_of_record = _Items().of
    for record in records:
        key = key_of_record(record)
        if key is None:
            unmatched += 1
            continue
        seen[key] += 1
        if (lines or objects) and (record.line in lines if record.line else id(record) in objects):
            invalid[key] += 1
    return seen, invalid, unmatched


def _state(seen: int, invalid: int, *, observed: bool) -> str:
    if not observed:
        return "not observed"
    if invalid:
        return "violations"
    return "valid" if seen else "never seen"


def coverage(records: Iterable[TraceRecord], schema_result: CheckResult, *,
             heartbeat: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The ``coverage`` object of results.json: every spec item with its counts and state.

    ``records``: every trace record of the run, in trace order (read once:
    a stream will do). ``schema_result``: the ``schema_and_rules`` result
    over the same records; a record is invalid when any of its violations
    points at its line (records not read from a file, line 0: at the record
    itself), counted once however many violations it has. ``heartbeat``:
    pings the apps received and pongs they sent (``{"ping": n, "pong": n}``);
    None when the run could not count them: the heartbeat items are then
    ``not observed``. Records of no item (unknown channel, type, event,
    status, close code, OCPP action, an answer whose request is not in the
    trace) count in ``unmatched``.
    """
    seen, invalid, unmatched = _tally(records, schema_result)
    if heartbeat is not None:
        for name, key in HEARTBEAT_KEYS.items():
            seen[key] = int(heartbeat.get(name, 0))
    items: list[dict[str, Any]] = []
    for item in SPEC_ITEMS:
        observed = heartbeat is not None or item.key not in _HEARTBEAT
        items.append({"key": item.key, "group": item.group, "label": item.label, "spec": item.spec,
                      "seen": seen[item.key], "invalid": invalid[item.key],
                      "state": _state(seen[item.key], invalid[item.key], observed=observed)})
    states = Counter(entry["state"] for entry in items)
    summary = {"items": len(items)} | {state: states[state] for state in STATES}
    return {"items": items, "unmatched": unmatched, "summary": summary}
