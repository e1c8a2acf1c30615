"""serve for days: stopped mid-session and started again on the same state, the user gets a clean end and
charges again; and with backpressure, simulated time waits for services that fall behind.

Before, that user was locked out for good: start answered 409 "You already
have a charging session" and stop 404, because the stored session stayed
active while the new world's charger had no transaction.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from stack_testkit import App, quiet, running_stack, settings_for

from chargetwin.contracts import default_validator
from chargetwin.twin.scenario import load_scenario
from chargetwin.twin.services.redis_server import redis_for
from chargetwin.twin.stack import Stack


def test_a_session_cut_by_a_restart_ends_cleanly_and_the_user_charges_again(tmp_path: Path) -> None:
    async def main() -> None:
        with redis_for(None) as redis_server:  # one Redis for both runs, so the restart's messages can be heard
            settings = replace(settings_for(tmp_path), redis_url=redis_server.url)
            async with running_stack(quiet(), settings) as (stack, traffic), httpx.AsyncClient() as http:
                app = App(stack, traffic, http)
                await app.login(1)
                await app.open()
                started = await app.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1})
                assert started.status_code == 200, started.text
                session_id = started.json()["data"]["session_id"]
                (meter,) = await app.wait_for(lambda m: m.get("event") == "meter_value")
                billed_wh = meter["data"]["meter_value"]
                await app.close()
            # the first twin is gone with its charge points; the database keeps an active session

            heard: list[tuple[str, dict[str, Any]]] = []
            listener = aioredis.from_url(redis_server.url)
            pubsub = listener.pubsub()
            await pubsub.psubscribe("user:1:*")

            async def listen() -> None:
                async for item in pubsub.listen():
                    if item["type"] == "pmessage":
                        heard.append((item["channel"].decode(), json.loads(item["data"])))

            listening = asyncio.get_running_loop().create_task(listen())
            try:
                async with running_stack(quiet(), settings) as (stack, traffic), httpx.AsyncClient() as http:
                    assert stack.backend is not None
                    stored = stack.backend.service.session(session_id)
                    assert stored is not None and stored.status == "error"
                    assert stored.meter_stop is not None and stored.meter_start is not None
                    assert stored.meter_stop - stored.meter_start >= billed_wh  # billed to its last meter value

                    app = App(stack, traffic, http)
                    await app.login(1)
                    await app.open()
                    (on_connect,) = await app.wait_for(lambda m: m["type"] == "active_session_update")
                    assert on_connect["has_active_session"] is False
                    stop = await app.post("/api/charging/stop", {})
                    assert stop.status_code == 404  # nothing left running
                    again = await app.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1})
                    assert again.status_code == 200, again.text
                    assert again.json()["data"]["session_id"] != session_id
                    await app.wait_for(lambda m: m.get("event") == "session_started")
                    await app.close()
                    found = [(r.channel, v.to_dict()) for r, v in traffic.violations()]
                    assert not found, found[:3]
            finally:
                listening.cancel()
                await pubsub.aclose()
                await listener.aclose()

        ended = [m for _, m in heard if m.get("event") == "session_error" and m["session_id"] == session_id]
        assert len(ended) == 1 and ended[0]["data"]["error"] == "Session lost"
        assert any(m["type"] == "active_session_update" and m["has_active_session"] is False for _, m in heard)
        validator = default_validator()
        for channel, message in heard:
            assert not validator.validate(message, channel=f"redis:{channel}", direction="publish"), message

    asyncio.run(main())


class _SlowBackend(httpx.AsyncBaseTransport):
    """The CMS's events reach the backend 0.2 s late each: a backend that cannot keep up."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.2)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def test_with_backpressure_simulated_time_waits_for_services_that_fall_behind(tmp_path: Path) -> None:
    """``serve`` holds simulated time while messages pile up, instead of queueing them without end."""
    async def main() -> None:
        scenario = load_scenario("smoke")
        async with Stack(scenario, settings=settings_for(tmp_path), speed=1200.0, backpressure=True,
                         events_transport=_SlowBackend()) as stack:
            assert stack.runner is not None and stack.clock is not None
            await asyncio.sleep(4.0)
            limit = 4 * len(stack.world.charge_points)
            assert stack.runner.held_s > 1.0  # it waited
            assert stack.clock.sim_seconds() < 0.75 * 4.0 * 1200.0  # and so fell behind the wall's pace
            assert stack.backlog <= limit + 2 * len(stack.world.charge_points)  # the queues stayed bounded

    asyncio.run(main())
