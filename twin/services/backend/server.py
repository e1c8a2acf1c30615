"""Serve the backend with uvicorn inside the caller's asyncio loop.

::

    backend = Backend(settings=settings, stations=stations, users=users, clock=clock, redis=redis)
    await backend.start()          # database open, Redis keys written, port bound, serving
    print(backend.url)             # http://127.0.0.1:8000 (the bound port when settings.backend_port is 0)
    ...
    await backend.stop()           # stops accepting, finishes requests, closes the database

or ``async with Backend(...) as backend: ...``. The socket is bound here, so
a port in use raises :class:`~.exceptions.BackendStartError` instead of
uvicorn's ``sys.exit``; signals stay the host program's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Sequence
from types import TracebackType

import httpx
import redis.asyncio as aioredis
import uvicorn

from ...clock import Clock
from ...model.config import StationSpec
from ..settings import Settings
from ..users import TestUser
from .app import create_app, service_of
from .exceptions import BackendStartError
from .service import BackendService

__all__ = ["Backend"]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the host program decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise BackendStartError(f"cannot listen on {host}:{port}: {error}") from error
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise BackendStartError(f"cannot listen on {host}:{port}: {error}; is another backend running? "
                                "Choose another port (CHARGETWIN_BACKEND_PORT, 0 for any).") from error
    return sock


class Backend:
    """The reference backend served on ``settings.host:settings.backend_port``."""

    def __init__(self, *, settings: Settings, stations: Sequence[StationSpec], users: Sequence[TestUser],
                 clock: Clock, redis: aioredis.Redis, cms: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings=settings, stations=stations, users=users, clock=clock, redis=redis, cms=cms)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._port: int | None = None

    @property
    def service(self) -> BackendService:
        return service_of(self.app)

    @property
    def port(self) -> int:
        """The bound port (known once :meth:`start` returned)."""
        if self._port is None:
            raise RuntimeError("the backend is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    async def start(self) -> None:
        """Open the service, bind the port and serve; returns once requests are accepted."""
        if self._task is not None:
            raise RuntimeError("the backend is already started")
        sock = _bind(self.settings.host, self.settings.backend_port)
        try:
            await self.service.open()
        except BaseException:
            sock.close()
            raise
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False, ws="none",
                                timeout_graceful_shutdown=5)
        self._server = _EmbeddedServer(config)
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="chargetwin-backend")
        while not self._server.started:
            if self._task.done():
                await self.stop()
                raise BackendStartError("the backend's HTTP server stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving (requests in flight finish), then close the service. Safe to call twice."""
        server, task = self._server, self._task
        self._server = self._task = None
        try:
            if server is not None and task is not None:
                server.should_exit = True
                await task
        finally:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
            await self.service.close()

    async def __aenter__(self) -> Backend:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.stop()
