"""``isolation``: no socket ever receives another user's session update or notification.

The socket's user is the ``user_id`` of the ``gateway-app`` record (records
without one are not judged). A session's owner is the user of the Redis
channel its ``session_update`` s were published on, else the ``user_id`` of
its successful start response, whichever the observations show first.
Judged: ``session_update`` (its session's owner must be the socket's user);
``notification``, ``response`` and ``active_session_update`` (when the
identical message was published on Redis, one of the channels must be the
socket's user's; when it names a session with a known owner, that owner
must be the socket's user); ``connected`` (its ``userId`` is the socket's
user).

A publish and its copies may be tapped in either order: a message is
judged as it arrives when what it is judged against is already known (a
``connected``, a session update of a session whose owner is known), else
once ``grace_s`` simulated and ``settle_wall_s`` wall seconds have passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from .._access import as_int, fingerprint, message_dict, redis_user, session_of, successful_start
from ..trace import TraceRecord
from ._base import Agenda, Check, InvariantViolation, Settlement, violation
from ._recent import Recent

__all__ = ["Isolation"]

_USER_CONTENT_TYPES: Final = frozenset({"notification", "response", "active_session_update"})
_JUDGED: Final = _USER_CONTENT_TYPES | {"session_update", "connected"}


class Isolation(Check):
    name = "isolation"

    def __init__(self, *, grace_s: float = 5.0, settle_wall_s: float = 2.0, retention_s: float = 900.0,
                 retention_wall_s: float = 30.0) -> None:
        super().__init__()
        self._grace, self._settle_wall = grace_s, settle_wall_s
        self._owner: Recent[int, int] = Recent(retention_s, retention_wall_s)
        self._published_to: Recent[bytes, set[int]] = Recent(retention_s, retention_wall_s)
        self._pending: Agenda[TraceRecord] = Agenda()

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if record.hop == "redis":
            self._note_publish(record)
            return ()
        session = successful_start(record)
        if session is not None and record.user_id is not None:
            self._note_owner(session, record.user_id, record)
            return ()
        if record.hop != "gateway-app" or record.direction != "receive" or record.user_id is None:
            return ()
        kind = message_dict(record).get("type")
        if kind not in _JUDGED:
            return ()
        self.checked += 1
        if kind == "connected" or (kind == "session_update" and (session := session_of(record)) is not None
                                   and session in self._owner):
            return self._judge(record)
        self._pending.add(record.t_sim + self._grace, record, t_wall=record.t_wall + self._settle_wall)
        return ()

    def _note_publish(self, record: TraceRecord) -> None:
        user = redis_user(record.channel)
        if user is None:
            return
        message = message_dict(record)
        kind = message.get("type")
        if kind == "session_update" and (session := session_of(record)) is not None:
            self._note_owner(session, user, record)
        elif kind in _USER_CONTENT_TYPES:
            key = fingerprint(message)
            users = self._published_to.get(key) or set()
            users.add(user)
            self._published_to.touch(key, users, record.t_sim, record.t_wall)

    def _note_owner(self, session: int, user: int, record: TraceRecord) -> None:
        owner = self._owner.get(session)
        self._owner.touch(session, user if owner is None else owner, record.t_sim, record.t_wall)

    def _judge(self, record: TraceRecord) -> tuple[InvariantViolation, ...]:
        problem = _foreign(record, message_dict(record), self._owner, self._published_to)
        if problem is None:
            return ()
        kind = message_dict(record).get("type")
        return (violation(self.name, f"socket {record.socket_id} of user {record.user_id} received {kind} of user "
                          f"{problem}", record, expected=record.user_id, actual=problem),)

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        found = [v for record in list(self._pending.due(t_sim, t_wall)) for v in self._judge(record)]
        self._owner.forget(t_sim, t_wall)
        self._published_to.forget(t_sim, t_wall)
        return found

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        return [v for record in list(self._pending.drain()) for v in self._judge(record)]

    def state_size(self) -> int:
        return len(self._owner) + len(self._published_to) + len(self._pending)


def _foreign(record: TraceRecord, message: Mapping[str, Any], owner: Recent[int, int],
             published_to: Recent[bytes, set[int]]) -> int | None:
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
