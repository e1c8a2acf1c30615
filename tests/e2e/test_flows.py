"""The seed's four flow examples, end to end on real sockets and a real Redis.

Start charging, meter values, charger status pushed to every connected user,
stop charging (seed section 5): an app (REST + WebSocket) drives the real
backend, which calls the real CMS, which speaks OCPP 1.6J to a simulated
charge point whose physics come from the model; every REST, Redis and
WebSocket message is validated against the contracts: zero violations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from stack_testkit import App, quiet, running_stack, settings_for


def test_the_four_flows_of_the_seed(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_stack(quiet(), settings_for(tmp_path)) as (stack, traffic), httpx.AsyncClient() as http:
            driver, neighbour = App(stack, traffic, http), App(stack, traffic, http)
            await driver.login(1)
            await neighbour.login(2)
            await driver.open()
            await neighbour.open()
            for app in (driver, neighbour):  # ruling 5: connected, the charger list, the active session
                first = await app.wait_for(lambda m: True, count=3)
                assert [m["type"] for m in first] == ["connected", "charger_list_update", "active_session_update"]

            # Example 1: start charging
            started = await driver.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1})
            assert started.status_code == 200, started.text
            session_id = started.json()["data"]["session_id"]
            (session_started,) = await driver.wait_for(
                lambda m: m.get("event") == "session_started" and m["session_id"] == session_id)
            assert session_started["transaction_id"] is not None

            # Example 2: meter values with everything the app shows
            meters = await driver.wait_for(lambda m: m.get("event") == "meter_value", count=2)
            assert meters[1]["data"]["meter_value"] >= meters[0]["data"]["meter_value"] > 0

            # Example 3: the station's status pushed to every connected user
            for app in (driver, neighbour):
                await app.wait_for(lambda m: m["type"] == "charger_status_update" and m["charger_id"] == "CP001"
                                   and {"connector_id": 1, "status": "Charging"} in m["data"]["connector_status"])

            # Example 4: stop charging
            stopped = await driver.post("/api/charging/stop", {"charger_id": "CP001"})
            assert stopped.status_code == 200, stopped.text
            assert stopped.json()["data"]["session_id"] == session_id
            (session_stopped,) = await driver.wait_for(
                lambda m: m.get("event") == "session_stopped" and m["session_id"] == session_id)
            # seed 1 and Example 4: the answer and the push tell the same figures (the charger's)
            final = {k: session_stopped["data"][k] for k in ("energy_delivered", "duration")}
            assert {k: stopped.json()["data"][k] for k in ("energy_delivered", "duration")} == final
            await driver.wait_for(lambda m: m["type"] == "active_session_update" and not m["has_active_session"],
                                  count=2)
            await asyncio.sleep(0.5)
            await driver.close()
            await neighbour.close()

            # the neighbour saw the map, never the driver's session (isolation, ruling 1)
            private = {"session_update", "notification", "response"}
            assert not [m for m in neighbour.received if m["type"] in private]
            assert all(not m["has_active_session"] for m in neighbour.received
                       if m["type"] == "active_session_update")
        assert len(traffic.records) > 30
        assert {r.channel for r in traffic.records} >= {
            "backend:/api/charging/start", "backend:/api/charging/stop", "websocket",
            "redis:user:1:session_updates", "redis:user:1:notifications", "redis:user:2:charger_updates"}
        assert traffic.violations() == []

    asyncio.run(main())


def test_a_charge_point_fault_reaches_every_app_as_status_changed(tmp_path: Path) -> None:
    """The charge point's own status (StatusNotification connectorId 0) is the charger_update status_changed
    (SPEC-NOTES N-05), from the simulated charge point through the CMS, the backend and Redis to each app."""
    async def main() -> None:
        async with running_stack(quiet(), settings_for(tmp_path)) as (stack, traffic), httpx.AsyncClient() as http:
            apps = [App(stack, traffic, http), App(stack, traffic, http)]
            for user_id, app in enumerate(apps, start=1):
                await app.login(user_id)
                await app.open()
                await app.wait_for(lambda m: m["type"] == "active_session_update")

            def whole(status: str) -> Callable[[dict[str, Any]], bool]:
                return lambda m: (m.get("event") == "status_changed" and m["charger_id"] == "CP001"
                                  and m["data"]["status"] == status and m["data"]["connector_id"] == 0)

            stack.world.fault("CP001", "GroundFailure")
            for app in apps:
                (faulted,) = await app.wait_for(whole("Faulted"))
                assert faulted["data"]["previous_status"] == "Available"
                await app.wait_for(lambda m: m.get("event") == "error" and m["data"]["connector_id"] == 0)
            stack.world.repair("CP001")
            for app in apps:
                await app.wait_for(whole("Available"))
            for app in apps:
                await app.close()
        assert traffic.violations() == []

    asyncio.run(main())


def test_a_backend_restart_mid_session_loses_nothing(tmp_path: Path) -> None:
    """Every meter sample taken while the backend was down reaches the app, in order; stop still works."""
    from chargetwin.twin.model import events as ev

    async def main() -> None:
        async with running_stack(quiet(), settings_for(tmp_path)) as (stack, traffic), httpx.AsyncClient() as http:
            samples: list[ev.MeterSample] = []
            stack.world.subscribe(lambda e: samples.append(e) if isinstance(e, ev.MeterSample) else None)
            app = App(stack, traffic, http)
            await app.login(1)
            await app.open()
            started = await app.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1})
            session_id = started.json()["data"]["session_id"]
            await app.wait_for(lambda m: m.get("event") == "meter_value", count=2)
            await stack.restart_backend(downtime=3.0)  # three simulated minutes of samples queue up in the CMS
            stopped = await app.post("/api/charging/stop", {})
            assert stopped.status_code == 200, stopped.text
            assert stopped.json()["data"]["session_id"] == session_id
            await app.wait_for(lambda m: m.get("event") == "session_stopped")
            await asyncio.sleep(0.5)
            await app.close()
            meters = [m for m in app.received if m.get("event") == "meter_value"]
            ours = [s for s in samples if s.charge_point_id == "CP001" and s.connector_id == 1]
            assert len(ours) >= 5
            assert [m["data"]["meter_value"] for m in meters] == [s.energy_wh for s in ours]
            assert {m["session_id"] for m in meters} == {session_id}
        assert traffic.violations() == []

    asyncio.run(main())
