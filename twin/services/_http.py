"""An ASGI app served by uvicorn inside the caller's asyncio loop, on a socket bound beforehand.

Binding first lets a service report a taken port as its own clear error
(uvicorn would call ``sys.exit``) and know its port when 0 was asked for.
uvicorn's signal handlers are off: the program that owns the loop decides
when to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

__all__ = ["EmbeddedHttpServer", "bind", "read_json"]


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json(raw: bytes | str) -> Any:
    """A request body's JSON as the services read it: no NaN or Infinity; ValueError if it is not JSON
    (nested too deep included)."""
    try:
        return json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("the JSON is nested too deep") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: any free port); OSError if it cannot be had."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class EmbeddedHttpServer:
    """Serve ``app`` on ``sock`` until :meth:`stop`; :meth:`start` returns once requests are accepted."""

    def __init__(self, app: Any, sock: socket.socket, *, name: str, graceful_s: int = 5) -> None:
        self.socket = sock
        self.port = int(sock.getsockname()[1])
        self._name = name
        self._server = _Server(uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning",
                                              access_log=False, ws="none", timeout_graceful_shutdown=graceful_s))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start serving; RuntimeError (the socket closed) if the server stops while starting."""
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self.socket]),
                                                            name=self._name)
        while not self._server.started:
            if self._task.done():
                self.socket.close()
                self._task.result()  # uvicorn's own error, if it raised one
                raise RuntimeError(f"{self._name}: the HTTP server stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, close the socket. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.socket.close()
