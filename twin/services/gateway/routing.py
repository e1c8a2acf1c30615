"""The gateway's routing core, without I/O: who may connect, which socket gets which Redis message.

:class:`Router` is a state machine in the manner of ``websockets``' sans-I/O
protocol: the asyncio adapter (:mod:`.server`) feeds it events (a socket
asks to connect, a Redis message arrives, a socket goes away) and acts on its
decisions (close with this code, write this payload to these sockets, drop
these slow ones). Tests drive it with plain objects as connections.

Before the handshake, :func:`path_allowed` (else HTTP 404). Call order for one
connection: :meth:`Router.admit` (a :class:`Rejection` means close, nothing was
registered); then :func:`user_rejection` with what Redis says of the user (a
:class:`Rejection`: :meth:`Router.remove`, then close); while the welcome
messages go out the connection is *pending* and the Redis messages for it are queued;
:meth:`Router.go_live` hands them back, in order, and from then on
:meth:`Router.route` names it in ``Routing.send``; :meth:`Router.remove` when
it closes (idempotent).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "AT_CAPACITY",
    "AUTHENTICATION_REQUIRED",
    "CHANNEL_KINDS",
    "CHANNEL_PATTERNS",
    "CLIENT_TOO_SLOW",
    "INVALID_TOKEN",
    "TOO_MANY_CONNECTIONS",
    "TOO_MANY_MESSAGES",
    "Admitted",
    "FloodGuard",
    "Rejection",
    "Router",
    "Routing",
    "parse_channel",
    "path_allowed",
    "token_from_path",
    "user_rejection",
]

C = TypeVar("C", bound=Hashable)

CHANNEL_KINDS: Final = ("notifications", "session_updates", "charger_updates")
"""The per-user channels of seed section 3 (``user:{userId}:{kind}``)."""

CHANNEL_PATTERNS: Final = tuple(f"user:*:{kind}" for kind in CHANNEL_KINDS)
"""What the gateway PSUBSCRIBEs to: three patterns for all users, never one subscription per user."""

_CHANNEL = re.compile(rb"user:([1-9][0-9]{0,17}):(" + b"|".join(k.encode() for k in CHANNEL_KINDS) + rb")")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Close the connection with this code and reason (``contracts/close-codes.json``)."""

    code: int
    reason: str


# Seed, Error Handling: "Connection Rejected" and "Server at Capacity".
AUTHENTICATION_REQUIRED: Final = Rejection(1008, "Authentication required")
INVALID_TOKEN: Final = Rejection(1008, "Invalid authentication token")
AT_CAPACITY: Final = Rejection(1008, "Server at capacity")
# SPEC-NOTES N-26 (a chargetwin ruling): the send buffer overflowed.
CLIENT_TOO_SLOW: Final = Rejection(1013, "Client too slow")
# SPEC-NOTES N-57 (a chargetwin ruling): an app that floods the socket, or holds too many sockets.
TOO_MANY_MESSAGES: Final = Rejection(1008, "Too many messages")
TOO_MANY_CONNECTIONS: Final = Rejection(1008, "Too many connections")


class FloodGuard:
    """At most ``limit`` client frames in any ``window_s`` seconds on one socket (SPEC-NOTES N-57).

    Keeps the times of the last ``limit`` frames only: memory per socket is bounded.
    """

    def __init__(self, *, limit: int = 20, window_s: float = 10.0) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s above 0")
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=limit)

    def allow(self, now: float) -> bool:
        """Count a frame received at ``now`` (monotonic seconds); False once it is one too many."""
        full = len(self._times) == self.limit and now - self._times[0] < self.window_s
        self._times.append(now)
        return not full


@dataclass(frozen=True, slots=True)
class Admitted:
    """The connection is registered (pending) for ``user_id``."""

    user_id: int


@dataclass(frozen=True, slots=True)
class Routing(Generic[C]):
    """What to do with one Redis message.

    ``send``: write the payload, unchanged, to these live connections.
    ``queued``: how many pending connections queued it. ``dropped``: slow
    connections, already unregistered, to close with :data:`CLIENT_TOO_SLOW`.
    ``problem``: why the message goes nowhere at all (bad channel or payload).
    """

    user_id: int | None
    send: tuple[C, ...] = ()
    dropped: tuple[C, ...] = ()
    queued: int = 0
    problem: str | None = None


def parse_channel(channel: bytes | str) -> tuple[int, str] | None:
    """``(user_id, kind)`` of a canonical ``user:{id}:{kind}`` channel, else None.

    Only the form the backend writes (``str(user_id)``, no sign, no leading
    zero) is accepted, so one user's channel can never be read as another's.
    """
    raw = channel.encode() if isinstance(channel, str) else channel
    match = _CHANNEL.fullmatch(raw)
    if match is None:
        return None
    return int(match[1]), match[2].decode()


def path_allowed(path: str) -> bool:
    """Whether a request path is the gateway's: the root, as in seed 2's ``ws://host:8080?token=JWT``."""
    return urlsplit(path).path == "/"


