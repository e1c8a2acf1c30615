"""The client side of ``chargetwin check``: REST calls and WebSockets whose every message enters the pipeline.

A :class:`Probe` is what an app can be: an HTTP client of the backend and
sockets on the gateway. Everything it sends and receives becomes a
:class:`~chargetwin.harness.trace.TraceRecord` of the hops a run taps
(``app-backend``, ``gateway-app``), emitted into a judge's pipeline: the
contracts' validator and the cross-message checks judge a target's traffic
exactly as they judge a run's. Nothing here looks inside a service.

Requests that are wrong on purpose (no body, a body that is not JSON, a
body the contracts reject) are not recorded as requests: the check sent
them, and the pipeline would flag the check. Their answers are recorded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ..http_tap import parse_body
from ..pipeline import Pipeline
from ..trace import TraceRecord, correlation_ids

__all__ = ["Probe", "Reply", "Socket", "redacted"]


@dataclass(frozen=True, slots=True)
class Reply:
    """A REST answer: its status and body (JSON, else text, else None)."""

    status: int
    body: Any

    @property
    def error(self) -> str | None:
        """The error envelope's ``error`` title, if the body is one."""
        if isinstance(self.body, dict) and self.body.get("success") is False:
            title = self.body.get("error")
            return title if isinstance(title, str) else None
        return None

    def said(self) -> str:
        """The answer in a few words, for a case's message."""
        text = self.body if isinstance(self.body, str) else json.dumps(self.body, ensure_ascii=False)
        return f"HTTP {self.status} {text[:200]}"


@dataclass(slots=True)
class Socket:
    """One app socket on the gateway: what it received, and how it was closed."""

    user_id: int | None
    socket_id: int
    connection: ClientConnection | None = None
    received: list[Any] = field(default_factory=list)
    close: tuple[int, str] | None = None  # (code, reason) of the gateway's close frame
    refused: str | None = None  # the handshake failed: why
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _reader: asyncio.Task[None] | None = None

    async def wait_for(self, match: Callable[[Any], bool], timeout: float) -> Any | None:
        """The first message received that ``match``es (waiting up to ``timeout`` s), or None."""
        async with self._arrived:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        found = next((m for m in self.received if match(m)), None)
                        if found is not None or self.close is not None:
                            return found
                        await self._arrived.wait()
            except TimeoutError:
                return None

    async def wait_closed(self, timeout: float) -> tuple[int, str] | None:
        """The gateway's close frame (code, reason), waiting up to ``timeout`` s; None if it did not close."""
        if self._reader is not None:
            await asyncio.wait({self._reader}, timeout=timeout)
        return self.close

    @property
    def open(self) -> bool:
        return self.connection is not None and self.close is None and self._reader is not None \
            and not self._reader.done()


def redacted(message: Any) -> Any:
    """``message`` as it may be recorded: a password masked, a token's signature removed (still a JWS in form).

    Records end up in traces, results and reports, which CI publishes: a
    usable token or a password must never be in them.
    """
    if not isinstance(message, dict):
        return message
    copy = dict(message)
    if isinstance(copy.get("password"), str):
        copy["password"] = "********"
    data = copy.get("data")
    if isinstance(data, dict) and isinstance(data.get("token"), str):
        parts = data["token"].split(".")
        copy["data"] = {**data, "token": ".".join([*parts[:2], "redacted"]) if len(parts) == 3 else "redacted"}
    return copy


