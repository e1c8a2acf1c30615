"""Test kit of the CMS and charge point tests: a small network, an event receiver, polling.

The receiver plays the backend's ``POST /internal/cms/events`` on a real
port (the real backend is tested on its own): it records every event, can
answer a chosen status, and can go away and come back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI, Request, Response

from chargetwin.twin.model.config import (
    ChargePointSpec,
    DemandSpec,
    EVModel,
    FleetSpec,
    NetworkSpec,
    RunSpec,
    Scenario,
    StationSpec,
)
from chargetwin.twin.services.settings import Settings

T = TypeVar("T")

START = datetime(2025, 1, 29, 16, 0, tzinfo=UTC)
TOKEN = "test-internal-token"

STATION = StationSpec(
    id="STATION001", name="Cillout Mansoura", address="15 Tahrir Street, Downtown, Cairo",
    latitude=30.0444, longitude=31.2357, tariff_per_kwh=7.41, currency="EGP",
    charge_points=(ChargePointSpec("CP001", "AC", 22.0, 2), ChargePointSpec("CP002", "DC", 60.0, 1)),
)
NETWORK = (STATION,)


def scenario(*, users: int = 4, seed: int = 1, stations: tuple[StationSpec, ...] = NETWORK) -> Scenario:
    """No arrivals at all: sessions happen only when a test (or a RemoteStart) starts them."""
    return Scenario(
        name="cms-test", description="built by the CMS tests",
        run=RunSpec(START, 6 * 3600.0, seed=seed),
        network=NetworkSpec(stations=stations),
        fleet=FleetSpec(users, (EVModel("Tesla Model 3 LR", 1, 75.0, 11.0, 170.0),)),
        demand=DemandSpec(0.0),
    )


def settings(**changes: Any) -> Settings:
    """Any free ports, a short CMS timeout, the test token."""
    base = Settings(backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0, internal_token=TOKEN,
                    cms_timeout_s=1.0)
    return replace(base, **changes)


def run(main: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run ``main`` in a fresh loop; a hang fails the test instead of blocking it."""
    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await main
    return asyncio.run(bounded())


async def eventually(predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds, or fail after ``timeout`` wall seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_app(app: FastAPI, port: int = 0) -> tuple[_Embedded, asyncio.Task[None], int]:
    sock = socket.create_server(("127.0.0.1", port))
    bound: int = sock.getsockname()[1]
    server = _Embedded(uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                                      lifespan="off", ws="none", timeout_graceful_shutdown=1))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the test server did not start"
        await asyncio.sleep(0.01)
    return server, task, bound


class EventReceiver:
    """The backend's event endpoint, recording what the CMS posts.

    ``answer`` is the HTTP status to give (202 records the event; anything
    else records nothing); ``delay`` the seconds each event takes to be
    taken (a busy backend). :meth:`stop` and :meth:`start` again keep the port.
    """

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.events: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.answer = 202
        self.delay = 0.0
        self.port = 0
        self._server: _Embedded | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = FastAPI()
        self.app.post("/internal/cms/events")(self._receive)

    async def _receive(self, request: Request) -> Response:
        body = await request.json()
        if request.headers.get("x-internal-token") != self.token:
            return Response(status_code=401)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answer != 202:
            self.refused.append(body)
            return Response(status_code=self.answer)
        self.events.append(body)
        return Response(status_code=202)

    async def start(self) -> None:
        self._server, self._task, self.port = await serve_app(self.app, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def wait_for(self, count: int, event: str | None = None, *, timeout: float = 5.0) -> list[dict[str, Any]]:
        """At least ``count`` events (of kind ``event``) have arrived; returns them."""
        found = lambda: self.of(event) if event else self.events  # noqa: E731
        await eventually(lambda: len(found()) >= count, timeout=timeout,
                         what=f"{count} {event or 'events'} (have {len(found())})")
        return found()


async def closing(*stoppers: Callable[[], Awaitable[None]]) -> None:
    """Await every stopper, even if one fails (cleanup of a test)."""
    errors = []
    for stop in stoppers:
        try:
            await stop()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
    if errors:
        raise errors[0]
