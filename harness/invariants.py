"""Checks over a whole trace: the invariants no single message can show.

Each check is a small pure function over a sequence of :class:`TraceRecord`
(in the trace's order of observation) and, where it needs one, ground truth
from the model passed in as plain data. Each returns a :class:`CheckResult`:
its name, how many things it checked, and the :class:`InvariantViolation` s
found. Every check is one pass over the records (or two), with dict indexes:
no quadratic scans. ``docs/trace-format.md`` says precisely how each check
matches records; the short version is in each docstring.

:func:`run_checks` runs them all, ``schema_and_rules`` (the contracts'
validator over every record) first.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from chargetwin.contracts import UnknownChannelError, Validator, Violation, default_validator

from ._access import (
    SESSION_END_EVENTS,
    as_int,
    as_number,
    canonical,
    data_of,
    describe,
    fingerprint,
    is_session_update,
    is_ws_receive,
    message_dict,
    redis_user,
    route_key,
    session_of,
    successful_start,
)
from ._interning import ByIdentity
from .trace import TraceRecord

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "CheckResult",
    "GroundTruth",
    "InvariantViolation",
    "StationTruth",
    "active_session_restored",
    "causality_and_latency",
    "consistent_across_hops",
    "cost_matches_tariff",
    "energy_matches_model",
    "isolation",
    "map_converges",
    "meters_monotonic",
    "no_message_lost",
    "run_checks",
    "schema_and_rules",
]

CHECK_NAMES: Final = ("schema_and_rules", "causality_and_latency", "consistent_across_hops", "isolation",
                      "meters_monotonic", "energy_matches_model", "cost_matches_tariff", "map_converges",
                      "no_message_lost", "active_session_restored")
"""Every check, in the order :func:`run_checks` runs them (and reports show them)."""

CHECKS: Final[dict[str, tuple[str, str]]] = {
    "schema_and_rules": ("Every message matches its JSON Schema and the semantic and routing rules of its kind.",
                         "Overview"),
    "causality_and_latency": ("Each accepted start is followed by the user's session_started, meter values and "
                              "an end, in order and within the scenario's deadline.",
                              "5. Example 1: Start Charging Flow"),
    "consistent_across_hops": ("A session agrees on every hop: REST answer, Redis message and WebSocket push carry "
                               "the same ids, energy and status.", "3.2 Session Updates Channel"),
    "isolation": ("No socket ever receives another user's session update or notification.",
                  "3. Laravel Backend → Node.js Gateway (Redis Pub/Sub)"),
    "meters_monotonic": ("Meter readings and energy never go backwards within a session.",
                         "5. Example 2: Real-time Meter Value Updates"),
    "energy_matches_model": ("The energy the app is told matches the model's ground truth within a tolerance.",
                             "4.4 Session Update (from Redis)"),
    "cost_matches_tariff": ("cost = energy x tariff in every meter_value update.", "4.4 Session Update (from Redis)"),
    "map_converges": ("Every connected app's map ends on the true station states.",
                      "Charging Station Status Model"),
    "no_message_lost": ("Every Redis message for a user reaches each of that user's connected sockets.",
                        "Redis Channel Summary"),
    "active_session_restored": ("A reopened app is told the session its user has, and no other.",
                                "4.8 Active Session Update (Pushed from Gateway)"),
}
"""Per check: what it asserts, in words, and the section of the protocol document it comes from (for reports)."""

Records = Sequence[TraceRecord]


@dataclass(frozen=True, slots=True)
class InvariantViolation:
    """One way in which a trace breaks one check.

    ``message`` says in words what was wrong; ``hop`` is the hop of the
    offending record (the first of ``records``); ``expected`` and ``actual``
    are values. For ``schema_and_rules``, ``rule``, ``pointer`` and ``spec``
    are the contracts violation's rule, JSON pointer and spec section.
    """

    check: str
    message: str
    hop: str | None
    records: tuple[TraceRecord, ...] = ()
    expected: Any = None
    actual: Any = None
    rule: str | None = None
    pointer: str | None = None
    spec: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: the fields, each record as line, hop, channel, times and message."""
        return {
            "check": self.check, "message": self.message, "hop": self.hop,
            "expected": self.expected, "actual": self.actual, "rule": self.rule, "pointer": self.pointer,
            "spec": self.spec,
            "records": [{"line": r.line, "hop": r.hop, "channel": r.channel, "direction": r.direction,
                         "t_sim": r.t_sim, "t_wall": r.t_wall, "user_id": r.user_id, "socket_id": r.socket_id,
                         "message": r.message} for r in self.records],
        }


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check found: ``checked`` counts the things it judged (records, sessions, deliveries)."""

    name: str
    checked: int
    violations: list[InvariantViolation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "checked": self.checked,
                "violations": [v.to_dict() for v in self.violations]}


@dataclass(frozen=True, slots=True)
class StationTruth:
    """The model's state of one station once the last status change settled."""

    status: str  # "available" | "in_use" | "unavailable" (contracts.status, ruling 3)
    available_connectors: int
    total_connectors: int


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What the model knows, as plain data.

    ``energy_wh``: per session id, the model's session energy in Wh at
    simulated times, as ``(t_sim, wh)`` pairs sorted by time (the curve is
    interpolated linearly between them). ``stations``: per station id, its
    true state at the end of the run. ``tariffs``: per station id, the price
    of one kWh in the station's currency.
    """

    energy_wh: Mapping[int, Sequence[tuple[float, float]]] = field(default_factory=dict)
    stations: Mapping[str, StationTruth] = field(default_factory=dict)
    tariffs: Mapping[str, float] = field(default_factory=dict)


def _violation(check: str, message: str, *records: TraceRecord, expected: Any = None,
               actual: Any = None) -> InvariantViolation:
    return InvariantViolation(check, message, records[0].hop if records else None, records, expected, actual)


# --- schema_and_rules ------------------------------------------------------------------


def schema_and_rules(records: Iterable[TraceRecord], *, validator: Validator | None = None) -> CheckResult:
    """Every record against the contracts (schema, semantic rules, routing): ``chargetwin validate``'s verdict.

    A record on a channel or direction no contract covers (which ``validate``
    reports as unreadable) is a violation with rule ``unknown_channel``.
    ``records`` is read once, so it may be a stream; records sharing one
    message object (a fan-out's copies, see :func:`~.trace.read_trace`) on
    the same kind of route are validated once.
    """
    validator = validator or default_validator()
    verdicts = ByIdentity(lambda message, key: _validate(validator, message, *key))
    found: list[InvariantViolation] = []
    checked = 0
    for record in records:
        checked += 1
        violations = verdicts.get(record.message, (route_key(record.channel), record.channel, record.direction,
                                                   record.status))
        if isinstance(violations, UnknownChannelError):
            found.append(InvariantViolation("schema_and_rules", str(violations), record.hop, (record,),
                                            rule="unknown_channel", pointer=""))
            continue
        for v in violations:
            found.append(InvariantViolation(
                "schema_and_rules", f"{v.rule} at {v.pointer or '(whole message)'}: {v.message}",
                record.hop, (record,), v.expected, v.actual, rule=v.rule, pointer=v.pointer, spec=v.spec))
    return CheckResult("schema_and_rules", checked, found)


def _validate(validator: Validator, message: Any, _route: str, channel: str, direction: str,
              status: int | None) -> list[Violation] | UnknownChannelError:
    try:
        return validator.validate(message, channel=channel, direction=direction, status=status)
    except UnknownChannelError as error:
        return error


# --- causality_and_latency --------------------------------------------------------------


@dataclass(slots=True)
class _SocketSession:
    """What one socket received of one session, by position in the trace."""

    started: int | None = None
    first_meter: int | None = None
    last_meter: int | None = None
    end: int | None = None


def causality_and_latency(records: Records, *, deadline_s: float) -> CheckResult:
    """Each successful start is followed by that user's session_started, meter values, then an end.

    A successful start is a 2xx ``app-backend`` response of
    ``/api/charging/start`` with ``success: true``; its session is
    ``data.session_id``, its user the record's ``user_id``. Latency: the first
    ``session_started`` of that session on any socket of that user must come
    within ``deadline_s`` simulated seconds of the response (missing counts
    only once the trace runs past the deadline; a session that ends with
    ``session_error`` and no ``session_started`` failed after acceptance and
    passes). Order, per socket and session: no ``meter_value`` before
    ``session_started``, no end (stopped/completed/error) before it, no
    ``meter_value`` after the end.
    """
    name = "causality_and_latency"
    starts: dict[tuple[int | None, int], TraceRecord] = {}
    first_started: dict[tuple[int | None, int], TraceRecord] = {}
    first_end: dict[tuple[int | None, int], TraceRecord] = {}
    per_socket: dict[tuple[int | None, int], _SocketSession] = {}
    t_end = 0.0
    for index, record in enumerate(records):
        t_end = max(t_end, record.t_sim)
        started_session = successful_start(record)
        if started_session is not None:
            starts.setdefault((record.user_id, started_session), record)
            continue
        if not (is_ws_receive(record) and is_session_update(record)):
            continue
        session = session_of(record)
        if session is None:
            continue
        event = record.message.get("event")
        user_key = (record.user_id, session)
        seen = per_socket.setdefault((record.socket_id, session), _SocketSession())
        if event == "session_started":
            first_started.setdefault(user_key, record)
            if seen.started is None:
                seen.started = index
        elif event == "meter_value":
            if seen.first_meter is None:
                seen.first_meter = index
            seen.last_meter = index
        elif event in SESSION_END_EVENTS:
            first_end.setdefault(user_key, record)
            if seen.end is None:
                seen.end = index
    found = [v for key, start in starts.items()
             if (v := _latency(name, start, first_started.get(key), first_end.get(key),
                               deadline_s=deadline_s, t_end=t_end)) is not None]
    found.extend(v for (_, session), seen in per_socket.items()
                 for v in _order(name, records, session, seen))
    return CheckResult(name, len(starts), found)


def _latency(name: str, start: TraceRecord, started: TraceRecord | None, end: TraceRecord | None, *,
             deadline_s: float, t_end: float) -> InvariantViolation | None:
    session = successful_start(start)
    if started is not None:
        latency = started.t_sim - start.t_sim
        if latency > deadline_s:
            return _violation(name, f"session {session}: session_started reached user {start.user_id} "
                              f"{latency:g} s after the start response; the deadline is {deadline_s:g} s",
                              started, start, expected=f"<= {deadline_s:g} s", actual=latency)
        return None
    if end is not None:
        if end.message.get("event") == "session_error":
            return None
        return _violation(name, f"session {session} ended ({end.message.get('event')}) without a "
                          f"session_started reaching user {start.user_id}", end, start,
                          expected="session_started first", actual=end.message.get("event"))
    if t_end - start.t_sim > deadline_s:
        return _violation(name, f"session {session}: no session_started reached user {start.user_id} "
                          f"within {deadline_s:g} s of the start response", start,
                          expected="session_started", actual=None)
    return None


def _order(name: str, records: Records, session: int, seen: _SocketSession) -> list[InvariantViolation]:
    found: list[InvariantViolation] = []
    if seen.started is not None and seen.first_meter is not None and seen.first_meter < seen.started:
        found.append(_violation(name, f"session {session}: a meter_value came before session_started",
                                records[seen.first_meter], records[seen.started],
                                expected="session_started", actual="meter_value"))
    if seen.started is not None and seen.end is not None and seen.end < seen.started:
        end = records[seen.end]
        found.append(_violation(name, f"session {session}: {end.message.get('event')} came before "
                                "session_started", end, records[seen.started],
                                expected="session_started", actual=end.message.get("event")))
    if seen.end is not None and seen.last_meter is not None and seen.last_meter > seen.end:
        found.append(_violation(name, f"session {session}: a meter_value came after the session ended",
                                records[seen.last_meter], records[seen.end],
                                expected="no meter_value after the end", actual="meter_value"))
    return found


# --- consistent_across_hops -------------------------------------------------------------

_AGREED_IDS: Final = ("transaction_id", "charger_id", "connector_id")


def _session_ids(record: TraceRecord) -> Mapping[str, Any]:
    """The ids a record states about its session: top level first, then ``data``."""
    message = message_dict(record)
    data = data_of(message)
    return {key: message[key] if message.get(key) is not None else data.get(key) for key in _AGREED_IDS}


def consistent_across_hops(records: Records) -> CheckResult:
    """The same session agrees on every hop: ids, and each WebSocket copy equals its Redis message.

    Ids: per session id (the record's ``session_id``, else the message's, else
    its ``data``'s), the first non-null ``transaction_id``, ``charger_id`` and
    ``connector_id`` seen on any hop (REST responses, Redis, WebSocket) is the
    reference; a different non-null value anywhere is a violation (a start
    response's ``transaction_id: null`` is allowed: the CMS numbers the
    transaction later). Content: a ``session_update`` a socket of user U
    received must equal (whole message: energy, cost, status fields) the one
    published on ``redis:user:U:session_updates`` with the same session,
    event and ``timestamp``; copies with no such publish are not compared.
    """
    name = "consistent_across_hops"
    reference: dict[tuple[int, str], tuple[Any, TraceRecord]] = {}
    published: dict[tuple[int | None, int, Any, Any], list[TraceRecord]] = {}
    found: list[InvariantViolation] = []
    checked = 0
    copies: list[tuple[tuple[int | None, int, Any, Any], TraceRecord]] = []
    for record in records:
        session = session_of(record) if record.hop in ("app-backend", "redis", "gateway-app") else None
        if session is None:
            continue
        checked += 1
        for key, value in _session_ids(record).items():
            if value is None:
                continue
            first = reference.setdefault((session, key), (value, record))
            if first[0] != value:
                found.append(_violation(name, f"session {session}: {key} is {value!r} on {record.hop} but was "
                                        f"{first[0]!r} on {first[1].hop}", record, first[1],
                                        expected=first[0], actual=value))
        if is_session_update(record):
            message = record.message
            user = redis_user(record.channel) if record.hop == "redis" else record.user_id
            content_key = (user, session, message.get("event"), message.get("timestamp"))
            if record.hop == "redis":
                published.setdefault(content_key, []).append(record)
            else:
                copies.append((content_key, record))
    for content_key, copy in copies:
        originals = published.get(content_key)
        if originals and all(original.message != copy.message for original in originals):
            original = originals[0]
            fields = _differing(original.message, copy.message)
            found.append(_violation(name, f"session {content_key[1]}: the {content_key[2]} the app received "
                                    f"differs from the one published on Redis at {', '.join(fields)}",
                                    copy, original, expected={f: _at(original.message, f) for f in fields},
                                    actual={f: _at(copy.message, f) for f in fields}))
    return CheckResult(name, checked, found)


def _differing(a: Any, b: Any, prefix: str = "") -> list[str]:
    """JSON pointers where two messages differ (at most a handful)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out.extend(_differing(a.get(key), b.get(key), f"{prefix}/{key}"))
        return out[:8]
    return [] if a == b else [prefix or "/"]


def _at(message: Any, pointer: str) -> Any:
    for part in pointer.strip("/").split("/"):
        message = message.get(part) if isinstance(message, dict) and part else message
    return message


# --- isolation --------------------------------------------------------------------------

_USER_CONTENT_TYPES: Final = frozenset({"notification", "response", "active_session_update"})


def isolation(records: Records) -> CheckResult:
    """No socket ever receives another user's session update or notification.

    The socket's user is the ``user_id`` of the ``gateway-app`` record
    (records without one are not judged). A session's owner is the user of
    the Redis channel its ``session_update`` s were published on, else the
    ``user_id`` of its successful start response. Judged: ``session_update``
    (its session's owner must be the socket's user); ``notification``,
    ``response`` and ``active_session_update`` (when the identical message was
    published on Redis, one of the channels must be the socket's user's;
    when it names a session with a known owner, that owner must be the
    socket's user); ``connected`` (its ``userId`` is the socket's user).
    """
    name = "isolation"
    owner: dict[int, int] = {}
    published_to: dict[bytes, set[int]] = {}
    for record in records:
        if record.hop == "redis":
            user = redis_user(record.channel)
            message = message_dict(record)
            if user is None:
                continue
            if message.get("type") == "session_update" and (session := session_of(record)) is not None:
                owner.setdefault(session, user)
            elif message.get("type") in _USER_CONTENT_TYPES:
                published_to.setdefault(fingerprint(message), set()).add(user)
        elif (session := successful_start(record)) is not None and record.user_id is not None:
            owner.setdefault(session, record.user_id)
    found: list[InvariantViolation] = []
    checked = 0
    for record in records:
        if not is_ws_receive(record) or record.user_id is None:
            continue
        message = message_dict(record)
        kind = message.get("type")
        if kind not in _USER_CONTENT_TYPES and kind not in ("session_update", "connected"):
            continue
        checked += 1
        problem = _foreign(record, message, owner, published_to)
        if problem is not None:
            found.append(_violation(name, f"socket {record.socket_id} of user {record.user_id} received "
                                    f"{kind} of user {problem}", record, expected=record.user_id,
                                    actual=problem))
    return CheckResult(name, checked, found)


def _foreign(record: TraceRecord, message: Mapping[str, Any], owner: Mapping[int, int],
             published_to: Mapping[bytes, set[int]]) -> int | None:
    """The other user a received message belongs to, or None when it is the socket's user's."""
    user = record.user_id
    kind = message.get("type")
    if kind == "connected":
        stated = as_int(message.get("userId"))
        return stated if stated is not None and stated != user else None
    if kind != "session_update":
        users = published_to.get(fingerprint(message))
        if users is not None and user not in users:
            return min(users)
    session = session_of(record)
    session_owner = owner.get(session) if session is not None else None
    return session_owner if session_owner is not None and session_owner != user else None


# --- meters_monotonic -------------------------------------------------------------------

_MONOTONIC_FIELDS: Final = ("meter_value", "energy_consumed", "energy_delivered")


def meters_monotonic(records: Records) -> CheckResult:
    """Meter readings and energy never go backwards within a session, on any one stream.

    A stream is the Redis publishes of a session, or what one socket received
    of it (``(hop, socket_id, session)``), in trace order: each
    ``meter_value`` update's ``data.meter_value``, ``data.energy_consumed``
    and ``data.energy_delivered`` is at least the stream's previous one.
    Across hops the order of arrival may legitimately interleave, so streams
    are not mixed.
    """
    name = "meters_monotonic"
    last: dict[tuple[str, int | None, int], tuple[dict[str, float], TraceRecord]] = {}
    found: list[InvariantViolation] = []
    checked = 0
    for record in records:
        if not is_session_update(record) or record.message.get("event") != "meter_value":
            continue
        session = session_of(record)
        if session is None:
            continue
        checked += 1
        data = data_of(record.message)
        values = {f: v for f in _MONOTONIC_FIELDS if (v := as_number(data.get(f))) is not None}
        stream = (record.hop, record.socket_id, session)
        previous = last.get(stream)
        if previous is not None:
            for key, value in values.items():
                before = previous[0].get(key)
                if before is not None and value < before:
                    found.append(_violation(name, f"session {session}: {key} went back from {before:g} to "
                                            f"{value:g} ({describe(record)})", record, previous[1],
                                            expected=f">= {before:g}", actual=value))
            values = {**previous[0], **values}
        last[stream] = (values, record)
    return CheckResult(name, checked, found)


# --- energy_matches_model ---------------------------------------------------------------


def _interpolate(times: Sequence[float], values: Sequence[float], t: float) -> float:
    i = bisect.bisect_right(times, t)
    if i == 0:
        return values[0]
    if i == len(times):
        return values[-1]
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1


def energy_matches_model(records: Records, energy_wh: Mapping[int, Sequence[tuple[float, float]]], *,
                         tolerance_wh: float = 10.0, lag_s: float = 60.0) -> CheckResult:
    """The energy the app is told matches the model's ground truth within a tolerance.

    Judged: every ``session_update`` a socket received (``gateway-app``) with
    a number in ``data.energy_consumed`` (else ``data.energy_delivered``), in
    kWh, of a session the model knows. The reading was taken at most
    ``lag_s`` simulated seconds before the app got it, and energy never
    decreases, so it must lie between the model's energy at ``t_sim - lag_s``
    and at ``t_sim``, widened by ``tolerance_wh`` on both sides.
    """
    name = "energy_matches_model"
    curves = {session: ([t for t, _ in points], [wh for _, wh in points])
              for session, points in energy_wh.items() if points}
    found: list[InvariantViolation] = []
    checked = 0
    for record in records:
        if not (is_ws_receive(record) and is_session_update(record)):
            continue
        session = session_of(record)
        curve = curves.get(session) if session is not None else None
        if curve is None:
            continue
        data = data_of(record.message)
        kwh = as_number(data.get("energy_consumed"))
        kwh = kwh if kwh is not None else as_number(data.get("energy_delivered"))
        if kwh is None:
            continue
        checked += 1
        low = _interpolate(*curve, record.t_sim - lag_s) - tolerance_wh
        high = _interpolate(*curve, record.t_sim) + tolerance_wh
        told = kwh * 1000
        if not low <= told <= high:
            found.append(_violation(name, f"session {session}: the app was told {told:g} Wh; the model had "
                                    f"{low + tolerance_wh:g}..{high - tolerance_wh:g} Wh "
                                    f"(within {lag_s:g} s before t_sim={record.t_sim:g}, "
                                    f"tolerance {tolerance_wh:g} Wh)", record,
                                    expected=[round(low, 3), round(high, 3)], actual=told))
    return CheckResult(name, checked, found)


# --- cost_matches_tariff ----------------------------------------------------------------


def cost_matches_tariff(records: Records, tariffs: Mapping[str, float], *,
                        tolerance: float = 0.01) -> CheckResult:
    """cost = energy x tariff: every ``meter_value`` update on Redis or a socket.

    ``data.cost`` must equal ``data.energy_consumed`` (kWh) times the tariff
    of ``data.station_id``, rounded to 2 decimals, within ``tolerance``.
    Updates of a station with no known tariff are not judged.
    """
    name = "cost_matches_tariff"
    found: list[InvariantViolation] = []
    checked = 0
    for record in records:
        if not is_session_update(record) or record.message.get("event") != "meter_value":
            continue
        data = data_of(record.message)
        station = data.get("station_id")
        tariff = tariffs.get(station) if isinstance(station, str) else None
        energy, cost = as_number(data.get("energy_consumed")), as_number(data.get("cost"))
        if tariff is None or energy is None or cost is None:
            continue
        checked += 1
        expected = round(energy * tariff, 2)
        if abs(cost - expected) > tolerance + 1e-9:
            found.append(_violation(name, f"session {session_of(record)}: cost {cost:g} for {energy:g} kWh at "
                                    f"{tariff:g} per kWh at station {station}", record,
                                    expected=expected, actual=cost))
    return CheckResult(name, checked, found)


# --- map_converges ----------------------------------------------------------------------

_MapEntry = tuple[str | None, int | None, int | None, TraceRecord]


def map_converges(records: Records, stations: Mapping[str, StationTruth]) -> CheckResult:
    """Every connected app's map ends on the true station states.

    A socket's map starts from the ``charger_list_update`` s it received
    (each station's ``station_status``, ``available_connectors``,
    ``total_connectors``) and each ``charger_status_update`` (``status`` and
    ``data`` counts) overwrites its station, in trace order. Judged: every
    socket that received ``connected`` and no ``close`` record, for every
    station in ``stations`` (the model's state once the last change settled):
    status and both counts must equal the truth.
    """
    name = "map_converges"
    maps: dict[int, dict[str, _MapEntry]] = {}
    closed: set[int] = set()
    for record in records:
        if record.hop != "gateway-app" or record.socket_id is None:
            continue
        if record.direction == "close":
            closed.add(record.socket_id)
            continue
        message = message_dict(record)
        kind = message.get("type")
        if kind == "connected":
            maps.setdefault(record.socket_id, {})
        elif kind == "charger_status_update" and isinstance(station := message.get("station_id"), str):
            data = data_of(message)
            maps.setdefault(record.socket_id, {})[station] = (
                message.get("status"), as_int(data.get("available_connectors")),
                as_int(data.get("total_connectors")), record)
        elif kind == "charger_list_update":
            chargers = data_of(message).get("chargers")
            for entry in chargers if isinstance(chargers, list) else ():
                if isinstance(entry, dict) and isinstance(station := entry.get("station_id"), str):
                    maps.setdefault(record.socket_id, {})[station] = (
                        entry.get("station_status"), as_int(entry.get("available_connectors")),
                        as_int(entry.get("total_connectors")), record)
    found: list[InvariantViolation] = []
    checked = 0
    for socket, shown in maps.items():
        if socket in closed:
            continue
        for station, truth in stations.items():
            checked += 1
            expected = {"status": truth.status, "available_connectors": truth.available_connectors,
                        "total_connectors": truth.total_connectors}
            entry = shown.get(station)
            if entry is None:
                found.append(InvariantViolation(name, f"socket {socket}: the map never showed station {station}",
                                                "gateway-app", (), expected, None))
                continue
            actual = {"status": entry[0], "available_connectors": entry[1], "total_connectors": entry[2]}
            if actual != expected:
                found.append(_violation(name, f"socket {socket}: the map's last state of station {station} "
                                        "is not the model's", entry[3], expected=expected, actual=actual))
    return CheckResult(name, checked, found)


# --- no_message_lost --------------------------------------------------------------------


@dataclass(slots=True)
class _Socket:
    user: int
    opened: float
    closed: float = float("inf")


def no_message_lost(records: Records, *, grace_s: float = 5.0) -> CheckResult:
    """No message is lost between Redis and the sockets that were connected.

    A socket (``socket_id``) of user U is open from the ``t_sim`` of the
    ``connected`` message it received until its ``close`` record (else the
    trace's end). A message published on ``redis:user:U:*`` at ``t_sim`` = p
    is owed to every socket of U open over all of [p, p + ``grace_s``]; the
    socket must have received an identical message (equal JSON), as many
    times as it was owed. Counted per socket and message; the violation says
    how many were published and how many arrived.
    """
    name = "no_message_lost"
    sockets: dict[int, _Socket] = {}
    received: Counter[tuple[int, bytes]] = Counter()
    published: dict[int, list[tuple[float, bytes, TraceRecord]]] = {}
    t_end = 0.0
    for record in records:
        t_end = max(t_end, record.t_sim)
        if record.hop == "redis":
            user = redis_user(record.channel)
            if user is not None:
                published.setdefault(user, []).append((record.t_sim, fingerprint(record.message), record))
        elif record.hop == "gateway-app" and record.socket_id is not None:
            _note_socket(record, sockets, received)
    owed: Counter[tuple[int, bytes]] = Counter()
    example: dict[tuple[int, bytes], TraceRecord] = {}
    users: dict[int, list[tuple[int, _Socket]]] = {}
    for socket_id, socket in sockets.items():
        users.setdefault(socket.user, []).append((socket_id, socket))
    for user, messages in published.items():
        for socket_id, socket in users.get(user, ()):
            until = min(socket.closed, t_end)
            for t, text, record in messages:
                if socket.opened <= t and t + grace_s <= until:
                    owed[socket_id, text] += 1
                    example.setdefault((socket_id, text), record)
    found = [_violation(name, f"socket {socket_id} of user {sockets[socket_id].user}: {count - received[key]} of "
                        f"{count} message(s) published on {example[key].channel} while it was open never "
                        "arrived", example[key], expected=count, actual=received[key])
             for key, count in owed.items() if received[key] < count for socket_id in (key[0],)]
    return CheckResult(name, owed.total(), found)


def _note_socket(record: TraceRecord, sockets: dict[int, _Socket], received: Counter[tuple[int, bytes]]) -> None:
    socket_id = record.socket_id
    assert socket_id is not None
    if record.direction == "close":
        if socket_id in sockets:
            sockets[socket_id].closed = min(sockets[socket_id].closed, record.t_sim)
        return
    if record.direction != "receive":
        return
    message = message_dict(record)
    if message.get("type") == "connected" and socket_id not in sockets:
        user = record.user_id if record.user_id is not None else as_int(message.get("userId"))
        if user is not None:
            sockets[socket_id] = _Socket(user, record.t_sim)
        return
    received[socket_id, fingerprint(record.message)] += 1


# --- active_session_restored ------------------------------------------------------------


@dataclass(slots=True)
class _SessionSpan:
    """A session's owner and when the trace first showed its ``session_started`` and its end (``t_sim``)."""

    user: int
    started: float | None = None
    ended: float | None = None


@dataclass(slots=True)
class _Welcome:
    """What one socket received on connect: its ``connected``, its first ``active_session_update``, its close."""

    connected: TraceRecord
    user: int
    update: TraceRecord | None = None
    closed: float = float("inf")


def active_session_restored(records: Records, *, grace_s: float = 5.0, race_s: float = 5.0) -> CheckResult:
    """A reopened app is told the session its user has (DESIGN ruling 5, seed 4.8).

    For every socket that received ``connected`` (at ``t_sim`` = c), the first
    ``active_session_update`` it received after it must say what the trace
    knows at c: a session of the user is active when its ``session_started``
    (published on ``redis:user:{id}:session_updates`` or received by a socket
    of the user, whichever the trace shows first) came at or before c and no
    end (``session_stopped``/``completed``/``error``) had come by c. With one,
    ``has_active_session`` must be true and ``data.session_id`` that session;
    with none, ``has_active_session`` must be false. Not judged: a socket
    with no such update that closed (or whose trace ended) within ``grace_s``
    of c; a socket whose user's session started or ended within ``race_s``
    of c (the gateway reads the state a moment before ``connected`` is
    seen, and the Redis tap sees a publish a moment after it is made).
    """
    name = "active_session_restored"
    spans: dict[int, _SessionSpan] = {}
    sockets: dict[int, _Welcome] = {}
    t_end = 0.0
    for record in records:
        t_end = max(t_end, record.t_sim)
        if is_session_update(record):
            _note_span(record, spans)
        elif record.hop == "gateway-app" and record.socket_id is not None:
            _note_welcome(record, record.socket_id, sockets)
    by_user: dict[int, list[tuple[int, _SessionSpan]]] = {}
    for session, span in spans.items():
        by_user.setdefault(span.user, []).append((session, span))
    found: list[InvariantViolation] = []
    checked = 0
    for socket_id, welcome in sockets.items():
        at = welcome.connected.t_sim
        if welcome.update is None and min(welcome.closed, t_end) - at < grace_s:
            continue
        active = _active_at(by_user.get(welcome.user, ()), at, race_s=race_s)
        if active is None:
            continue
        checked += 1
        violation = _restored(name, socket_id, welcome, active)
        if violation is not None:
            found.append(violation)
    return CheckResult(name, checked, found)


def _note_span(record: TraceRecord, spans: dict[int, _SessionSpan]) -> None:
    """Note the first sighting of a session's start or end (Redis publish or socket receipt)."""
    event = record.message.get("event")
    session = session_of(record)
    user = redis_user(record.channel) if record.hop == "redis" else record.user_id
    if session is None or user is None or (event != "session_started" and event not in SESSION_END_EVENTS):
        return
    span = spans.setdefault(session, _SessionSpan(user))
    if event == "session_started" and span.started is None:
        span.started = record.t_sim
    elif event in SESSION_END_EVENTS and span.ended is None:
        span.ended = record.t_sim


def _note_welcome(record: TraceRecord, socket_id: int, sockets: dict[int, _Welcome]) -> None:
    welcome = sockets.get(socket_id)
    if record.direction == "close":
        if welcome is not None:
            welcome.closed = min(welcome.closed, record.t_sim)
        return
    kind = message_dict(record).get("type")
    if kind == "connected" and welcome is None and record.direction == "receive":
        user = record.user_id if record.user_id is not None else as_int(message_dict(record).get("userId"))
        if user is not None:
            sockets[socket_id] = _Welcome(record, user)
    elif kind == "active_session_update" and welcome is not None and welcome.update is None:
        welcome.update = record


def _active_at(spans: Sequence[tuple[int, _SessionSpan]], at: float, *, race_s: float) -> set[int] | None:
    """The user's sessions active at ``at``; None when a start or end lies within ``race_s`` of it."""
    active: set[int] = set()
    for session, span in spans:
        if span.started is None:
            continue  # an end alone is a start that failed after acceptance: never active
        if abs(span.started - at) <= race_s or (span.ended is not None and abs(span.ended - at) <= race_s):
            return None
        if span.started <= at and (span.ended is None or span.ended > at):
            active.add(session)
    return active


def _restored(name: str, socket_id: int, welcome: _Welcome, active: set[int]) -> InvariantViolation | None:
    """The violation of one socket's first ``active_session_update`` (or its absence), if any."""
    expected_session = min(active) if len(active) == 1 else sorted(active) or None
    expected = {"has_active_session": bool(active), "session_id": expected_session}
    where = f"socket {socket_id} of user {welcome.user} (connected at t_sim={welcome.connected.t_sim:g})"
    if welcome.update is None:
        return _violation(name, f"{where}: no active_session_update arrived", welcome.connected,
                          expected=expected, actual=None)
    message = message_dict(welcome.update)
    has, session = message.get("has_active_session"), as_int(data_of(message).get("session_id"))
    if (has is True and session in active) if active else has is False:
        return None
    told = f"has_active_session {canonical(has)}" if has is not True or session is None else f"session {session}"
    truth = f"session {expected_session}" if active else "no active session"
    return _violation(name, f"{where}: told {told}, but the user had {truth}", welcome.update,
                      welcome.connected, expected=expected,
                      actual={"has_active_session": has, "session_id": session})


# --- all of them ------------------------------------------------------------------------


def run_checks(records: Records, truth: GroundTruth, *, deadline_s: float, tolerance_wh: float = 10.0,
               lag_s: float = 60.0, cost_tolerance: float = 0.01, grace_s: float = 5.0,
               race_s: float = 5.0, validator: Validator | None = None,
               schema: CheckResult | None = None) -> list[CheckResult]:
    """Every check of :data:`CHECK_NAMES`, in that order, over one trace.

    ``schema``: the result of :func:`schema_and_rules`, when the caller ran it
    already (while streaming the trace in, say).
    """
    return [
        schema or schema_and_rules(records, validator=validator),
        causality_and_latency(records, deadline_s=deadline_s),
        consistent_across_hops(records),
        isolation(records),
        meters_monotonic(records),
        energy_matches_model(records, truth.energy_wh, tolerance_wh=tolerance_wh, lag_s=lag_s),
        cost_matches_tariff(records, truth.tariffs, tolerance=cost_tolerance),
        map_converges(records, truth.stations),
        no_message_lost(records, grace_s=grace_s),
        active_session_restored(records, grace_s=grace_s, race_s=race_s),
    ]
