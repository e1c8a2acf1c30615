"""The twin judges the apps pointed at it: what an app sends breaks the contract, ``GET /twin/violations`` says so.

A real stack; the apps are plain HTTP and WebSocket clients sending what a
broken (or a well-behaved) mobile app would.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from stack_testkit import connected_app, quiet, running_stack, settings_for
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chargetwin.twin.services.appwatch import DEFAULT_LIMIT
from chargetwin.twin.stack import Stack


async def _violations(stack: Stack, http: httpx.AsyncClient, *, since: int = 0, total: int | None = None,
                      timeout: float = 10.0) -> dict[str, Any]:
    """The ``data`` of ``GET /twin/violations`` (once ``total`` violations were found, when given)."""
    async def fetch() -> dict[str, Any]:
        while True:
            answer = await http.get(f"{stack.urls.backend}/twin/violations", params={"since": since})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["success"] is True
            if total is None or body["data"]["total"] >= total:
                return dict(body["data"])
            await asyncio.sleep(0.05)
    return await asyncio.wait_for(fetch(), timeout)


def _rules(data: dict[str, Any], **where: Any) -> set[str]:
    return {v["rule"] for v in data["violations"] if all(v[key] == value for key, value in where.items())}


def test_a_malformed_start_a_bad_header_and_a_client_frame_are_listed(tmp_path: Path) -> None:
    async def main() -> None:
        watched = running_stack(quiet(), settings_for(tmp_path), watch_apps=True)
        async with watched as (stack, traffic), httpx.AsyncClient() as http:
            app = await connected_app(stack, traffic, http)

            refused = await app.post("/api/charging/start", {"charger": "CP001"})  # the backend refuses: 422
            assert refused.status_code == 422
            # ... and what it does not refuse: a JSON body sent as text/plain
            accepted = await http.post(stack.urls.backend + "/api/charging/start",
                                       content=b'{"charger_id": "CP002", "connector_id": 1}',
                                       headers={"Authorization": f"Bearer {app.token}", "Content-Type": "text/plain"})
            assert accepted.status_code == 200, accepted.text
            assert app._socket is not None
            await app._socket.send('{"action": "start_charging", "charger_id": "CP001"}')
            await app.wait_for(lambda m: m["type"] == "error")

            data = await _violations(stack, http, total=4)
            start = "backend:/api/charging/start"
            assert _rules(data, source="rest", channel=start, user_id=1) == {
                "schema.additionalProperties", "schema.required", "content_type_json"}
            assert _rules(data, source="websocket", channel="websocket", user_id=1) == {"receive_only"}
            assert all(v["direction"] == "request" and v["at"].endswith("Z") for v in data["violations"])
            frame = next(v for v in data["violations"] if v["rule"] == "receive_only")
            assert "start_charging" in frame["message"] and frame["pointer"] == ""
            assert data["total"] == len(data["violations"]) == sum(data["by_rule"].values())
            assert [v["seq"] for v in data["violations"]] == list(range(1, data["total"] + 1))  # newest last

            newer = await _violations(stack, http, since=data["total"] - 1)
            assert [v["seq"] for v in newer["violations"]] == [data["total"]]
            assert (await http.get(f"{stack.urls.backend}/twin/violations?since=-1")).status_code == 422
            await app.close()

    asyncio.run(main())


def test_handshakes_without_a_good_token_or_at_another_path_are_listed(tmp_path: Path) -> None:
    async def main() -> None:
        watched = running_stack(quiet(), settings_for(tmp_path), watch_apps=True)
        async with watched as (stack, _), httpx.AsyncClient() as http:
            gateway = stack.urls.gateway
            for url in (f"{gateway}/", f"{gateway}/?jwt={stack.token(1)}", f"{gateway}/?token=not-a-jwt"):
                async with connect(url) as socket:
                    await socket.wait_closed()
                    assert socket.close_code == 1008
            with pytest.raises(InvalidStatus, match="404"):
                await connect(f"{gateway}/ws?token={stack.token(1)}")
            data = await _violations(stack, http, total=4)
            assert data["by_rule"] == {"handshake_path": 1, "handshake_token_present": 2, "handshake_token_valid": 1}
            hints = [v["message"] for v in data["violations"] if v["rule"] == "handshake_token_present"]
            assert any("'jwt'" in hint for hint in hints)
            assert all(v["source"] == "websocket" and v["user_id"] is None for v in data["violations"]
                       if v["rule"] != "handshake_path")

    asyncio.run(main())


def test_a_well_behaved_app_produces_none(tmp_path: Path) -> None:
    async def main() -> None:
        watched = running_stack(quiet(), settings_for(tmp_path), watch_apps=True)
        async with watched as (stack, traffic), httpx.AsyncClient() as http:
            app = await connected_app(stack, traffic, http)
            started = await app.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1})
            assert started.status_code == 200, started.text
            await app.wait_for(lambda m: m.get("event") == "session_started")
            await app.wait_for(lambda m: m.get("event") == "meter_value")
            stopped = await app.post("/api/charging/stop", {"charger_id": None})  # the seed's client sends null
            assert stopped.status_code == 200, stopped.text
            await app.wait_for(lambda m: m.get("event") == "session_stopped")
            await app.close()
            assert await _violations(stack, http) == {"violations": [], "total": 0, "by_rule": {}}

    asyncio.run(main())


def test_the_list_stays_bounded_and_the_total_counts_all(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sent = DEFAULT_LIMIT + 50

    async def main() -> None:
        # the gateway's flood guard (SPEC-NOTES N-57) would close this socket after 20 frames: lift it here
        settings = settings_for(tmp_path, gateway_client_frames_per_10s=2 * sent)
        watched = running_stack(quiet(), settings, watch_apps=True)
        async with watched as (stack, traffic), httpx.AsyncClient() as http:
            app = await connected_app(stack, traffic, http)
            assert app._socket is not None
            for n in range(sent):  # an app gone wrong: a frame in a loop
                await app._socket.send(f'{{"type": "ping", "n": {n}}}')
            data = await _violations(stack, http, total=sent)
            assert data["total"] == sent and data["by_rule"] == {"receive_only": sent}
            kept = data["violations"]
            assert len(kept) == DEFAULT_LIMIT
            assert (kept[0]["seq"], kept[-1]["seq"]) == (sent - DEFAULT_LIMIT + 1, sent)  # the newest, oldest first
            assert len((await _violations(stack, http, since=sent - 5))["violations"]) == 5
            await app.close()

    with caplog.at_level(logging.WARNING, logger="chargetwin.appwatch"):
        asyncio.run(main())
    shown = [r for r in caplog.records if r.name == "chargetwin.appwatch" and "app violation (" in r.getMessage()]
    assert 1 <= len(shown) <= 20  # 10 a window of 10 s: the terminal is not flooded
