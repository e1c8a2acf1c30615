"""``chargetwin backend``, ``cms`` and ``gateway``, each its own process, carry a session as the whole stack does."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standin_testkit import INTERNAL, SECRET, standin_env
from standin_testkit import standins as start_standins
from websockets.asyncio.client import connect

from chargetwin.contracts import default_validator


@pytest.fixture
def standins(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with start_standins(tmp_path) as started:
        yield started


async def _a_session(ports: dict[str, int]) -> list[tuple[str, str, Any]]:
    """Login, socket, start, meter values, stop: every message seen, as (channel, direction, message)."""
    seen: list[tuple[str, str, Any]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['backend']}", timeout=15) as http:
        login = await http.post("/api/auth/login", json={"email": "user2@chargetwin.example",
                                                         "password": "chargetwin"})
        assert login.status_code == 200, login.text
        token = login.json()["data"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(f"ws://127.0.0.1:{ports['gateway']}/?token={token}") as socket_:
            async def read() -> None:
                async for frame in socket_:
                    seen.append(("websocket", "receive", json.loads(frame)))

            reader = asyncio.create_task(read())
            await asyncio.sleep(0.5)
            body = {"charger_id": "CP002", "connector_id": 1}
            started = await http.post("/api/charging/start", json=body, headers=headers)
            seen += [("backend:/api/charging/start", "request", body),
                     ("backend:/api/charging/start", "response", started.json())]
            assert started.status_code == 200, started.text
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                    m.get("event") == "meter_value" for _, _, m in seen if isinstance(m, dict)):
                await asyncio.sleep(0.2)
            stopped = await http.post("/api/charging/stop", json={}, headers=headers)
            seen += [("backend:/api/charging/stop", "request", {}),
                     ("backend:/api/charging/stop", "response", stopped.json())]
            assert stopped.status_code == 200, stopped.text
            await asyncio.sleep(1.0)
            reader.cancel()
    return seen


def test_three_standin_processes_carry_a_session_and_every_message_conforms(standins: dict[str, Any]) -> None:
    seen = asyncio.run(_a_session(standins["ports"]))
    pushed = [(m.get("type"), m.get("event")) for channel, _, m in seen if channel == "websocket"]
    assert pushed[0] == ("connected", None), pushed
    for expected in [("session_update", "session_started"), ("session_update", "meter_value"),
                     ("session_update", "session_stopped")]:
        assert expected in pushed, pushed
    validator = default_validator()
    problems = [(channel, v) for channel, direction, message in seen
                for v in validator.validate(message, channel=channel, direction=direction)]
    assert problems == []
    for service in standins["services"]:
        code, said = service.stop()
        assert code == 0, said
        assert "Traceback" not in said, said


def test_the_backend_tells_where_its_redis_is_and_prints_tokens_not_the_secret(standins: dict[str, Any]) -> None:
    backend = standins["services"][0].banner
    assert "started here: give it to chargetwin gateway --redis" in backend
    assert re.search(r"token eyJ\S+", backend)
    for service in standins["services"]:
        assert SECRET not in service.banner and INTERNAL not in service.banner


def _stand_in(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargetwin", *args], capture_output=True, text=True,
                          env=standin_env(), timeout=60)


def test_a_gateway_without_a_redis_exits_2_saying_what_to_give() -> None:
    done = _stand_in("gateway", "--gateway-port", "0")
    assert done.returncode == 2
    assert "--redis URL" in done.stderr and "REDIS_URL" in done.stderr


def test_a_taken_port_exits_2_naming_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _stand_in("cms", "--cms-port", str(port), "--ocpp-port", "0", "--charge-points", "none")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_scenario_exits_2() -> None:
    done = _stand_in("backend", "no-such-scenario")
    assert done.returncode == 2
    assert "no-such-scenario" in done.stderr
