"""``causality_and_latency``: each accepted start is followed by its session_started, meter values, an end.

A successful start is a 2xx ``app-backend`` response of
``/api/charging/start`` with ``success: true``; its session is
``data.session_id``, its user the record's ``user_id``.

Latency: the first ``session_started`` of that session on any socket of
that user must come within ``deadline_s`` simulated seconds of the
response. Decided when it arrives; a session that ends with
``session_error`` and no ``session_started`` failed after acceptance and
passes; another end without one is a violation, decided once the deadline
passed (a late ``session_started`` may still come until then); with
neither, the start is decided when the run ends (missing, if the run went
past the deadline).

Order, per socket and session, decided as each message arrives: no
``meter_value`` before ``session_started`` (the first meter and the
started are cited), no end (stopped/completed/error) before it, no
``meter_value`` after the end (the first such meter is cited).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .._access import SESSION_END_EVENTS, is_session_update, is_ws_receive, session_of, successful_start
from ..trace import TraceRecord
from ._base import Agenda, Check, InvariantViolation, Settlement, violation
from ._recent import Recent

__all__ = ["CausalityAndLatency"]

_Key = tuple[int | None, int]


@dataclass(slots=True)
class _Start:
    """One user's session: its start response, first session_started and first end on any socket."""

    start: TraceRecord | None = None
    started: TraceRecord | None = None
    end: TraceRecord | None = None
    decided: bool = False


@dataclass(slots=True)
class _SocketSession:
    """What one socket received of one session: the first meter, the started, the end; what was reported."""

    first_meter: TraceRecord | None = None
    started: TraceRecord | None = None
    end: TraceRecord | None = None
    meter_after_end: bool = False


class CausalityAndLatency(Check):
    name = "causality_and_latency"

    def __init__(self, *, deadline_s: float, retention_s: float = 900.0, retention_wall_s: float = 30.0) -> None:
        super().__init__()
        self._deadline = deadline_s
        self._sessions: Recent[_Key, _Start] = Recent(retention_s, retention_wall_s,
                                                      keep=lambda s: s.start is not None and not s.decided)
        self._sockets: Recent[tuple[int | None, int], _SocketSession] = Recent(retention_s, retention_wall_s)
        self._ended_without_start: Agenda[_Key] = Agenda()

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        session = successful_start(record)
        if session is not None:
            return self._start(record, (record.user_id, session))
        if not (is_ws_receive(record) and is_session_update(record)):
            return ()
        session = session_of(record)
        if session is None:
            return ()
        event = record.message.get("event")
        found = list(self._order(record, session, event))
        if event == "session_started" or event in SESSION_END_EVENTS:
            found.extend(self._sighted(record, (record.user_id, session), event))
        return found

    # --- latency, per user and session ----------------------------------------------------

    def _start(self, record: TraceRecord, key: _Key) -> Iterator[InvariantViolation]:
        state = self._sessions.get(key) or _Start()
        if state.start is None:
            self.checked += 1
            state.start = record
            yield from self._decide(key, state)
        self._sessions.touch(key, state, record.t_sim, record.t_wall)

    def _sighted(self, record: TraceRecord, key: _Key, event: str) -> Iterator[InvariantViolation]:
        state = self._sessions.get(key) or _Start()
        if event == "session_started" and state.started is None:
            state.started = record
        elif event in SESSION_END_EVENTS and state.end is None:
            state.end = record
        self._sessions.touch(key, state, record.t_sim, record.t_wall)
        yield from self._decide(key, state)

    def _decide(self, key: _Key, state: _Start, *, now: float | None = None) -> Iterator[InvariantViolation]:
        """Decide ``state`` if it can be decided (``now``: the deadline has passed)."""
        start = state.start
        if start is None or state.decided:
            return
        if state.started is not None:
            state.decided = True
            latency = state.started.t_sim - start.t_sim
            if latency > self._deadline:
                yield violation(self.name, f"session {key[1]}: session_started reached user {start.user_id} "
                                f"{latency:g} s after the start response; the deadline is {self._deadline:g} s",
                                state.started, start, expected=f"<= {self._deadline:g} s", actual=latency)
            return
        if state.end is None:
            return
        if state.end.message.get("event") == "session_error":
            state.decided = True
            return
        due = start.t_sim + self._deadline
        if now is None or now < due:  # a late session_started may still come: decide at the deadline
            self._ended_without_start.add(due, key)
            return
        state.decided = True
        event = state.end.message.get("event")
        yield violation(self.name, f"session {key[1]} ended ({event}) without a session_started reaching user "
                        f"{start.user_id}", state.end, start, expected="session_started first", actual=event)

    # --- order, per socket and session -----------------------------------------------------

    def _order(self, record: TraceRecord, session: int, event: object) -> Iterator[InvariantViolation]:
        key = (record.socket_id, session)
        seen = self._sockets.get(key) or _SocketSession()
        self._sockets.touch(key, seen, record.t_sim, record.t_wall)
        if event == "session_started":
            if seen.started is not None:
                return
            seen.started = record
            if seen.first_meter is not None:
                yield violation(self.name, f"session {session}: a meter_value came before session_started",
                                seen.first_meter, record, expected="session_started", actual="meter_value")
            if seen.end is not None:
                end_event = seen.end.message.get("event")
                yield violation(self.name, f"session {session}: {end_event} came before session_started",
                                seen.end, record, expected="session_started", actual=end_event)
        elif event == "meter_value":
            if seen.first_meter is None:
                seen.first_meter = record
            if seen.end is not None and not seen.meter_after_end:
                seen.meter_after_end = True
                yield violation(self.name, f"session {session}: a meter_value came after the session ended",
                                record, seen.end, expected="no meter_value after the end", actual="meter_value")
        elif event in SESSION_END_EVENTS and seen.end is None:
            seen.end = record

    # --- time and the end -------------------------------------------------------------------

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        found: list[InvariantViolation] = []
        for key in list(self._ended_without_start.due(t_sim)):
            state = self._sessions.get(key)
            if state is not None:
                found.extend(self._decide(key, state, now=t_sim))
        self._sessions.forget(t_sim, t_wall)
        self._sockets.forget(t_sim, t_wall)
        return found

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        found: list[InvariantViolation] = []
        for key, state in list(self._sessions.items()):
            if state.decided or state.start is None:
                continue
            if state.end is not None:
                found.extend(self._decide(key, state, now=float("inf")))
            elif end.t_sim - state.start.t_sim > self._deadline:
                state.decided = True
                found.append(violation(self.name, f"session {key[1]}: no session_started reached user "
                                       f"{state.start.user_id} within {self._deadline:g} s of the start response",
                                       state.start, expected="session_started", actual=None))
        return found

    def state_size(self) -> int:
        return len(self._sessions) + len(self._sockets) + len(self._ended_without_start)
