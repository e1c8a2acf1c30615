"""Simulated mobile apps: the model's drivers use the real backend and gateway, as people would.

:class:`AppUsers` plays the :class:`~chargetwin.twin.model.world.App` of a
world whose services are real (``chargetwin run``, later): after plugging in,
a driver's app calls ``POST /api/charging/start``; at the target SoC or on
leaving, ``POST /api/charging/stop``; while the app is open (the model's
AppOpened/AppClosed events) it holds a WebSocket to the gateway. Each REST
call runs as an asyncio task and completes the SimPy event the driver's
process waits on, so the model learns the outcome when the service answers.

Everything the apps send and receive goes to ``on_traffic`` (channel,
direction, message, status, user id, socket id): the runner's taps. That
includes each heartbeat ping an app gets and the pong that answers it
(direction ``ping`` / ``pong``, message ``{}``).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import simpy
from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State

from ..twin.model import events as ev
from ..twin.model.entities import Connector, Driver, Session
from ..twin.model.world import World
from ._interning import Interner

__all__ = ["AppMetrics", "AppUsers", "Traffic"]

_LOG = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64
"""REST calls of all apps in flight at once (the HTTP client's connections)."""

Traffic = Callable[[str, str, Any, int | None, int, int | None], None]
"""``on_traffic(channel, direction, message, status, user_id, socket_id)``."""


@dataclass(slots=True)
class AppMetrics:
    starts_accepted: int = 0
    starts_refused: int = 0
    stops_accepted: int = 0
    stops_refused: int = 0
    request_errors: int = 0
    sockets_opened: int = 0
    sockets_open: int = 0
    peak_sockets_open: int = 0
    messages_received: int = 0
    pings_received: int = 0
    pongs_sent: int = 0
    closes: dict[int, int] = field(default_factory=dict)


class _HeartbeatCounting(ClientConnection):
    """A client connection that counts the gateway's pings (seed "Heartbeat") and the pongs that answer them.

    The sans-I/O protocol answers every ping with a pong as it parses the frame
    (RFC 6455 5.5.2), before the ping reaches :meth:`process_event`; a pong
    goes out while the connection is open.
    """

    pings_received = 0
    pongs_sent = 0
    heartbeat: Callable[[str], None] | None = None
    """Told ``"ping"`` for each ping and ``"pong"`` for each pong that answers it (the taps)."""

    def process_event(self, event: Event) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.pings_received += 1
            answered = self.protocol.state is State.OPEN
            self.pongs_sent += answered
            if self.heartbeat is not None:
                self.heartbeat("ping")
                if answered:
                    self.heartbeat("pong")
        super().process_event(event)


class AppUsers:
    """The apps of every driver of ``world``; install with ``world.app = apps`` before the run."""

    def __init__(self, world: World, *, backend_url: str, gateway_url: str,
                 token_for: Callable[[int], str | Awaitable[str]],
                 on_traffic: Traffic | None = None, timeout_s: float = 30.0,
                 interner: Interner | None = None) -> None:
        self.world = world
        self._backend = backend_url
        self._gateway = gateway_url
        self._token_for = token_for
        self._on_traffic = on_traffic or (lambda *args: None)
        self._interner = interner or Interner()  # the copies of a fan-out share one parsed message
        self._http = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=MAX_IN_FLIGHT))
        # Requests queued inside httpcore's pool cost time quadratic in their number: queue them here.
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sockets: dict[int, tuple[int, asyncio.Task[None]]] = {}
        self._socket_ids = itertools.count(1)
        self.metrics = AppMetrics()
        self._record_closes = True
        world.subscribe(self._on_event)

    # --- the App protocol of the world ---------------------------------------------------

    def request_start(self, driver: Driver, connector: Connector) -> simpy.Event:
        body = {"charger_id": connector.charge_point.id, "connector_id": connector.id}
        return self._call(driver, "/api/charging/start", body, start=True)

    def request_stop(self, driver: Driver, session: Session) -> simpy.Event:
        return self._call(driver, "/api/charging/stop", {"charger_id": session.charge_point_id}, start=False)

    async def _token(self, user_id: int) -> str:
        """The user's token; ``token_for`` may give one, or an awaitable of one (a target's login)."""
        token = self._token_for(user_id)
        return await token if inspect.isawaitable(token) else token

    def _call(self, driver: Driver, path: str, body: dict[str, Any], *, start: bool) -> simpy.Event:
        outcome: simpy.Event = self.world.env.event()
        self._spawn(self._post(driver.user_id, path, body, outcome, start=start))
        return outcome

    async def _post(self, user_id: int, path: str, body: dict[str, Any], outcome: simpy.Event, *,
                    start: bool) -> None:
        channel = f"backend:{path}"
        accepted = False
        try:
            token = await self._token(user_id)
            async with self._in_flight:  # the request leaves the phone (and is tapped) once a connection is free
                self._on_traffic(channel, "request", body, None, user_id, None)
                answer = await self._http.post(self._backend + path, json=body,
                                               headers={"Authorization": f"Bearer {token}"})
        except (httpx.HTTPError, ValueError) as error:  # ValueError: no token for the user (a target's)
            self.metrics.request_errors += 1
            _LOG.warning("app of user %d: %s failed: %s", user_id, path, error)
        else:
            try:
                answer_body: Any = answer.json()
            except ValueError:
                answer_body = answer.text
            self._on_traffic(channel, "response", answer_body, answer.status_code, user_id, None)
            accepted = answer.status_code == 200
        if start:
            self.metrics.starts_accepted += accepted
            self.metrics.starts_refused += not accepted
        else:
            self.metrics.stops_accepted += accepted
            self.metrics.stops_refused += not accepted
        if not outcome.triggered:
            outcome.succeed(accepted)

    # --- the WebSocket of an open app -----------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        """World sink (called inside a SimPy step): open or close the user's socket."""
        if isinstance(event, ev.AppOpened) and event.user_id not in self._sockets:
            socket_id = next(self._socket_ids)
            task = self._spawn(self._hold_socket(event.user_id, socket_id))
            self._sockets[event.user_id] = (socket_id, task)
        elif isinstance(event, ev.AppClosed) and event.user_id in self._sockets:
            _, task = self._sockets.pop(event.user_id)
            task.cancel()

    async def _hold_socket(self, user_id: int, socket_id: int) -> None:
        url = f"{self._gateway}/?token={await self._token(user_id)}"
        socket: ClientConnection | None = None
        try:
            socket = await connect(url, ping_interval=None, max_size=None, compression=None,
                                   create_connection=_HeartbeatCounting)
            if isinstance(socket, _HeartbeatCounting):
                socket.heartbeat = lambda kind: self._on_traffic("websocket", kind, {}, None, user_id, socket_id)
            self._opened()
            async for frame in socket:
                self.metrics.messages_received += 1
                message = self._interner.parse(frame)
                self._on_traffic("websocket", "receive", message, None, user_id, socket_id)
        except asyncio.CancelledError:
            pass
        except Exception as error:  # a refused or broken socket is traffic to report, not a crash
            _LOG.warning("app of user %d: WebSocket: %s", user_id, error)
        finally:
            if socket is not None:
                with suppress(Exception):
                    await socket.close()
                self._closed(socket, user_id, socket_id)

    def _opened(self) -> None:
        self.metrics.sockets_opened += 1
        self.metrics.sockets_open += 1
        self.metrics.peak_sockets_open = max(self.metrics.peak_sockets_open, self.metrics.sockets_open)

    def _closed(self, socket: ClientConnection, user_id: int, socket_id: int) -> None:
        self.metrics.sockets_open -= 1
        if isinstance(socket, _HeartbeatCounting):
            self.metrics.pings_received += socket.pings_received
            self.metrics.pongs_sent += socket.pongs_sent
        code = socket.close_code if socket.close_code is not None else 1006
        self.metrics.closes[code] = self.metrics.closes.get(code, 0) + 1
        protocol = socket.protocol
        received = protocol.close_rcvd
        if received is not None and protocol.close_rcvd_then_sent:  # the gateway closed first: its frame
            frame = {"code": received.code, "reason": received.reason}
        else:  # the app closed (or the connection broke): the socket stops listening all the same
            frame = {"code": 1000, "reason": ""}
        if self._record_closes:
            self._on_traffic("websocket", "close", frame, None, user_id, socket_id)

    # --- lifecycle ----------------------------------------------------------------------------

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self, *, record: bool = True) -> None:
        """Close every socket, wait for the calls in flight, close the HTTP client.

        ``record=False``: the sockets' closes are not reported (the end of a run: every
        app still open counts as open to the end of the trace).
        """
        self._record_closes = record
        for _, task in self._sockets.values():
            task.cancel()
        self._sockets.clear()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        await self._http.aclose()
