"""A running stack and taps on the traffic an app sees, for the end-to-end tests.

Every message crossing a tapped interface is recorded with where it was seen
(the channel names of docs/traffic-format.md), so a test can validate all of
them with the contracts' validator at the end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from chargetwin.contracts import Violation, default_validator
from chargetwin.twin.model.config import Scenario
from chargetwin.twin.scenario import load_scenario
from chargetwin.twin.services.settings import Settings
from chargetwin.twin.stack import Stack

SECRET = "end-to-end-tests-secret-of-more-than-thirty-two-bytes-length"


def quiet(name: str = "smoke") -> Scenario:
    """A bundled scenario without simulated demand: only the tests' own users charge."""
    scenario = load_scenario(name)
    return replace(scenario, demand=replace(scenario.demand, scale=0.0))


def settings_for(tmp_path: Path, **changes: Any) -> Settings:
    return replace(Settings(backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0, jwt_secret=SECRET,
                            database=str(tmp_path / "backend.sqlite3"), cms_timeout_s=5.0), **changes)


@dataclass
class Record:
    channel: str
    direction: str
    message: Any
    status: int | None = None


@dataclass
class Traffic:
    """Everything the taps saw, in order."""

    records: list[Record] = field(default_factory=list)

    def add(self, channel: str, direction: str, message: Any, status: int | None = None) -> None:
        self.records.append(Record(channel, direction, message, status))

    def violations(self) -> list[tuple[Record, Violation]]:
        validator = default_validator()
        return [(r, v) for r in self.records
                for v in validator.validate(r.message, channel=r.channel, direction=r.direction, status=r.status)]

    def on(self, channel: str) -> list[Any]:
        return [r.message for r in self.records if r.channel == channel]


class App:
    """One simulated mobile app: REST calls to the backend, a WebSocket to the gateway, all tapped."""

    def __init__(self, stack: Stack, traffic: Traffic, http: httpx.AsyncClient) -> None:
        self.stack, self.traffic, self.http = stack, traffic, http
        self.token = ""
        self.user_id = 0
        self.received: list[dict[str, Any]] = []
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def post(self, path: str, body: Any, *, token: str | None = None) -> httpx.Response:
        channel = f"backend:{path}"
        headers = {"Authorization": f"Bearer {token or self.token}"} if (token or self.token) else {}
        self.traffic.add(channel, "request", body)
        response = await self.http.post(self.stack.urls.backend + path, json=body, headers=headers)
        self.traffic.add(channel, "response", response.json(), response.status_code)
        return response

    async def login(self, user_id: int) -> None:
        response = await self.post("/api/auth/login", {"email": f"user{user_id}@chargetwin.example",
                                                        "password": "chargetwin"})
        assert response.status_code == 200, response.text
        self.token, self.user_id = response.json()["data"]["token"], user_id

    async def open(self) -> None:
        self._socket = await connect(f"{self.stack.urls.gateway}/?token={self.token}")
        self._reader = asyncio.get_running_loop().create_task(self._read(self._socket))

    async def _read(self, socket: ClientConnection) -> None:
        with suppress(Exception):
            async for frame in socket:
                message = json.loads(frame)
                self.received.append(message)
                self.traffic.add("websocket", "receive", message)

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await self._reader
        self._socket = self._reader = None

    async def wait_for(self, match: Callable[[dict[str, Any]], bool], *, timeout: float = 15.0,
                       count: int = 1) -> list[dict[str, Any]]:
        """The first ``count`` received messages that ``match``, waiting up to ``timeout`` s."""
        async def found() -> list[dict[str, Any]]:
            while len(hits := [m for m in self.received if match(m)]) < count:
                await asyncio.sleep(0.05)
            return hits[:count]
        return await asyncio.wait_for(found(), timeout)


async def connected_app(stack: Stack, traffic: Traffic, http: httpx.AsyncClient, user_id: int = 1) -> App:
    """An app logged in as ``user_id`` with its socket open and the on-connect messages received."""
    app = App(stack, traffic, http)
    await app.login(user_id)
    await app.open()
    await app.wait_for(lambda m: m["type"] == "active_session_update")
    return app


@asynccontextmanager
async def running_stack(scenario: Scenario, settings: Settings, *, speed: float = 60.0, **options: Any
                        ) -> AsyncIterator[tuple[Stack, Traffic]]:
    """A started stack whose charge points have booted and reported, and a Redis tap on ``user:*``.

    ``options`` go to :class:`Stack` (``ocpp_tap``, ``reserved_users``, ...).
    """
    traffic = Traffic()
    async with Stack(scenario, settings=settings, speed=speed, **options) as stack:
        assert stack.fleet is not None
        await stack.fleet.wait_ready(timeout=10)
        tap = aioredis.from_url(stack.urls.redis)
        pubsub = tap.pubsub()
        await pubsub.psubscribe("user:*")

        async def listen() -> None:
            async for item in pubsub.listen():
                if item["type"] == "pmessage":
                    traffic.add(f"redis:{item['channel'].decode()}", "publish", json.loads(item["data"]))

        listener = asyncio.get_running_loop().create_task(listen())
        try:
            await _wait_until_listed(stack, tap)
            yield stack, traffic
            await asyncio.sleep(0.3)  # let the last messages through the taps
        finally:
            listener.cancel()
            with suppress(asyncio.CancelledError):
                await listener
            await pubsub.aclose()
            await tap.aclose()


async def _wait_until_listed(stack: Stack, tap: aioredis.Redis, timeout: float = 10.0) -> None:
    """Wait until the backend knows every connector's status (the charge points' StatusNotifications)."""
    total = sum(1 for _ in stack.world.network.connectors())

    async def listed() -> None:
        while True:
            raw = await tap.get("chargetwin:charger_list")
            if raw:
                stations = json.loads(raw)
                if sum(s["available_connectors"] for s in stations) == total:
                    return
            await asyncio.sleep(0.05)
    await asyncio.wait_for(listed(), timeout)
