"""``no_message_lost``: every Redis message for a user reaches each of that user's connected sockets.

A socket (``socket_id``) of user U is open from the ``t_sim`` of the
``connected`` message it received until its ``close`` record (else the
run's end). A message published on ``redis:user:U:*`` at ``t_sim`` = p is
owed to every socket of U open over all of [p, p + ``grace_s``]; the
socket must receive an identical message (equal JSON). Counted per socket
and publish (``checked``: the deliveries owed).

A publish and its copy may be tapped in either order (a copy that comes
first waits ``grace_s`` simulated and ``settle_wall_s`` wall seconds for
its publish). An owed message that has not arrived is lost, and reported,
as soon as that is certain: when its socket closes, when the run ends, or
when a message published later on the same channel has reached that
socket (Redis delivers a channel's messages in order, and so must the
gateway). One violation per lost publish and socket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .._access import as_int, fingerprint, message_dict, redis_user
from ..trace import TraceRecord
from ._base import Agenda, Check, InvariantViolation, Settlement, violation
from ._recent import Recent

__all__ = ["MAX_WAITING", "NoMessageLost"]

MAX_WAITING = 1024
"""Undelivered messages a socket may owe on one channel; past it, the oldest owed one is lost (a silent socket
must not hold the check's memory)."""


@dataclass(slots=True)
class _Owed:
    """One publish owed to one socket, from publish until it is delivered, lost, or not owed after all."""

    socket: int
    t: float
    channel: str
    key: bytes
    record: TraceRecord
    delivered: bool = False
    overtaken: bool = False  # a message published after it on its channel reached the socket
    owed: bool = False  # the socket stayed open ``grace_s`` after the publish: counted in ``checked``
    done: bool = False  # settled: delivered and owed, lost, or not owed after all


@dataclass(slots=True)
class _Socket:
    user: int
    opened: float
    waiting: dict[bytes, deque[_Owed]] = field(default_factory=dict)  # undelivered, by message, oldest first
    channels: dict[str, deque[_Owed]] = field(default_factory=dict)  # undelivered, by channel, in publish order
    grace: deque[_Owed] = field(default_factory=deque)  # within ``grace_s`` of their publish, in publish order


class NoMessageLost(Check):
    name = "no_message_lost"

    def __init__(self, *, grace_s: float = 5.0, settle_wall_s: float = 2.0) -> None:
        super().__init__()
        self._grace = grace_s
        self._sockets: dict[int, _Socket] = {}
        self._users: dict[int, set[int]] = {}
        self._due: Agenda[_Owed] = Agenda()
        self._early: Recent[tuple[int, bytes], int] = Recent(grace_s, settle_wall_s)
        self._lost_later: list[InvariantViolation] = []  # found while noting a publish: reported on the next call

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if record.hop == "redis":
            user = redis_user(record.channel)
            if user is not None:
                self._published(record, user)
            return ()
        if record.hop != "gateway-app" or record.socket_id is None:
            return ()
        if record.direction == "close":
            return self._closed(record.socket_id, record.t_sim)
        if record.direction != "receive":
            return ()
        socket_id = record.socket_id
        message = message_dict(record)
        if message.get("type") == "connected" and socket_id not in self._sockets:
            user = record.user_id if record.user_id is not None else as_int(message.get("userId"))
            if user is not None:
                self._sockets[socket_id] = _Socket(user, record.t_sim)
                self._users.setdefault(user, set()).add(socket_id)
            return ()
        return self._received(socket_id, fingerprint(record.message), record)

    # --- publishes and receipts --------------------------------------------------------------

    def _published(self, record: TraceRecord, user: int) -> None:
        key = fingerprint(record.message)
        for socket_id in self._users.get(user, ()):
            socket = self._sockets[socket_id]
            if socket.opened > record.t_sim:
                continue
            owed = _Owed(socket_id, record.t_sim, record.channel, key, record)
            self._due.add(record.t_sim + self._grace, owed)
            socket.grace.append(owed)
            early = self._early.get((socket_id, key))
            if early:  # the copy was tapped before its publish
                owed.delivered = True
                if early > 1:
                    self._early.touch((socket_id, key), early - 1, record.t_sim, record.t_wall)
                else:
                    self._early.pop((socket_id, key))
                continue
            socket.waiting.setdefault(key, deque()).append(owed)
            queue = socket.channels.setdefault(record.channel, deque())
            queue.append(owed)
            while len(queue) > MAX_WAITING and (queue[0].owed or queue[0].done or queue[0].delivered):
                head = queue.popleft()
                if head.owed and not head.done and not head.delivered:
                    self._lost_later.append(self._lost(socket, head))

    def _received(self, socket_id: int, key: bytes, record: TraceRecord) -> Iterator[InvariantViolation]:
        socket = self._sockets.get(socket_id)
        if socket is None:
            return
        waiting = socket.waiting.get(key)
        if not waiting:
            self._early.touch((socket_id, key), (self._early.get((socket_id, key)) or 0) + 1, record.t_sim,
                              record.t_wall)
            return
        owed = waiting.popleft()
        if not waiting:
            del socket.waiting[key]
        owed.delivered = True
        yield from self._overtaken(socket, owed)

    def _overtaken(self, socket: _Socket, delivered: _Owed) -> Iterator[InvariantViolation]:
        """Everything published before ``delivered`` on its channel and still missing is overtaken: lost once owed."""
        queue = socket.channels.get(delivered.channel)
        if not queue:
            return
        for owed in queue:
            if owed is delivered:
                break
            if not owed.delivered and not owed.done:
                owed.overtaken = True
                if owed.owed:
                    yield self._lost(socket, owed)
        while queue and (queue[0].delivered or queue[0].done):
            queue.popleft()
        if not queue:
            del socket.channels[delivered.channel]

    # --- deciding ---------------------------------------------------------------------------

    def _lost(self, socket: _Socket, owed: _Owed) -> InvariantViolation:
        owed.done = True
        waiting = socket.waiting.get(owed.key)
        if waiting is not None and owed in waiting:
            waiting.remove(owed)
            if not waiting:
                del socket.waiting[owed.key]
        return violation(self.name, f"socket {owed.socket} of user {socket.user}: 1 of 1 message(s) "
                         f"published on {owed.channel} while it was open never arrived", owed.record,
                         expected=1, actual=0)

    def _closed(self, socket_id: int, t: float) -> list[InvariantViolation]:
        socket = self._sockets.pop(socket_id, None)
        if socket is None:
            return []
        self._users[socket.user].discard(socket_id)
        if not self._users[socket.user]:
            del self._users[socket.user]
        return self._settle_socket(socket, until=t)

    def _settle_socket(self, socket: _Socket, *, until: float) -> list[InvariantViolation]:
        """The socket is gone at ``until``: it was owed what it stayed open for, and what it never got is lost."""
        for owed in socket.grace:
            if not owed.owed and not owed.done and owed.t + self._grace <= until:
                owed.owed = True
                self.checked += 1
        found = []
        for queue in socket.channels.values():
            for owed in queue:
                if owed.owed and not owed.done and not owed.delivered:
                    found.append(self._lost(socket, owed))
                owed.done = True
        for owed in socket.grace:
            owed.done = True
        socket.channels.clear()
        socket.waiting.clear()
        socket.grace.clear()
        return found

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        found, self._lost_later = self._lost_later, []
        for owed in self._due.due(t_sim):
            socket = self._sockets.get(owed.socket)
            if socket is None or owed.done:
                continue  # the socket closed before: settled by the close
            owed.owed = True
            self.checked += 1
            while socket.grace and socket.grace[0].owed:
                socket.grace.popleft()
            if owed.delivered:
                owed.done = True
            elif owed.overtaken:
                found.append(self._lost(socket, owed))
        self._early.forget(t_sim, t_wall)
        return found

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        found = list(self.advance(end.t_sim, float("inf")))
        for socket in self._sockets.values():
            found.extend(self._settle_socket(socket, until=end.t_sim))
        self._due = Agenda()
        return found

    def state_size(self) -> int:
        return (len(self._due) + len(self._early)
                + sum(len(q) for s in self._sockets.values() for q in (*s.channels.values(), s.grace)))
