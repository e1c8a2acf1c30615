"""The reference services as stand-ins, each its own process, and ``check`` against them.

``python -m chargetwin.harness.conformance.reference [CHECK OPTIONS]``
starts ``chargetwin backend``, ``chargetwin cms --charge-points none`` and
``chargetwin gateway`` on free ports, with fresh secrets shared through the
environment, runs ``chargetwin check`` against them with every phase
(``--redis``, ``--ocpp`` and ``--cms`` included) and the options given, stops them,
and exits with check's code. ``nox -s contracts`` runs it when no target
is named; the tests start stand-ins with :func:`reference_services`.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ReferenceServices", "StandIn", "StandInError", "reference_services", "standin_env"]

READY = "Press Ctrl-C to stop."
"""The last line of a stand-in's banner: it serves from then on."""


class StandInError(RuntimeError):
    """A stand-in did not start, or did not stop when asked: what it said is in the message."""


def standin_env(*, jwt_secret: str, internal_token: str, fault: str | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a stand-in: ``base`` (default ours) without REDIS_URL or CHARGETWIN_*, plus the secrets."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k != "REDIS_URL" and not k.startswith("CHARGETWIN_")}
    env |= {"CHARGETWIN_JWT_SECRET": jwt_secret, "CHARGETWIN_INTERNAL_TOKEN": internal_token}
    if fault is not None:
        env["CHARGETWIN_INJECT_FAULT"] = fault  # tests only (twin/services/faults.py)
    return env


class StandIn:
    """One ``chargetwin ROLE ...`` process, started and read up to its banner's last line."""

    def __init__(self, *args: str, env: Mapping[str, str], timeout: float = 60.0) -> None:
        self.role = args[0]
        self.process = subprocess.Popen([sys.executable, "-m", "chargetwin", *args], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=dict(env))
        assert self.process.stdout is not None
        self.banner = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and READY not in self.banner:
            line = self.process.stdout.readline()
            if not line:
                break
            self.banner += line
        self.said: list[str] = []
        if READY not in self.banner:
            self.close()
            raise StandInError(f"chargetwin {self.role} did not start; it said:\n{self.banner}")
        # what it says later is read as it comes: a full pipe would block the service mid-request
        self._reader = threading.Thread(target=lambda: self.said.extend(self.process.stdout or ()), daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 30.0) -> tuple[int, str]:
        """Ctrl-C; its exit code and what it said after its banner (StandInError if it would not stop)."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise StandInError(f"chargetwin {self.role} did not stop within {timeout:g} s of Ctrl-C; it said:\n"
                               f"{''.join(self.said)}") from None
        self.close()
        return self.process.returncode, "".join(self.said)

    def close(self) -> None:
        """Kill it if it still runs; read what is left and close the pipe."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@dataclass
class ReferenceServices:
    """The stand-ins started, and where they listen."""

    ports: dict[str, int]
    redis: str
    services: list[StandIn] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return f"http://127.0.0.1:{self.ports['backend']}"

    @property
    def gateway(self) -> str:
        return f"ws://127.0.0.1:{self.ports['gateway']}"

    @property
    def cms(self) -> str:
        return f"http://127.0.0.1:{self.ports['cms']}"

    @property
    def ocpp(self) -> str:
        return f"ws://127.0.0.1:{self.ports['ocpp']}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def reference_services(folder: Path, *, env: Mapping[str, str], charge_points: str = "none",
                       speed: float = 30.0, network: str = "smoke") -> Iterator[ReferenceServices]:
    """``chargetwin backend``, ``cms`` and ``gateway`` on free ports (the backend's database in ``folder``).

    ``charge_points``: ``none`` (someone brings them, as ``check --ocpp``
    does) or ``simulated`` (the CMS's own, at ``speed``).
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        ports = {name: _free_port() for name in ("backend", "cms", "ocpp", "gateway")}
        try:
            started, redis = _start_all(folder, ports, env=env, charge_points=charge_points, speed=speed,
                                        network=network)
        except StandInError as error:
            # a port found free was taken before the stand-in bound it (another program's connection): again
            if "address already in use" not in str(error) or attempt == PORT_ATTEMPTS:
                raise
            continue
        break
    try:
        yield ReferenceServices(ports, redis, started)
    finally:
        for service in started:
            service.close()


PORT_ATTEMPTS = 3
"""Starts of the stand-ins, each on fresh free ports, before a port taken meanwhile is an error."""


def _start_all(folder: Path, ports: Mapping[str, int], *, env: Mapping[str, str], charge_points: str,
               speed: float, network: str) -> tuple[list[StandIn], str]:
    """The three stand-ins on ``ports``, and the backend's Redis; the ones started are stopped on failure."""
    backend = StandIn("backend", network, "--backend-port", str(ports["backend"]), "--cms-url",
                      f"http://127.0.0.1:{ports['cms']}", "--database", str(folder / "backend.sqlite3"), env=env)
    started = [backend]
    try:
        found = re.search(r"Redis\s+(redis://\S+)", backend.banner)
        if found is None:
            raise StandInError(f"chargetwin backend did not say where its Redis is:\n{backend.banner}")
        started.append(StandIn("cms", network, "--cms-port", str(ports["cms"]), "--ocpp-port", str(ports["ocpp"]),
                               "--backend-url", f"http://127.0.0.1:{ports['backend']}", "--speed", str(speed),
                               "--charge-points", charge_points, env=env))
        started.append(StandIn("gateway", "--gateway-port", str(ports["gateway"]), "--redis", found.group(1),
                               env=env))
    except BaseException:
        for service in started:
            service.close()
        raise
    return started, found.group(1)


def main(argv: Sequence[str] | None = None) -> int:
    """Start the stand-ins, run ``chargetwin check`` against them with ``argv`` added; check's exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = standin_env(jwt_secret=secrets.token_urlsafe(48), internal_token=secrets.token_urlsafe(24))
    print("starting the reference services as stand-ins: chargetwin backend, cms --charge-points none, gateway",
          flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="chargetwin-reference-") as folder, \
                reference_services(Path(folder), env=env) as services:
            command = [sys.executable, "-m", "chargetwin", "check", "--backend", services.backend, "--gateway",
                       services.gateway, "--redis", services.redis, "--ocpp", services.ocpp, "--cms", services.cms,
                       *args]
            return subprocess.run(command, env=env, check=False).returncode
    except StandInError as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