def user_rejection(*, registry: bool, member: bool) -> Rejection | None:
    """Whether the user of a valid token may connect: :data:`INVALID_TOKEN` for a user the backend does not know.

    ``registry``: Redis holds the backend's user ids (``chargetwin:users``, written
    by the backend at start; docs/stack.md); ``member``: this user is one of them.
    The backend answers 401 "Invalid authentication token" for the same token. Without
    the key (a backend that does not write it) the gateway cannot tell, and admits.
    """
    return INVALID_TOKEN if registry and not member else None


def token_from_path(path: str) -> str | None:
    """The ``token`` query parameter of a request path (seed 2: ``ws://host:8080?token=JWT``); None if empty."""
    values = parse_qs(urlsplit(path).query, keep_blank_values=True).get("token")
    return values[0] if values and values[0] else None


@dataclass(slots=True)
class _Entry:
    user_id: int
    pending: list[bytes] | None = field(default_factory=list)  # None once live
    pending_bytes: int = 0


class Router(Generic[C]):
    """User id -> connections, admission and the slow-client policy.

    Slow clients: a connection whose unsent data (``unsent(connection)`` for
    a live one, its queue for a pending one) is not empty and would exceed
    ``max_buffer_bytes`` with the next message is dropped instead of written
    to. Memory per connection is thus bounded by about ``max_buffer_bytes``
    (or one message, if a single message is bigger), and one slow app never
    holds up the others: nothing here waits.
    """

    def __init__(self, *, max_connections: int, max_buffer_bytes: int, max_per_user: int = 10) -> None:
        if max_connections < 0 or max_buffer_bytes < 1 or max_per_user < 1:
            raise ValueError("max_connections must be >= 0, max_buffer_bytes and max_per_user >= 1")
        self.max_connections = max_connections
        self.max_per_user = max_per_user
        self.max_buffer_bytes = max_buffer_bytes
        self._entries: dict[C, _Entry] = {}
        self._by_user: dict[int, set[C]] = {}

    @property
    def connection_count(self) -> int:
        return len(self._entries)

    @property
    def user_count(self) -> int:
        return len(self._by_user)

    def connections_of(self, user_id: int) -> frozenset[C]:
        return frozenset(self._by_user.get(user_id, ()))

    def user_of(self, connection: C) -> int | None:
        entry = self._entries.get(connection)
        return None if entry is None else entry.user_id

    def is_live(self, connection: C) -> bool:
        entry = self._entries.get(connection)
        return entry is not None and entry.pending is None

    def admit(self, connection: C, token: str | None, verify: Callable[[str], int]) -> Admitted | Rejection:
        """Authenticate, then check capacity; register ``connection`` as pending when admitted.

        ``verify`` returns the user id of a token or raises; any exception
        rejects the token (fail closed).
        """
        if token is None:
            return AUTHENTICATION_REQUIRED
        try:
            user_id = verify(token)
        except Exception:
            return INVALID_TOKEN
        if len(self._entries) >= self.max_connections:
            return AT_CAPACITY
        if len(self._by_user.get(user_id, ())) >= self.max_per_user:
            return TOO_MANY_CONNECTIONS
        if connection in self._entries:
            raise ValueError(f"{connection!r} is already registered")
        self._entries[connection] = _Entry(user_id)
        self._by_user.setdefault(user_id, set()).add(connection)
        return Admitted(user_id)

    def go_live(self, connection: C) -> list[bytes]:
        """Mark a pending connection live; the payloads queued meanwhile, oldest first, to write now."""
        entry = self._entries.get(connection)
        if entry is None or entry.pending is None:
            return []
        queued, entry.pending, entry.pending_bytes = entry.pending, None, 0
        return queued

    def route(self, channel: bytes | str, payload: bytes, *, unsent: Callable[[C], int]) -> Routing[C]:
        """Decide where one Redis message goes: only to the connections of the user named in ``channel``."""
        target = parse_channel(channel)
        if target is None:
            return Routing(None, problem=f"channel {channel!r} is not user:{{id}}:{{{'|'.join(CHANNEL_KINDS)}}}")
        user_id = target[0]
        if not _is_utf8(payload):
            return Routing(user_id, problem="payload is not UTF-8 text")
        send: list[C] = []
        dropped: list[C] = []
        queued = 0
        for connection in self._by_user.get(user_id, ()):
            entry = self._entries[connection]
            backlog = unsent(connection) if entry.pending is None else entry.pending_bytes
            if backlog and backlog + len(payload) > self.max_buffer_bytes:
                dropped.append(connection)
            elif entry.pending is not None:
                entry.pending.append(payload)
                entry.pending_bytes += len(payload)
                queued += 1
            else:
                send.append(connection)
        for connection in dropped:
            self.remove(connection)
        return Routing(user_id, tuple(send), tuple(dropped), queued)

    def remove(self, connection: C) -> int | None:
        """Forget a connection; its user id, or None if it was not registered (already removed)."""
        entry = self._entries.pop(connection, None)
        if entry is None:
            return None
        sockets = self._by_user[entry.user_id]
        sockets.discard(connection)
        if not sockets:
            del self._by_user[entry.user_id]
        return entry.user_id


def _is_utf8(payload: bytes) -> bool:
    # A text frame must carry UTF-8 (RFC 6455, 5.6): forwarding anything else would make apps fail with 1007.
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
