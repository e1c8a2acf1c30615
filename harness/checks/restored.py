"""``active_session_restored``: a reopened app is told the session its user has (DESIGN ruling 5, seed 4.8).

For every socket that received ``connected`` (at ``t_sim`` = c), the
``active_session_update`` sent on connect (the second or third message,
within ``grace_s`` wall seconds: a later one pushes a change) must say what the
observations show at c: a session of the user is active when its
``session_started`` (published on ``redis:user:{id}:session_updates`` or
received by a socket of the user, whichever came first) came at or before
c and no end (``session_stopped``/``completed``/``error``) had come by c.
With one, ``has_active_session`` must be true and ``data.session_id`` that
session; with none, ``has_active_session`` must be false.

Not judged: a socket with no such update that closed (or whose run ended)
within ``grace_s`` of c; a socket whose user's session started or ended
within ``race_s`` of c (the gateway reads the state a moment before
``connected`` is seen, and the Redis tap sees a publish a moment after it
is made). So a socket is judged once ``race_s`` has passed after c and its
update has come; a missing update is reported when the socket closes or
the run ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .._access import (
    SESSION_END_EVENTS,
    as_int,
    canonical,
    data_of,
    is_session_update,
    message_dict,
    redis_user,
    session_of,
)
from ..trace import TraceRecord
from ._base import Agenda, Check, InvariantViolation, Settlement, violation

__all__ = ["MISSING_UPDATE", "ActiveSessionRestored"]

MISSING_UPDATE = "active_session_update_missing"
"""The rule of a socket that got no ``active_session_update`` at all (DESIGN ruling 5; the seed does not ask)."""

_TIE = 1e-6
"""Decide strictly after ``c + race_s``: a sighting at exactly that time still counts as a race."""


@dataclass(slots=True)
class _SessionSpan:
    """A session's user (of its first sighting) and when the observations first showed its start and end."""

    user: int
    started: float | None = None
    ended: float | None = None


@dataclass(slots=True)
class _Welcome:
    """One socket's ``connected``, its first ``active_session_update``, and (once final) its user's sessions."""

    connected: TraceRecord
    user: int
    update: TraceRecord | None = None
    active: set[int] | None = None
    final: bool = False
    seen: int = 0  # other messages received since connected, while the welcome may still be under way


