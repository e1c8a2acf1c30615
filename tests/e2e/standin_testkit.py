"""Reference services started one by one, each its own process, as a team would start stand-ins."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chargetwin.twin.stack import free_port

SECRET = "stand-in-tests-secret-of-more-than-thirty-two-bytes-length"
INTERNAL = "stand-in-tests-internal-token"


def standin_env(fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("CHARGETWIN_")}
    env |= {"CHARGETWIN_JWT_SECRET": SECRET, "CHARGETWIN_INTERNAL_TOKEN": INTERNAL}
    if fault is not None:
        env["CHARGETWIN_INJECT_FAULT"] = fault
    return env


class Service:
    """One stand-in process; its banner read up to "Press Ctrl-C to stop."."""

    def __init__(self, *args: str, fault: str | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "chargetwin", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=standin_env(fault))
        assert self.process.stdout is not None
        self.banner = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "Press Ctrl-C to stop." not in self.banner:
            line = self.process.stdout.readline()
            if not line:
                break
            self.banner += line
        if "Press Ctrl-C to stop." not in self.banner:
            self.process.kill()
            self.process.wait()
            self.process.stdout.close()
            pytest.fail(f"chargetwin {args[0]} did not start; it said:\n{self.banner}")
        # what it says later is read as it comes: a full pipe would block the service mid-request
        self.said: list[str] = []
        self._reader = threading.Thread(target=lambda: self.said.extend(self.process.stdout or ()), daemon=True)
        self._reader.start()

    def stop(self) -> tuple[int, str]:
        """Ctrl-C; the exit code and what it said after its banner."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.close()
            pytest.fail(f"did not stop within 30 s of Ctrl-C; it said:\n{''.join(self.said)}")
        self.close()
        return self.process.returncode, "".join(self.said)

    def close(self) -> None:
        """Kill it if it still runs; read what is left and close the pipe."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def standins(folder: Path, *, fault: str | None = None, speed: float = 30,
             charge_points: str = "simulated") -> Iterator[dict[str, Any]]:
    """``chargetwin backend``, ``cms`` and ``gateway`` on free ports: their ports, processes and URLs.

    ``charge_points="none"``: the CMS without its own (the test brings them, as ``check --ocpp`` does).
    """
    ports = {name: free_port() for name in ("backend", "cms", "ocpp", "gateway")}
    backend = Service("backend", "--backend-port", str(ports["backend"]), "--cms-url",
                      f"http://127.0.0.1:{ports['cms']}", "--database", str(folder / "backend.sqlite3"), fault=fault)
    started = [backend]
    try:
        redis_url = re.search(r"Redis\s+(redis://\S+)", backend.banner)
        assert redis_url, backend.banner
        started.append(Service("cms", "--cms-port", str(ports["cms"]), "--ocpp-port", str(ports["ocpp"]),
                               "--backend-url", f"http://127.0.0.1:{ports['backend']}", "--speed", str(speed),
                               "--charge-points", charge_points, fault=fault))
        started.append(Service("gateway", "--gateway-port", str(ports["gateway"]), "--redis", redis_url.group(1),
                               fault=fault))
        yield {"ports": ports, "services": started, "backend": f"http://127.0.0.1:{ports['backend']}",
               "gateway": f"ws://127.0.0.1:{ports['gateway']}", "redis": redis_url.group(1),
               "ocpp": f"ws://127.0.0.1:{ports['ocpp']}"}
    finally:
        for service in started:
            service.close()
