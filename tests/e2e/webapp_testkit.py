"""The reference web client's browser test: a stack on its own thread, Chromium, and the page's network.

Playwright's sync API refuses to run inside a running asyncio loop, and the
stack is asyncio; so :class:`StackThread` runs ``stack_testkit.running_stack``
on a loop of its own in a background thread, and the test, on the main
thread, drives the browser and hands coroutines to that loop with
:meth:`StackThread.call`.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from browser_testkit import chromium
from stack_testkit import Traffic, quiet, running_stack, settings_for

from chargetwin.twin.model.config import Scenario
from chargetwin.twin.services.backend.app import WEBAPP_DIR
from chargetwin.twin.services.settings import Settings
from chargetwin.twin.stack import Stack

__all__ = ["PageWatch", "ScriptedTwin", "StackThread", "artifacts_dir", "chromium", "with_external_charge_point"]

_T = TypeVar("_T")

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def artifacts_dir(name: str) -> Path:
    """``$CHARGETWIN_ARTIFACTS/name``, or ``tests/artifacts/name`` in the checkout (made if missing).

    Each test writes its own file names there, so a run overwrites the last one's.
    """
    configured = os.environ.get("CHARGETWIN_ARTIFACTS")
    folder = (Path(configured) if configured else REPO / "tests" / "artifacts") / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class StackThread:
    """``running_stack(scenario, settings, speed=...)`` served from a background thread's own asyncio loop.

    Use as a context manager: on entry the stack is up (charge points booted,
    every connector listed); on exit it is stopped and the thread joined.
    """

    def __init__(self, scenario: Scenario, settings: Settings, *, speed: float, boot_timeout: float = 120.0) -> None:
        self._scenario, self._settings, self._speed = scenario, settings, speed
        self._boot_timeout = boot_timeout
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="webapp-stack", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._stack: Stack | None = None
        self._traffic: Traffic | None = None

    @property
    def stack(self) -> Stack:
        assert self._stack is not None, "the stack is not running"
        return self._stack

    @property
    def traffic(self) -> Traffic:
        """What the Redis tap of ``running_stack`` saw (every ``user:*`` message)."""
        assert self._traffic is not None, "the stack did not start"
        return self._traffic

    def __enter__(self) -> StackThread:
        self._thread.start()
        if not self._ready.wait(self._boot_timeout):
            raise TimeoutError(f"the stack did not start within {self._boot_timeout:g} s")
        if self._error is not None:
            raise RuntimeError("the stack failed to start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._thread.is_alive():
            raise TimeoutError("the stack did not stop within 60 s")
        if self._error is not None and exc[0] is None:
            raise RuntimeError("the stack failed") from self._error

    def call(self, coroutine: Coroutine[Any, Any, _T], *, timeout: float = 30.0) -> _T:
        """Run ``coroutine`` on the stack's loop and return its result (from the calling thread)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__ / __exit__
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_stack(self._scenario, self._settings, speed=self._speed,
                                 watch_apps=True) as (stack, traffic):
            self._stack, self._traffic = stack, traffic
            self._ready.set()
            await self._stop.wait()


@dataclass
class PageWatch:
    """What a page did on the network and in its console, for the checks at the end of a test.

    ``outside``: requests (HTTP and WebSocket) to any host other than this
    machine; they are aborted. ``errors``: console errors and uncaught
    exceptions, as ``(text, url)``; ``statuses``: ``(status, method, path)``
    of every HTTP response the page got.
    """

    errors: list[tuple[str, str]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    statuses: list[tuple[int, str, str]] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        from playwright.sync_api import ConsoleMessage, Response, Route, WebSocket, WebSocketRoute

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append((message.text, message.location.get("url", "")))

        def route(r: Route) -> None:
            if self.local(r.request.url):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        def response(r: Response) -> None:
            self.statuses.append((r.status, r.request.method, urlsplit(r.url).path))

        def websocket(socket: WebSocket) -> None:
            self.sockets.append(socket.url)

        def outside_socket(socket: WebSocketRoute) -> None:  # never connected to its server
            self.outside.append(socket.url)
            socket.close(code=1008, reason="Blocked by the test")

        page.on("console", console)
        page.on("pageerror", lambda error: self.errors.append((str(error), "")))
        page.on("response", response)
        page.on("websocket", websocket)
        page.route("**/*", route)
        page.route_web_socket(lambda url: not self.local(url), outside_socket)

    @staticmethod
    def local(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "about", "blob") or (parts.hostname or "") in LOOPBACK

    def unexpected_errors(self, expected: set[tuple[int, str]], *, refused_sockets: str | None = None
                          ) -> list[tuple[str, str]]:
        """Console errors, less the ones a test provoked on purpose.

        Chromium logs "Failed to load resource" for every HTTP error answer:
        those for the ``(status, path)`` pairs in ``expected`` are left out.
        With ``refused_sockets`` (a ``ws://host:port`` URL), so are its
        "WebSocket connection to ... failed" lines: reconnection attempts
        while that gateway was down.
        """
        def provoked(text: str, url: str) -> bool:
            if refused_sockets and text.startswith(f"WebSocket connection to '{refused_sockets}/") and "failed" in text:
                return True
            if not text.startswith("Failed to load resource: the server responded with a status of "):
                return False
            status = int(text.split("status of ", 1)[1].split(" ", 1)[0])
            return (status, urlsplit(url).path) in expected

        return [(text, url) for text, url in self.errors if not provoked(text, url)]


_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}


