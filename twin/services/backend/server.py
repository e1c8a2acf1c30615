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

import socket
from collections.abc import Sequence
from types import TracebackType

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter

from ...clock import Clock
from ...model.config import StationSpec
from .._http import EmbeddedHttpServer, bind
from ..appwatch import AppWatch
from ..settings import Settings
from ..users import TestUser
from .app import create_app, service_of
from .exceptions import BackendStartError
from .service import BackendService

__all__ = ["Backend"]


def _bind(host: str, port: int) -> socket.socket:
    try:
        return bind(host, port)
    except OSError as error:
        raise BackendStartError(f"cannot listen on {host}:{port}: {error}; is another backend running? "
                                "Choose another port (CHARGETWIN_BACKEND_PORT, 0 for any).") from error


class Backend:
    """The reference backend served on ``settings.host:settings.backend_port``."""

    def __init__(self, *, settings: Settings, stations: Sequence[StationSpec], users: Sequence[TestUser],
                 clock: Clock, redis: aioredis.Redis, cms: httpx.AsyncClient | None = None,
                 routers: Sequence[APIRouter] = (), watch: AppWatch | None = None) -> None:
        self.settings = settings
        self.app = create_app(settings=settings, stations=stations, users=users, clock=clock, redis=redis, cms=cms,
                              routers=routers, watch=watch)
        self._http: EmbeddedHttpServer | None = None
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
        if self._http is not None:
            raise RuntimeError("the backend is already started")
        sock = _bind(self.settings.host, self.settings.backend_port)
        try:
            await self.service.open()
        except BaseException:
            sock.close()
            raise
        self._http = EmbeddedHttpServer(self.app, sock, name="chargetwin-backend")
        self._port = self._http.port
        try:
            await self._http.start()
        except RuntimeError as error:
            await self.stop()
            raise BackendStartError(str(error)) from error

    async def stop(self) -> None:
        """Stop serving (requests in flight finish), then close the service. Safe to call twice."""
        http, self._http = self._http, None
        try:
            if http is not None:
                await http.stop()
        finally:
            await self.service.close()

    async def __aenter__(self) -> Backend:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.stop()
