"""Live checks of the apps that use the twin: every request an app sends is judged against the contracts.

A mobile developer points an app at ``chargetwin serve``; :class:`AppWatch`
judges what that app sends as it arrives (the checks, without I/O, are in
:mod:`._appwatch_checks`): its REST requests to the backend (method,
``Authorization``, ``Content-Type``, the body against the request schema),
its WebSocket handshakes with the gateway (path, query string, token), and
every frame it sends on the receive-only socket. Each violation is logged
as one line (at most ``burst`` lines per ``window_s``, so that a broken app
cannot flood the terminal), kept in memory (the last ``limit``, and a count
per rule: memory does not grow with time) and served at ``GET
/twin/violations`` on the backend.

The services meet it through two adapters of this module, both passive
(what they see goes on unchanged, and a failure of the watch is logged,
never raised into a service):

- :class:`AppWatchMiddleware`, an ASGI middleware that :meth:`AppWatch.install`
  puts on the backend's app with the ``/twin/violations`` route;
- :attr:`AppWatch.connection_type`, the gateway's ``websockets`` connection
  class (``serve(create_connection=...)``): it sees each handshake request,
  each frame the app sends, and, while someone listens, each frame the gateway
  writes (``broadcast`` included), each pong and the end of each socket.

Everything an app sends and receives is also handed to a listener
(:meth:`AppWatch.listen`; ``chargetwin serve --record`` writes it into a
trace) as ``on_traffic(channel, direction, message, status, user_id,
socket_id)``, the signature of the harness's simulated apps: REST requests
and responses on ``backend:/api/...``, and on ``websocket`` the frames the
app sent (``send``), those the gateway sent it (``receive``), the close
frame (``close``: the gateway's, or 1000 when the app closed or vanished)
and the heartbeat (``ping`` sent, ``pong`` received; message ``{}``).

Call order: make one watch per stack, :meth:`AppWatch.listen` (optional)
before the services start, hand it to the backend (``create_app(watch=)``)
and the gateway (``Gateway(watch=)``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from fastapi import Query
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from websockets.asyncio.server import ServerConnection
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Event

from chargetwin.contracts import Validator, Violation, default_validator
from chargetwin.contracts.catalog import WEBSOCKET_CHANNEL

from . import auth
from ._appwatch_checks import (
    BACKEND_CHANNELS,
    check_client_frame,
    check_closed_by_protocol,
    check_handshake,
    check_rest_request,
    frame_message,
    parse_body,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["DEFAULT_LIMIT", "AppViolation", "AppWatch", "AppWatchMiddleware", "RateLimit", "Traffic"]

log = logging.getLogger("chargetwin.appwatch")

DEFAULT_LIMIT = 1000
"""Violations kept in memory (the newest); counts cover all of them."""

Traffic = Callable[[str, str, Any, int | None, int | None, int | None], None]
"""``on_traffic(channel, direction, message, status, user_id, socket_id)``."""

_NOT_APP = frozenset({"OPTIONS", "HEAD"})  # a browser's preflight, a probe: not the app's calls


@dataclass(frozen=True, slots=True)
class AppViolation:
    """One violation of an app, as ``GET /twin/violations`` shows it.

    ``seq`` numbers the violations since the twin started (1, 2, ...: poll
    with ``?since=`` the last one seen); ``at`` is the wall time (UTC) it
    was found; ``source`` is ``rest`` or ``websocket``; ``direction`` is
    always ``request``: what the app sent.
    """

    seq: int
    at: str
    source: str
    channel: str
    direction: str
    rule: str
    pointer: str
    message: str
    user_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RateLimit:
    """At most ``burst`` lines per ``window_s`` seconds; tells, when the next window opens, how many it held back."""

    def __init__(self, *, burst: int = 10, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._burst, self._window_s, self._clock = burst, window_s, clock
        self._opened = float("-inf")
        self._shown = 0
        self._held = 0

    def admit(self) -> tuple[bool, int]:
        """``(show this line, lines held back since the last one shown)``."""
        now, held = self._clock(), 0
        if now - self._opened >= self._window_s:
            self._opened, self._shown, held, self._held = now, 0, self._held, 0
        if self._shown < self._burst:
            self._shown += 1
            return True, held
        self._held += 1
        return False, held


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AppWatch:
    """The apps' violations, found live; see the module's docstring.

    ``secret``: the JWT secret the apps' tokens are signed with (or
    ``verify``: token -> user id, raising :class:`~.auth.AuthError`).
    ``limit``: violations kept; ``burst`` and ``window_s``: the rate of log
    lines (:class:`RateLimit`). ``now``: the wall clock of ``at``.
    """

    def __init__(self, *, secret: str | None = None, verify: Callable[[str], int] | None = None,
                 limit: int = DEFAULT_LIMIT, burst: int = 10, window_s: float = 10.0,
                 now: Callable[[], datetime] = _utc_now, validator: Validator | None = None) -> None:
        if verify is None:
            if secret is None:
                raise ValueError("AppWatch needs the apps' JWT secret (secret=) or a verify= function")
            verify = partial(auth.verify_token, secret=secret)
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._verify = verify
        self._validator = validator or default_validator()
        self._kept: deque[AppViolation] = deque(maxlen=limit)
        self._by_rule: Counter[str] = Counter()
        self._total = 0
        self._now = now
        self._printing = RateLimit(burst=burst, window_s=window_s)
        self._on_traffic: Traffic | None = None
        self._socket_ids = itertools.count(1)
        self._last_sent: tuple[object, Any] = (None, None)
        self.connection_type: type[ServerConnection] = type("WatchedConnection", (_WatchedConnection,),
                                                            {"watch": self})
        """The gateway's connection class (``websockets.asyncio.server.serve(create_connection=...)``)."""

    # --- what was found ----------------------------------------------------------------------

    @property
    def total(self) -> int:
        """Violations found since the watch was made (kept or not)."""
        return self._total

    @property
    def by_rule(self) -> dict[str, int]:
        return dict(sorted(self._by_rule.items()))

    def violations(self, *, since: int = 0) -> list[AppViolation]:
        """The kept violations numbered above ``since``, oldest first."""
        return [v for v in self._kept if v.seq > since]

    def snapshot(self, *, since: int = 0) -> dict[str, Any]:
        """The ``data`` of ``GET /twin/violations``."""
        return {"violations": [v.to_dict() for v in self.violations(since=since)], "total": self._total,
                "by_rule": self.by_rule}

    def add(self, source: str, channel: str, violations: Sequence[Violation], user_id: int | None) -> None:
        """Keep, count and log the violations of one thing an app sent."""
        for violation in violations:
            self._total += 1
            self._by_rule[violation.rule] += 1
            at = self._now().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            found = AppViolation(self._total, at, source, channel, "request", violation.rule, violation.pointer,
                                 violation.message, user_id)
            self._kept.append(found)
            self._log(found)

    def _log(self, found: AppViolation) -> None:
        show, held = self._printing.admit()
        if held:
            log.warning("app violations: %d more not shown (GET /twin/violations has them)", held)
        if show:
            who = f", user {found.user_id}" if found.user_id is not None else ""
            where = f" at {found.pointer}" if found.pointer else ""
            log.warning("app violation (%s%s): %s%s: %s", found.channel, who, found.rule, where, found.message)

    # --- the listener ------------------------------------------------------------------------

    def listen(self, on_traffic: Traffic | None) -> None:
        """Hand every message an app sends or receives to ``on_traffic`` (None: stop); set before the services
        start, so that every socket is tapped."""
        self._on_traffic = on_traffic

    @property
    def listening(self) -> bool:
        return self._on_traffic is not None

    def _tap(self, channel: str, direction: str, message: Any, status: int | None, user_id: int | None,
             socket_id: int | None) -> None:
        if self._on_traffic is not None:
            self._on_traffic(channel, direction, message, status, user_id, socket_id)

    # --- the backend -------------------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        """Judge the app's requests to ``app`` (:class:`AppWatchMiddleware`) and serve ``GET /twin/violations``."""
        app.add_middleware(AppWatchMiddleware, watch=self)
        app.add_api_route("/twin/violations", self._violations_route, methods=["GET"], tags=["twin"],
                          summary="What the apps sent that breaks the contract (no token needed)")

    async def _violations_route(self, since: Annotated[int, Query(ge=0, description="only violations numbered "
                                                                                   "above this (a seq)")] = 0
                                ) -> dict[str, Any]:
        return {"success": True, "data": self.snapshot(since=since)}

    def rest_request(self, channel: str, *, method: str, headers: dict[str, str], body: bytes) -> int | None:
        """Judge (and tap) one request that arrived in full; the user its token names."""
        checked = check_rest_request(channel, method=method, headers=headers, body=body, verify=self._verify,
                                     validator=self._validator)
        self.add("rest", channel, checked.violations, checked.user_id)
        self._tap(channel, "request", checked.message, None, checked.user_id, None)
        return checked.user_id

    def rest_response(self, channel: str, status: int, body: bytes, user_id: int | None) -> None:
        self._tap(channel, "response", parse_body(body)[1], status, user_id, None)

    # --- the gateway -------------------------------------------------------------------------

    def _handshake(self, connection: _WatchedConnection) -> None:
        request = connection.request
        assert request is not None
        headers: dict[str, str] = {}
        for name, value in request.headers.raw_items():
            headers.setdefault(name.lower(), value)
        checked = check_handshake(request.path, headers, verify=self._verify)
        connection.app_user_id = checked.user_id
        self.add("websocket", WEBSOCKET_CHANNEL, checked.violations, checked.user_id)

    def _received(self, connection: _WatchedConnection, frame: Frame) -> None:
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):  # a message (its first frame, if fragmented)
            data = bytes(frame.data)
            checked = check_client_frame(data.decode("utf-8", errors="replace") if frame.opcode is Opcode.TEXT
                                         else data, validator=self._validator)
            self.add("websocket", WEBSOCKET_CHANNEL, checked.violations, connection.app_user_id)
            self._tap_socket(connection, "send", checked.message)
        elif frame.opcode is Opcode.PONG:
            self._tap_socket(connection, "pong", {})

    def _sent(self, connection: _WatchedConnection, frame: Frame) -> None:
        if frame.opcode is Opcode.TEXT:
            data = frame.data
            if data is not self._last_sent[0]:  # a broadcast writes one bytes object to every socket: parse it once
                self._last_sent = (data, frame_message(bytes(data)))
            self._tap_socket(connection, "receive", self._last_sent[1])
        elif frame.opcode is Opcode.PING:
            self._tap_socket(connection, "ping", {})
        elif frame.opcode is Opcode.CLOSE and not connection.close_tapped:
            connection.close_tapped = True
            if connection.protocol.close_rcvd is not None:  # the echo of the app's close: the app closed
                self._tap_socket(connection, "close", {"code": 1000, "reason": ""})
            else:
                close = Close.parse(frame.data)
                self._tap_socket(connection, "close", {"code": int(close.code), "reason": close.reason})

    def _closed(self, connection: _WatchedConnection) -> None:
        protocol = connection.protocol
        sent = protocol.close_sent
        if sent is not None and not protocol.close_rcvd_then_sent:
            self.add("websocket", WEBSOCKET_CHANNEL, check_closed_by_protocol(int(sent.code), sent.reason),
                     connection.app_user_id)
        opened = connection.response is not None and connection.response.status_code == 101
        if connection.tapped and opened and not connection.close_tapped:  # the app went without a close frame
            connection.close_tapped = True
            self._tap_socket(connection, "close", {"code": 1000, "reason": ""})

    def _tap_socket(self, connection: _WatchedConnection, direction: str, message: Any) -> None:
        self._tap(WEBSOCKET_CHANNEL, direction, message, None, connection.app_user_id, connection.app_socket_id)