class ActiveSessionRestored(Check):
    name = "active_session_restored"

    def __init__(self, *, grace_s: float = 5.0, race_s: float = 5.0) -> None:
        super().__init__()
        self._grace, self._race = grace_s, race_s
        self._spans: dict[int, _SessionSpan] = {}  # by session
        self._by_user: dict[int, dict[int, _SessionSpan]] = {}  # user -> session -> span
        self._welcomes: dict[int, _Welcome] = {}
        self._final: Agenda[int] = Agenda()
        self._forget: Agenda[int] = Agenda()  # ended sessions, due when no socket still to be finalised needs them

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if is_session_update(record):
            self._note_span(record)
            return ()
        if record.hop != "gateway-app" or record.socket_id is None:
            return ()
        socket_id = record.socket_id
        welcome = self._welcomes.get(socket_id)
        if record.direction == "close":
            if welcome is None:
                return ()
            del self._welcomes[socket_id]
            return self._without_update(socket_id, welcome, until=record.t_sim)
        message = message_dict(record)
        kind = message.get("type")
        if kind == "connected" and welcome is None and record.direction == "receive":
            user = record.user_id if record.user_id is not None else as_int(message.get("userId"))
            if user is not None:
                self._welcomes[socket_id] = _Welcome(record, user)
                self._final.add(record.t_sim + self._race + _TIE, socket_id)
        elif welcome is not None and welcome.update is None and record.direction == "receive":
            if kind == "active_session_update" and self._in_welcome(welcome, record):
                welcome.update = record
                if welcome.final:
                    return self._judge(socket_id, welcome)
                return ()
            welcome.seen += 1
            if not self._in_welcome(welcome, record):  # the welcome is over, and it told nothing of a session
                if welcome.active is None:
                    welcome.active = _active_at(self._by_user.get(welcome.user, {}), welcome.connected.t_sim,
                                                race_s=self._race) or set()
                return self._judge(socket_id, welcome)
        return ()

    def _in_welcome(self, welcome: _Welcome, record: TraceRecord) -> bool:
        """Whether ``record`` can still be part of the messages sent on connect (ruling 5: the second or third,
        within ``grace_s`` wall seconds); a later ``active_session_update`` is a push of a change."""
        return welcome.seen < 2 and record.t_wall - welcome.connected.t_wall <= self._grace

    def _note_span(self, record: TraceRecord) -> None:
        """Note the first sighting of a session's start or end (Redis publish or socket receipt)."""
        event = record.message.get("event")
        session = session_of(record)
        user = redis_user(record.channel) if record.hop == "redis" else record.user_id
        if session is None or user is None or (event != "session_started" and event not in SESSION_END_EVENTS):
            return
        span = self._spans.get(session)
        if span is None:
            span = self._spans[session] = _SessionSpan(user)
            self._by_user.setdefault(user, {})[session] = span
        if event == "session_started" and span.started is None:
            span.started = record.t_sim
        elif event in SESSION_END_EVENTS and span.ended is None:
            span.ended = record.t_sim
            self._forget.add(record.t_sim + 2 * self._race + 1.0, session)

    # --- deciding ---------------------------------------------------------------------------

    def _finalise(self, socket_id: int) -> list[InvariantViolation]:
        welcome = self._welcomes.get(socket_id)
        if welcome is None:
            return []
        welcome.active = _active_at(self._by_user.get(welcome.user, {}), welcome.connected.t_sim, race_s=self._race)
        if welcome.active is None:
            del self._welcomes[socket_id]  # a session started or ended too close to the connect: not judged
            return []
        welcome.final = True
        return self._judge(socket_id, welcome) if welcome.update is not None else []

    def _judge(self, socket_id: int, welcome: _Welcome) -> list[InvariantViolation]:
        self._welcomes.pop(socket_id, None)
        assert welcome.active is not None
        self.checked += 1
        found = _restored(self.name, socket_id, welcome, welcome.active)
        return [] if found is None else [found]

    def _without_update(self, socket_id: int, welcome: _Welcome, *, until: float) -> list[InvariantViolation]:
        """The socket closed (or the run ended) at ``until`` with no update judged yet."""
        if welcome.update is None and until - welcome.connected.t_sim < self._grace:
            return []
        if not welcome.final:
            welcome.active = _active_at(self._by_user.get(welcome.user, {}), welcome.connected.t_sim,
                                        race_s=self._race)
            if welcome.active is None:
                return []
        return self._judge(socket_id, welcome)

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        found = [v for socket_id in list(self._final.due(t_sim)) for v in self._finalise(socket_id)]
        for session in list(self._forget.due(t_sim)):  # no socket still to be finalised can race with its end
            span = self._spans.pop(session)
            spans = self._by_user[span.user]
            del spans[session]
            if not spans:
                del self._by_user[span.user]
        return found

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        found: list[InvariantViolation] = []
        for socket_id, welcome in list(self._welcomes.items()):
            found.extend(self._without_update(socket_id, welcome, until=end.t_sim))
        self._welcomes.clear()
        return found

    def state_size(self) -> int:
        return len(self._welcomes) + len(self._spans) + len(self._final) + len(self._forget)


def _active_at(spans: Mapping[int, _SessionSpan], at: float, *, race_s: float) -> set[int] | None:
    """The user's sessions active at ``at``; None when a start or end lies within ``race_s`` of it."""
    active: set[int] = set()
    for session, span in spans.items():
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
    if welcome.update is None:  # ruling 5 asks for it, the seed does not: chargetwin check counts it a warning
        return replace(violation(name, f"{where}: no active_session_update arrived", welcome.connected,
                                 expected=expected, actual=None), rule=MISSING_UPDATE)
    message = message_dict(welcome.update)
    has, session = message.get("has_active_session"), as_int(data_of(message).get("session_id"))
    if (has is True and session in active) if active else has is False:
        return None
    told = f"has_active_session {canonical(has)}" if has is not True or session is None else f"session {session}"
    truth = f"session {expected_session}" if active else "no active session"
    return violation(name, f"{where}: told {told}, but the user had {truth}", welcome.update,
                     welcome.connected, expected=expected, actual={"has_active_session": has, "session_id": session})
