"""``chargetwin serve --record DIR``: a served session's trace, which ``chargetwin validate DIR`` judges.

One app session (log in, open the socket, start, meter values, stop, close)
against ``serve_scenario`` with a recording; then the validate command on
the folder: the session passes, and a record tampered with fails it.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console
from stack_testkit import quiet, settings_for
from websockets.asyncio.client import connect

from chargetwin.cli import build_parser, main
from chargetwin.harness.trace import read_trace
from chargetwin.twin.services.settings import Settings
from chargetwin.twin.stack import free_port


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a recorded serve session (one app, one charging session), stopped with Ctrl-C."""
    from chargetwin._serve_cmd import serve_scenario

    tmp = tmp_path_factory.mktemp("serve")
    settings = settings_for(tmp, backend_port=free_port(), cms_port=free_port(), ocpp_port=free_port(),
                            gateway_port=free_port())
    printed = io.StringIO()

    async def session() -> int:
        stop = asyncio.Event()
        served = asyncio.create_task(serve_scenario(quiet(), settings=settings, speed=60.0, stop=stop, show_users=0,
                                                    console=Console(file=printed), record=tmp / "recorded"))
        try:
            await asyncio.wait_for(_banner(printed, served), 20)
            await _one_app_session(settings)
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, as a developer stops serve (its handler sets stop)
            await asyncio.wait_for(stop.wait(), 5)
        finally:
            stop.set()
        return await served

    assert asyncio.run(session()) == 0
    assert "chargetwin validate" in printed.getvalue() and "recorded " in printed.getvalue()
    return tmp / "recorded"


async def _banner(printed: io.StringIO, served: asyncio.Task[int]) -> None:
    while "Press Ctrl-C" not in printed.getvalue():
        assert not served.done(), printed.getvalue()
        await asyncio.sleep(0.05)


async def _one_app_session(settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=settings.backend_url) as http:
        login = await http.post("/api/auth/login", json={"email": "user1@chargetwin.example", "password": "chargetwin"})
        token = login.json()["data"]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        received: list[dict[str, Any]] = []

        async def until(event: str) -> None:
            while not any(m.get("event") == event for m in received):
                await asyncio.sleep(0.05)

        async with connect(f"{settings.gateway_url}/?token={token}") as socket:
            async def read() -> None:
                async for frame in socket:
                    received.append(json.loads(frame))

            reader = asyncio.get_running_loop().create_task(read())
            started = await http.post("/api/charging/start", json={"charger_id": "CP001", "connector_id": 1},
                                      headers=auth)
            assert started.status_code == 200, started.text
            await asyncio.wait_for(until("meter_value"), 15)
            stopped = await http.post("/api/charging/stop", json={"charger_id": "CP001"}, headers=auth)
            assert stopped.status_code == 200, stopped.text
            await asyncio.wait_for(until("session_stopped"), 15)
            await asyncio.sleep(0.3)
        await reader


def test_the_recorded_session_holds_every_hop(recorded: Path) -> None:
    records = list(read_trace(recorded / "trace.ndjson"))
    assert (records[0].channel, records[-1].channel) == ("twin:run", "twin:end")
    hops = Counter(r.hop for r in records)
    assert set(hops) == {"twin", "app-backend", "backend-cms", "cms-backend", "redis", "gateway-app", "ocpp"}
    app = [(r.channel, r.direction, r.status) for r in records if r.hop == "app-backend"]
    assert app == [("backend:/api/auth/login", "request", None), ("backend:/api/auth/login", "response", 200),
                   ("backend:/api/charging/start", "request", None), ("backend:/api/charging/start", "response", 200),
                   ("backend:/api/charging/stop", "request", None), ("backend:/api/charging/stop", "response", 200)]
    socket = [r for r in records if r.hop == "gateway-app"]
    assert socket[0].message["type"] == "connected" and socket[-1].direction == "close"
    assert {(r.user_id, r.socket_id) for r in socket} == {(1, 1)}
    assert records[-1].message["complete"] is True


def test_validate_gives_the_recorded_session_its_verdict(recorded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(recorded)]) == 0
    out = capsys.readouterr().out
    assert "smoke: PASS" in out
    assert "causality_and_latency           1 checked" in out  # the app's start was judged end to end


def test_validate_catches_a_tampered_record(recorded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = (recorded / "trace.ndjson").read_text(encoding="utf-8").splitlines(keepends=True)
    connected = next(i for i, line in enumerate(lines) if '"type":"connected"' in line)
    lines[connected] = lines[connected].replace('"userId":1', '"userId":2')  # another user's welcome
    (tmp_path / "trace.ndjson").write_text("".join(lines), encoding="utf-8")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "smoke: FAIL" in out and "isolation" in out


def test_validate_fails_a_session_whose_app_broke_the_contract_live(recorded: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A header no record shows (a start without Content-Type, seen live) fails the session's verdict."""
    text = (recorded / "trace.ndjson").read_text(encoding="utf-8")
    clean = '"app_violations":{"total":0,"by_rule":{}}'
    assert text.count(clean) == 1
    broken = '"app_violations":{"total":1,"by_rule":{"content_type_json":1}}'
    (tmp_path / "trace.ndjson").write_text(text.replace(clean, broken), encoding="utf-8")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL threshold: the apps broke the contract 1 time as they went (content_type_json 1)" in out


def test_serve_takes_record() -> None:
    args = build_parser().parse_args(["serve", "--record", "out/session"])
    assert args.record == Path("out/session")