class Probe:
    """An app's view of a target: ``backend`` (http URL) and ``gateway`` (ws URL), tapped into ``pipeline``."""

    def __init__(self, pipeline: Pipeline, *, backend: str, gateway: str, cms: str | None = None,
                 timeout: float = 10.0) -> None:
        self.pipeline = pipeline
        self.backend_url = backend.rstrip("/")
        self.gateway = gateway.rstrip("/")
        self._http = httpx.AsyncClient(base_url=backend.rstrip("/"), timeout=timeout)
        # the CMS's REST API is the backend's to call: its calls are recorded on the backend-cms hop
        self._cms = httpx.AsyncClient(base_url=cms.rstrip("/"), timeout=timeout + 5.0) if cms else None
        self._timeout = timeout
        self._t0 = time.monotonic()
        self._requests = itertools.count(1)
        self._socket_ids = itertools.count(1)
        self._lines = itertools.count(2)  # line 1 of the trace is the twin:run header
        self._sockets: list[Socket] = []

    def now(self) -> float:
        return round(time.monotonic() - self._t0, 4)

    def emit(self, hop: str, channel: str, direction: str, message: Any, *, status: int | None = None,
             user_id: int | None = None, socket_id: int | None = None, request_id: str | None = None,
             charger_id: str | None = None) -> None:
        t = self.now()
        self.pipeline.emit(TraceRecord(hop=hop, channel=channel, direction=direction, message=message, t_sim=t,
                                       t_wall=t, status=status, user_id=user_id, socket_id=socket_id,
                                       request_id=request_id, charger_id=charger_id, line=next(self._lines),
                                       **correlation_ids(message)))

    # --- REST -------------------------------------------------------------------------------------

    async def post_cms(self, path: str, body: Any = None, *, content: bytes | None = None,
                       record_request: bool = True) -> Reply:
        """POST to the CMS's REST API as the backend does; the answer, recorded on the ``backend-cms`` hop."""
        assert self._cms is not None, "the probe has no CMS URL"
        channel = f"cms:{path}"
        request_id = str(next(self._requests))
        charger = body.get("charger_id") if isinstance(body, dict) else None
        charger_id = charger if isinstance(charger, str) else None
        if record_request:
            self.emit("backend-cms", channel, "request", body, request_id=request_id, charger_id=charger_id)
        if content is not None:
            response = await self._cms.post(path, content=content, headers={"Content-Type": "application/json"})
        else:
            response = await self._cms.post(path, json=body)
        message = parse_body(response.content)
        self.emit("backend-cms", channel, "response", message, status=response.status_code, request_id=request_id,
                  charger_id=charger_id)
        return Reply(response.status_code, message)

    async def post(self, path: str, body: Any = None, *, token: str | None = None, user_id: int | None = None,
                   content: bytes | None = None, record_request: bool = True) -> Reply:
        """POST ``body`` as JSON (or the raw ``content``) to the backend; the answer, recorded.

        ``record_request=False`` for a request that is wrong on purpose. A
        transport error (refused, timed out) is raised as
        :class:`httpx.HTTPError`.
        """
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        channel = f"backend:{path}"
        request_id = str(next(self._requests))
        if record_request:
            self.emit("app-backend", channel, "request", redacted(body), user_id=user_id, request_id=request_id)
        if content is not None:
            headers["Content-Type"] = "application/json"
            response = await self._http.post(path, content=content, headers=headers)
        else:
            response = await self._http.post(path, json=body, headers=headers)
        message = parse_body(response.content)
        self.emit("app-backend", channel, "response", redacted(message), status=response.status_code,
                  user_id=user_id, request_id=request_id)
        return Reply(response.status_code, message)

    # --- WebSocket --------------------------------------------------------------------------------

    async def open_socket(self, token: str | None, *, user_id: int | None, query: str | None = None) -> Socket:
        """A socket on the gateway with ``?token=`` (none if ``token`` is None; ``query`` replaces the query).

        The handshake is waited for; messages and the close frame are then
        recorded as they come. A refused handshake is ``Socket.refused``.
        """
        socket = Socket(user_id, next(self._socket_ids))
        if query is None:
            query = "" if token is None else f"?token={token}"
        try:
            socket.connection = await connect(f"{self.gateway}/{query}", open_timeout=self._timeout,
                                              ping_interval=None, compression=None, max_size=None)
        except InvalidStatus as error:
            socket.refused = f"the handshake was refused with HTTP {error.response.status_code}"
            return socket
        except (OSError, TimeoutError, WebSocketException) as error:
            socket.refused = f"no WebSocket to {self.gateway}: {type(error).__name__}: {error}"
            return socket
        socket._reader = asyncio.get_running_loop().create_task(self._read(socket))
        self._sockets.append(socket)
        return socket

    async def _read(self, socket: Socket) -> None:
        connection = socket.connection
        assert connection is not None
        try:
            async for frame in connection:
                message = parse_body(frame.encode() if isinstance(frame, str) else frame)
                self.emit("gateway-app", "websocket", "receive", message, user_id=socket.user_id,
                          socket_id=socket.socket_id)
                async with socket._arrived:
                    socket.received.append(message)
                    socket._arrived.notify_all()
        except ConnectionClosed:
            pass
        received = connection.protocol.close_rcvd
        if received is not None and connection.protocol.close_rcvd_then_sent:  # the gateway closed first
            socket.close = (received.code, received.reason)
            self.emit("gateway-app", "websocket", "close", {"code": received.code, "reason": received.reason},
                      user_id=socket.user_id, socket_id=socket.socket_id)
        else:
            socket.close = (connection.close_code or 1006, connection.close_reason or "")
        async with socket._arrived:
            socket._arrived.notify_all()

    async def send_frame(self, socket: Socket, text: str) -> None:
        """A frame from the app, wrong on purpose (the socket is receive-only): not recorded."""
        assert socket.connection is not None
        await socket.connection.send(text)

    async def close_socket(self, socket: Socket) -> None:
        """The app leaves (close 1000); recorded as the run's apps record it."""
        if socket.connection is None or socket.close is not None:
            return
        await socket.connection.close()
        if socket._reader is not None:
            await asyncio.wait({socket._reader}, timeout=self._timeout)
        if socket.close is not None and not socket.connection.protocol.close_rcvd_then_sent:
            self.emit("gateway-app", "websocket", "close", {"code": 1000, "reason": ""}, user_id=socket.user_id,
                      socket_id=socket.socket_id)

    async def aclose(self) -> None:
        """Close every socket still open and the HTTP client."""
        for socket in self._sockets:
            await self.close_socket(socket)
        await self._http.aclose()
        if self._cms is not None:
            await self._cms.aclose()