class ScriptedTwin:
    """The app's own files behind a twin the test scripts, all inside the browser: no stack, no socket opened.

    :meth:`attach` serves ``/app/`` from the package's webapp folder and
    answers ``/twin/info`` (the gateway at :attr:`GATEWAY`),
    ``/twin/violations`` and ``/api/auth/login`` with the given ``data``.
    It plays the gateway: every connection the page opens is appended to
    :attr:`connections` and gets the ``welcome`` messages; the test sends
    more with ``connections[-1].send(...)`` and closes with ``.close(code=..., reason=...)``.
    """

    ORIGIN = "http://127.0.0.1:9"
    GATEWAY = "ws://127.0.0.1:9"

    def __init__(self, *, welcome: list[dict[str, Any]], violations: dict[str, Any], login: dict[str, Any]) -> None:
        self.welcome, self.violations, self.login = welcome, violations, login
        self.connections: list[Any] = []

    def attach(self, page: Any) -> None:
        """Call after :meth:`PageWatch.attach`: routes added later are tried first."""
        from playwright.sync_api import Route, WebSocketRoute

        def files(route: Route) -> None:
            name = urlsplit(route.request.url).path.removeprefix("/app/") or "index.html"
            path = WEBAPP_DIR / name
            if "/" in name or not path.is_file():
                route.fulfill(status=404, body="not found")
                return
            route.fulfill(status=200, body=path.read_bytes(), content_type=_CONTENT_TYPES[path.suffix])

        def answer(data: dict[str, Any]) -> Any:
            def handler(route: Route) -> None:
                route.fulfill(status=200, content_type="application/json",
                              body=json.dumps({"success": True, "data": data}))
            return handler

        def gateway(socket: WebSocketRoute) -> None:
            self.connections.append(socket)
            for message in self.welcome:
                socket.send(json.dumps(message))

        page.route(f"{self.ORIGIN}/app/**", files)
        page.route(f"{self.ORIGIN}/twin/info", answer({"gateway_url": self.GATEWAY}))
        page.route(f"{self.ORIGIN}/twin/violations", answer(self.violations))
        page.route(f"{self.ORIGIN}/api/auth/login", answer(self.login))
        page.route_web_socket(lambda url: url.startswith(f"{self.GATEWAY}/"), gateway)


@contextmanager
def with_external_charge_point(folder: Path, charge_point_id: str, *, admin_token: str,
                               **changes: Any) -> Iterator[Stack]:
    """A quiet stack on its own thread with one charge point the twin does not simulate, added through the
    control API (a station of its own): a test connects to the CMS as that charge point."""
    settings = settings_for(folder, admin_token=admin_token, **changes)
    with StackThread(quiet(), settings, speed=60.0) as running:
        added = httpx.post(f"{running.stack.urls.backend}/twin/stations", headers={"X-Twin-Token": admin_token},
                           json={"id": f"LAB-{charge_point_id}", "name": "Test lab", "address": "Lab 1",
                                 "latitude": 30.0, "longitude": 31.2,
                                 "charge_points": [{"id": charge_point_id, "connectors": 2, "simulated": False}]},
                           timeout=30)
        assert added.status_code == 200, added.text
        yield running.stack
