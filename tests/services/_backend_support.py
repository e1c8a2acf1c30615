"""Helpers of the backend tests: a small network, a settable clock, a fake CMS, a Redis subscriber.

The fake CMS is a stand-in for the other service (the real CMS is tested on
its own and end to end elsewhere): it answers the backend's REST calls as
told and records them. Every message the subscriber receives is validated
against the contracts on arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from chargetwin.contracts import Violation, default_validator
from chargetwin.twin.model.config import ChargePointSpec, StationSpec
from chargetwin.twin.services.backend import Backend
from chargetwin.twin.services.settings import Settings
from chargetwin.twin.services.users import TestUser, test_users

SECRET = "backend-tests-secret-of-at-least-32-bytes"
INTERNAL = "backend-tests-internal-token"
REDIS_DB = 7
"""The backend tests' Redis database (pub/sub is server-wide; keys are per database)."""

STATIONS = [
    StationSpec("STATION001", "Cillout Mansoura", "15 Tahrir Street, Downtown, Cairo", 30.04, 31.23, 7.41, "EGP",
                (ChargePointSpec("CP001", "AC", 22.0, 2), ChargePointSpec("CP002", "AC", 22.0, 2))),
    StationSpec("STATION002", "Maadi Hub", "3 Road 9, Maadi, Cairo", 29.96, 31.25, 9.5, "EGP",
                (ChargePointSpec("CP003", "DC", 60.0, 1),)),
]
USERS: list[TestUser] = test_users([(1, "RFID001"), (2, "RFID002"), (3, "RFID003")])
T0 = datetime(2025, 1, 29, 12, 0, tzinfo=UTC)


def stamp(seconds: float = 0) -> str:
    """The RFC 3339 text of ``T0 + seconds``."""
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class FixedClock:
    """The twin's clock, set by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


# --- CMS events ------------------------------------------------------------------------------


def status_event(charger_id: str, connector_id: int, status: str, *, error_code: str | None = None,
                 at: float = 0, info: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"connector_id": connector_id, "status": status, "error_code": error_code,
                            "timestamp": stamp(at)}
    if info is not None:
        data["info"] = info
    return {"event": "connector_status_changed", "charger_id": charger_id, "transaction_id": None, "data": data}


def started_event(charger_id: str, transaction_id: int, *, connector_id: int = 1, id_tag: str = "RFID001",
                  meter_start: int = 1000, at: float = 0) -> dict[str, Any]:
    return {"event": "session_started", "charger_id": charger_id, "transaction_id": transaction_id,
            "data": {"connector_id": connector_id, "id_tag": id_tag, "meter_start": meter_start,
                     "start_time": stamp(at)}}


def meter_event(charger_id: str, transaction_id: int, *, wh: int, power: float = 22.0, soc: int | None = None,
                remaining: int | None = None, at: float | None = None, connector_id: int = 1) -> dict[str, Any]:
    data: dict[str, Any] = {"connector_id": connector_id, "energy_delivered": round(wh / 1000, 3), "power": power,
                            "voltage": 230.0, "current": round(power * 1000 / 230, 1), "meter_value": wh,
                            "charge_percentage": soc, "time_remaining": remaining}
    if at is not None:
        data["timestamp"] = stamp(at)
    return {"event": "meter_value", "charger_id": charger_id, "transaction_id": transaction_id, "data": data}


def stopped_event(charger_id: str, transaction_id: int, *, meter_stop: int, reason: str = "Remote",
                  at: float = 3600, connector_id: int = 1) -> dict[str, Any]:
    return {"event": "session_stopped", "charger_id": charger_id, "transaction_id": transaction_id,
            "data": {"connector_id": connector_id, "meter_stop": meter_stop, "stop_time": stamp(at),
                     "stop_reason": reason}}


# --- serving an ASGI app on a free port ---------------------------------------------------------


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def serve(app: Any, *, lifespan: Literal["on", "off"] = "off") -> AsyncIterator[int]:
    """Serve ``app`` on 127.0.0.1 on a free port (yielded) until the block ends."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    server = _Server(uvicorn.Config(app, lifespan=lifespan, log_config=None, access_log=False, ws="none",
                                    timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the test server did not start"
        await asyncio.sleep(0.005)
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


def closed_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Reply:
    status: int
    body: Any
    delay: float = 0.0


