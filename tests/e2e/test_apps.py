"""The model's drivers use the real services through simulated apps (the runner's app users)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stack_testkit import Traffic, settings_for

from chargetwin.harness.apps import AppUsers
from chargetwin.twin.model import events as ev
from chargetwin.twin.scenario import load_scenario
from chargetwin.twin.stack import Stack


def test_drivers_charge_through_the_backend_and_watch_on_the_gateway(tmp_path: Path) -> None:
    traffic = Traffic()

    def record(channel: str, direction: str, message: Any, status: int | None, user: int,
               socket: int | None) -> None:
        traffic.add(channel, direction, message, status)

    def apps(stack: Stack) -> AppUsers:
        return AppUsers(stack.world, backend_url=stack.urls.backend, gateway_url=stack.urls.gateway,
                        token_for=stack.token, on_traffic=record)

    async def main() -> AppUsers:
        stopped: list[ev.TransactionStopped] = []
        async with Stack(load_scenario("smoke"), settings=settings_for(tmp_path), speed=120.0,
                         app_factory=apps) as stack:
            stack.world.subscribe(lambda e: stopped.append(e) if isinstance(e, ev.TransactionStopped) else None)
            users = stack.world.app
            assert isinstance(users, AppUsers)
            await asyncio.sleep(8)  # 16 simulated minutes of the smoke scenario's demand
            await users.close()
        assert stopped and {e.reason for e in stopped} & {"Remote", "EVDisconnected"}
        return users

    users = asyncio.run(main())
    assert users.metrics.starts_accepted >= 3
    assert users.metrics.sockets_opened >= 3 and users.metrics.messages_received > 10
    starts = [r for r in traffic.records if r.channel == "backend:/api/charging/start" and r.direction == "response"]
    assert starts and all(r.status in (200, 409) for r in starts)
    events = {(m.get("type"), m.get("event")) for m in traffic.on("websocket")}
    assert {("connected", None), ("session_update", "session_started"), ("session_update", "meter_value")} <= events
    assert traffic.violations() == []