class _WatchedConnection(ServerConnection):
    """The gateway's connection, reporting to :attr:`watch` (set on the subclass each :class:`AppWatch` makes)."""

    watch: ClassVar[AppWatch]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app_socket_id = next(self.watch._socket_ids)
        self.app_user_id: int | None = None
        self.close_tapped = False
        self.tapped = self.watch.listening
        if self.tapped:  # every frame the gateway writes passes through send_frame, broadcast's included
            self._write_frame = self.protocol.send_frame
            self.protocol.send_frame = self._send_frame  # type: ignore[method-assign]

    def _send_frame(self, frame: Frame) -> None:
        self._write_frame(frame)
        self._report(self.watch._sent, frame)

    def process_event(self, event: Event) -> None:
        handshake = self.request is None
        super().process_event(event)
        if handshake:
            self._report(self.watch._handshake)
        elif isinstance(event, Frame):
            self._report(self.watch._received, event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._report(self.watch._closed)

    def _report(self, hook: Callable[..., None], *args: Any) -> None:
        try:
            hook(self, *args)
        except Exception:  # the watch must never break a socket
            log.exception("the app watch failed on socket %d; the socket goes on", self.app_socket_id)


class AppWatchMiddleware:
    """ASGI middleware: each request to a backend endpoint of the contracts is judged once it arrived in full.

    The body is read before the route runs (a route may answer 401 without
    reading it) and handed on unchanged; while the watch listens, the
    response is tapped as it leaves.
    """

    def __init__(self, app: ASGIApp, *, watch: AppWatch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = BACKEND_CHANNELS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if channel is None or scope["method"] in _NOT_APP:
            await self.app(scope, receive, send)
            return
        body, first = await _read_body(receive)
        user_id = None
        if first["type"] == "http.request":  # arrived in full (a client that left is nobody's violation)
            headers: dict[str, str] = {}
            for name, value in scope["headers"]:
                headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
            user_id = self._guarded(self.watch.rest_request, channel, method=scope["method"], headers=headers,
                                    body=body)
        if self.watch.listening:
            send = self._tapped(send, channel, user_id)
        await self.app(scope, _replay(first, receive), send)

    def _tapped(self, send: Send, channel: str, user_id: int | None) -> Send:
        status, chunks = 0, []

        async def tapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    self._guarded(self.watch.rest_response, channel, status, b"".join(chunks), user_id)
            await send(message)

        return tapped

    @staticmethod
    def _guarded(hook: Callable[..., int | None], *args: Any, **kwargs: Any) -> int | None:
        try:
            return hook(*args, **kwargs)
        except Exception:  # the watch must never break a request
            log.exception("the app watch failed on a request; the request goes on")
            return None


async def _read_body(receive: Receive) -> tuple[bytes, Message]:
    """The whole body, and the message that hands it on: one ``http.request``, or the ``http.disconnect``
    of a client that left before sending it all."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(chunks)
            return body, {"type": "http.request", "body": body, "more_body": False}


def _replay(first: Message, receive: Receive) -> Receive:
    pending: list[Message] = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