@dataclass
class FakeCms:
    """The CMS REST API as the backend sees it; answers Accepted unless told otherwise."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    replies: dict[str, Reply] = field(default_factory=dict)
    start_transaction_id: int | None = None
    violations: list[Violation] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/api/charging/remote_start", self._remote_start, methods=["POST"]),
                                 Route("/api/charging/stop", self._stop, methods=["POST"])])

    def reply(self, path: str, status: int, body: Any = None, *, delay: float = 0.0) -> None:
        """Answer ``path`` (``remote_start`` or ``stop``) with ``status`` and ``body`` from now on."""
        if body is None and status >= 400:
            body = {"success": False, "error": f"CMS says {status}", "message": f"The CMS answered {status}."}
        self.replies[path] = Reply(status, body, delay)

    async def _answer(self, path: str, request: Request, accepted: Callable[[Any], Any]) -> JSONResponse:
        body = await request.json()
        self.calls.append((path, body))
        channel = "cms:/api/charging/remote_start" if path == "remote_start" else "cms:/api/charging/stop"
        self.violations += default_validator().validate(body, channel=channel, direction="request")
        reply = self.replies.get(path)
        if reply is None:
            return JSONResponse({"success": True, "data": accepted(body)})
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return JSONResponse(reply.body, status_code=reply.status)

    async def _remote_start(self, request: Request) -> JSONResponse:
        return await self._answer("remote_start", request, lambda body: {
            "charger_id": body["charger_id"], "connector_id": body.get("connector_id", 1), "status": "Accepted",
            "transaction_id": self.start_transaction_id})

    async def _stop(self, request: Request) -> JSONResponse:
        return await self._answer("stop", request, lambda body: {
            "charger_id": body["charger_id"], "transaction_id": body["transaction_id"], "status": "Accepted"})


# --- Redis ------------------------------------------------------------------------------------


def db_url(server_url: str, db: int = REDIS_DB) -> str:
    return server_url.rsplit("/", 1)[0] + f"/{db}"


class Subscriber:
    """Every message on ``user:*``, each validated on arrival (``violations``)."""

    SYNC = "chargetwin-tests:sync"

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._pubsub = redis.pubsub()
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.violations: list[tuple[str, dict[str, Any], Violation]] = []
        self._synced: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Subscriber:
        await self._pubsub.psubscribe("user:*")
        await self._pubsub.subscribe(self.SYNC)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._pubsub.aclose()

    async def _read(self) -> None:
        validator = default_validator()
        while True:
            raw = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if raw is None:
                continue
            channel = _text(raw["channel"])
            if channel == self.SYNC:
                self._synced.add(_text(raw["data"]))
                continue
            message = json.loads(raw["data"])
            self.messages.append((channel, message))
            for violation in validator.validate(message, channel=f"redis:{channel}", direction="publish"):
                self.violations.append((channel, message, violation))

    async def sync(self, timeout: float = 5.0) -> None:
        """Return once every message published before this call has been received."""
        token = f"sync-{len(self._synced)}-{id(self)}-{asyncio.get_running_loop().time()}"
        await self._redis.publish(self.SYNC, token)
        await _until(lambda: token in self._synced, timeout, "the sync message never came back")

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """The messages received so far, forgotten here."""
        taken, self.messages = self.messages, []
        return taken

    def assert_conform(self) -> None:
        assert not self.violations, [(c, m, v.to_dict()) for c, m, v in self.violations]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def _until(predicate: Callable[[], bool], timeout: float, why: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(why)
        await asyncio.sleep(0.005)


def of(messages: list[tuple[str, dict[str, Any]]], user_id: int, message_type: str,
       event: str | None = None) -> list[dict[str, Any]]:
    """Messages of one type (and event) received on one user's channels."""
    return [m for c, m in messages if c.startswith(f"user:{user_id}:") and m["type"] == message_type
            and (event is None or m.get("event") == event)]


# --- the stack under test ---------------------------------------------------------------------


@dataclass
class Stack:
    """A backend on a free port, its Redis database and subscriber, a fake CMS and an HTTP client."""

    settings: Settings
    redis: aioredis.Redis
    sub: Subscriber
    cms: FakeCms
    clock: FixedClock
    backend: Backend
    http: httpx.AsyncClient

    async def post(self, path: str, body: Any = None, *, user: int | None = None,
                   token: str | None = None, headers: dict[str, str] | None = None,
                   content: bytes | None = None) -> httpx.Response:
        sent = dict(headers or {})
        if user is not None:
            from chargetwin.twin.services.auth import issue_token
            token = issue_token(user, secret=SECRET, ttl_s=3600, now=datetime.now(UTC))
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if content is not None:
            return await self.http.post(path, content=content, headers=sent)
        return await self.http.post(path, json=body, headers=sent)

    async def event(self, event: dict[str, Any], *, expect: int = 202) -> httpx.Response:
        answer = await self.http.post("/internal/cms/events", json=event, headers={"X-Internal-Token": INTERNAL})
        assert answer.status_code == expect, answer.text
        return answer

    async def restart_backend(self) -> None:
        """Stop the backend and start a new one on the same database file (and a new port)."""
        await self.backend.stop()
        await self.http.aclose()
        self.backend = Backend(settings=self.settings, stations=STATIONS, users=USERS, clock=self.clock,
                               redis=self.redis)
        await self.backend.start()
        self.http = httpx.AsyncClient(base_url=self.backend.url)


@contextlib.asynccontextmanager
async def running_stack(tmp_path: Path, redis_url: str, *, connected: tuple[int, ...] = (1, 2),
                        cms_port: int | None = None, **overrides: Any) -> AsyncIterator[Stack]:
    """Everything a backend test needs, torn down at the end; ``connected``: users with an open socket."""
    cms = FakeCms()
    redis = aioredis.Redis.from_url(db_url(redis_url))
    try:
        await redis.flushdb()
        if connected:
            await redis.hset("chargetwin:connected_users", mapping={str(u): 1 for u in connected})
        async with contextlib.AsyncExitStack() as stack:
            port = cms_port if cms_port is not None else await stack.enter_async_context(serve(cms.app()))
            options: dict[str, Any] = {"backend_port": 0, "cms_port": port, "jwt_secret": SECRET,
                                       "database": str(tmp_path / "backend.sqlite3"), "internal_token": INTERNAL,
                                       "cms_timeout_s": 2.0}
            settings = replace(Settings(), **(options | overrides))
            sub = await stack.enter_async_context(Subscriber(redis))
            clock = FixedClock()
            backend = Backend(settings=settings, stations=STATIONS, users=USERS, clock=clock, redis=redis)
            await backend.start()
            running = Stack(settings, redis, sub, cms, clock, backend, httpx.AsyncClient(base_url=backend.url))
            try:
                yield running
            finally:
                await running.http.aclose()
                await running.backend.stop()
    finally:
        await redis.aclose()
