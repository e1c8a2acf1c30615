"""The twin's control API (``/twin/``), every action on a running stack, as a person or a test tool uses it.

Each action's effect is watched where an app or a charge point sees it (the
app's WebSocket, Redis, the OCPP frames), and every message is validated
against the contracts: zero violations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from ocpp.messages import Call, validate_payload
from ocpp.routing import on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action
from stack_testkit import App, connected_app, quiet, running_stack, settings_for
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from chargetwin.twin.stack import Stack

TOKEN = "control-api-test-token"


class Control:
    """``/twin/`` calls with the admin token."""

    def __init__(self, http: httpx.AsyncClient, base: str, token: str = TOKEN) -> None:
        self.http, self.base, self.token = http, base, token

    async def send(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> httpx.Response:
        headers = {"X-Twin-Token": self.token if token is None else token}
        return await self.http.request(method, f"{self.base}/twin{path}", json=body, headers=headers, timeout=20)

    async def ok(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        response = await self.send(method, path, body)
        assert response.status_code == 200, (path, response.status_code, response.text)
        payload = response.json()
        assert payload["success"] is True
        data: dict[str, Any] = payload["data"]
        return data


@asynccontextmanager
async def controlled(tmp_path: Path) -> AsyncIterator[tuple[Stack, Control, App]]:
    """A running stack with the control API, user 1's app connected; every message checked at the end."""
    settings = settings_for(tmp_path, admin_token=TOKEN)
    async with running_stack(quiet(), settings) as (stack, traffic), httpx.AsyncClient() as http:
        app = await connected_app(stack, traffic, http)
        yield stack, Control(http, stack.urls.backend), app
        await app.close()
    found = [(r.channel, r.message, v.to_dict()) for r, v in traffic.violations()]
    assert not found, found[:5]


async def start_when_free(app: App, charger_id: str = "CP001", connector_id: int = 1) -> httpx.Response:
    """Start charging as soon as the last car left the connector (a little after its transaction ended)."""
    for _ in range(50):
        started = await app.post("/api/charging/start", {"charger_id": charger_id, "connector_id": connector_id})
        if started.status_code != 409:
            break
        await asyncio.sleep(0.1)
    assert started.status_code == 200, started.text
    return started


def _ocpp_frames(frames: list[tuple[str, str, str]], action: str) -> list[list[Any]]:
    return [json.loads(f) for _, _, f in frames if f'"{action}"' in f]


def test_every_control_action_reaches_apps_and_charge_points_as_the_contracts_say(tmp_path: Path) -> None:
    frames: list[tuple[str, str, str]] = []

    async def main() -> None:
        settings = settings_for(tmp_path, admin_token=TOKEN)
        async with running_stack(quiet(), settings, speed=60.0,
                                 ocpp_tap=lambda cp, d, f: frames.append((cp, d, f))) as (stack, traffic), \
                httpx.AsyncClient() as http:
            control = Control(http, stack.urls.backend)
            app = await connected_app(stack, traffic, http)

            # the guard: no token, a wrong one; the open info; the document of the API
            for token in ("", "wrong"):
                refused = await control.send("POST", "/users/1/notifications", {"title": "t", "message": "m"},
                                             token=token)
                assert refused.status_code == 401 and refused.json()["success"] is False
            info = (await http.get(f"{stack.urls.backend}/twin/info")).json()["data"]
            assert info["gateway_url"] == stack.urls.gateway
            document = (await http.get(f"{stack.urls.backend}/twin/openapi.json")).json()
            assert "/twin/stations/{station_id}/maintenance" in document["paths"]
            assert "/api/charging/start" not in document["paths"]  # the app's API has its own contract

            # a session to act on
            started = await app.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1})
            assert started.status_code == 200, started.text
            await app.wait_for(lambda m: m.get("event") == "session_started")

            # jump to a state of charge: the next meter value says so
            await control.ok("POST", "/users/1/session", {"soc": 85})
            await app.wait_for(lambda m: m.get("event") == "meter_value"
                               and m["data"]["charge_percentage"] >= 85)
            jumped_back = await control.send("POST", "/users/1/session", {"soc": 10})
            assert jumped_back.status_code == 409

            # a notification and a session_error reach the user
            await control.ok("POST", "/users/1/notifications", {"title": "Tariff change", "message": "Cheaper.",
                                                                 "data": {"tariff": 2.5}})
            await app.wait_for(lambda m: m["type"] == "notification" and m["title"] == "Tariff change")
            await control.ok("POST", "/users/1/session-error", {"error": "Overheating", "message": "Hot cable",
                                                                 "error_code": "HighTemperature"})
            await app.wait_for(lambda m: m.get("event") == "session_error" and m["data"]["error"] == "Overheating")

            # the clock's speed
            assert (await control.ok("PUT", "/clock", {"speed": 120}))["speed"] == 120
            assert stack.clock is not None and stack.clock.speed == 120
            await control.ok("PUT", "/clock", {"speed": 60})

            # finish the session as a driver at the charger: session_completed
            await control.ok("POST", "/users/1/session", {"finish": True})
            await app.wait_for(lambda m: m.get("event") == "session_completed")
            missing = await control.send("POST", "/users/1/session", {"finish": True})
            assert missing.status_code == 404

            # a fault under a running session ends it as an error, with the fault's code
            await start_when_free(app)
            await app.wait_for(lambda m: m.get("event") == "session_started", count=2)
            await control.ok("POST", "/charge-points/CP001/fault", {"connector_id": 1, "error_code": "GroundFailure"})
            (ended,) = await app.wait_for(lambda m: m.get("event") == "session_error"
                                          and m["data"]["error"] == "Charger fault")
            assert ended["data"]["error_code"] == "GroundFailure"
            await control.ok("POST", "/charge-points/CP001/repair", {"connector_id": 1})

            # maintenance: ChangeAvailability over OCPP, then one update with both
            await control.ok("POST", "/stations/STATION003/maintenance",
                             {"under_maintenance": True, "reason": "Scheduled maintenance"})
            red = await app.wait_for(lambda m: m["type"] == "charger_status_update"
                                     and m["station_id"] == "STATION003" and m["data"]["is_under_maintenance"])
            assert red[0]["status"] == "unavailable"
            assert {c["status"] for c in red[0]["data"]["connector_status"]} == {"Unavailable"}
            sent = [f for f in _ocpp_frames(frames, "ChangeAvailability") if f[0] == 2]
            assert {(f[3]["connectorId"], f[3]["type"]) for f in sent} == {(0, "Inoperative")}
            await control.ok("POST", "/stations/STATION003/maintenance", {"under_maintenance": False})
            await app.wait_for(lambda m: m["type"] == "charger_status_update" and m["station_id"] == "STATION003"
                               and m["status"] == "available" and not m["data"]["is_under_maintenance"])

            # fault and repair one connector, then a whole charge point
            await control.ok("POST", "/charge-points/CP004/fault", {"connector_id": 2, "error_code": "GroundFailure"})
            await app.wait_for(lambda m: m.get("event") == "connector_status_changed"
                               and m["charger_id"] == "CP004" and m["data"]["status"] == "Faulted"
                               and m["data"]["error_code"] == "GroundFailure")
            await app.wait_for(lambda m: m.get("event") == "error" and m["charger_id"] == "CP004")
            await control.ok("POST", "/charge-points/CP004/repair", {"connector_id": 2})
            await app.wait_for(lambda m: m.get("event") == "connector_status_changed" and m["charger_id"] == "CP004"
                               and m["data"]["previous_status"] == "Faulted" and m["data"]["status"] == "Available")
            await control.ok("POST", "/charge-points/CP005/fault", {"error_code": "PowerMeterFailure"})
            await app.wait_for(lambda m: m["type"] == "charger_status_update" and m["charger_id"] == "CP005"
                               and m["data"]["connector_status"][0]["status"] == "Faulted")
            await control.ok("POST", "/charge-points/CP005/repair")
            await app.wait_for(lambda m: m["type"] == "charger_status_update" and m["charger_id"] == "CP005"
                               and m["data"]["connector_status"][0]["status"] == "Available")

            # any OCPP call of the central system, and the charge point's answer
            answer = await control.ok("POST", "/charge-points/CP002/ocpp/GetConfiguration",
                                      {"key": ["NumberOfConnectors"]})
            assert answer["answer"]["configurationKey"][0] == {"key": "NumberOfConnectors", "readonly": True,
                                                               "value": "1"}
            cleared = await control.ok("POST", "/charge-points/CP002/ocpp/ClearCache", {})
            assert cleared["answer"] == {"status": "Accepted"}
            unhandled = await control.ok("POST", "/charge-points/CP002/ocpp/ReserveNow", {
                "connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "RFID001", "reservationId": 1})
            assert "call_error" in unhandled  # the simulated charge point does not do reservations
            bad = await control.send("POST", "/charge-points/CP002/ocpp/Reset", {"type": "Sometimes"})
            assert bad.status_code == 422 and "Reset" in bad.json()["message"]
            unknown = await control.send("POST", "/charge-points/CP002/ocpp/BootNotification", {})
            assert unknown.status_code == 404

            # disconnect a charge point from the CMS, then let it back
            await control.ok("POST", "/charge-points/CP002/disconnect")
            assert stack.cms is not None
            for _ in range(100):
                if not stack.cms.connected("CP002"):
                    break
                await asyncio.sleep(0.05)
            assert not stack.cms.connected("CP002")
            offline = await control.send("POST", "/charge-points/CP002/ocpp/ClearCache", {})
            assert offline.status_code == 409
            boots = sum(1 for f in _ocpp_frames(frames, "BootNotification") if f[0] == 2)
            await control.ok("POST", "/charge-points/CP002/reconnect")
            assert stack.cms.connected("CP002")
            assert sum(1 for f in _ocpp_frames(frames, "BootNotification") if f[0] == 2) == boots + 1

            # unknown targets
            assert (await control.send("POST", "/stations/NOPE/maintenance", {"under_maintenance": True})
                    ).status_code == 404
            assert (await control.send("POST", "/charge-points/NOPE/fault", {})).status_code == 404
            assert (await control.send("POST", "/users/99999/notifications", {"title": "t", "message": "m"})
                    ).status_code == 404
            await app.close()

        found = [(r.channel, r.message, v.to_dict()) for r, v in traffic.violations()]
        assert not found, found[:5]
        checked = 0
        for _, _, frame in frames:  # the calls the control API made the CMS send, against OCPP 1.6J's schemas
            message = json.loads(frame)
            if message[0] == 2 and message[2] in ("ChangeAvailability", "GetConfiguration", "ClearCache"):
                await validate_payload(Call(unique_id=message[1], action=message[2], payload=message[3]),
                                       ocpp_version="1.6")
                checked += 1
        assert checked >= 5

    asyncio.run(main())


def test_the_control_api_is_off_without_an_admin_token(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_stack(quiet(), settings_for(tmp_path)) as (stack, _), httpx.AsyncClient() as http:
            off = await Control(http, stack.urls.backend).send("PUT", "/clock", {"speed": 2})
            assert off.status_code == 404 and "admin token" in off.json()["message"]
            assert stack.clock is not None and stack.clock.speed == 60.0

    asyncio.run(main())


def test_a_station_added_and_removed_while_running_reaches_every_app(tmp_path: Path) -> None:
    async def main() -> None:
        async with controlled(tmp_path) as (stack, control, app):

            def listed(message: dict[str, Any], station_id: str) -> dict[str, Any] | None:
                if message["type"] != "charger_list_update":
                    return None
                return next((s for s in message["data"]["chargers"] if s["station_id"] == station_id), None)

            station = {"id": "STATION100", "name": "Added Station", "address": "1 Test Street",
                       "latitude": 30.05, "longitude": 31.24, "charge_points": [{"id": "CP100", "connectors": 2}]}
            added = await control.ok("POST", "/stations", station)
            assert added == {"station_id": "STATION100", "charge_points": ["CP100"], "external": []}
            assert (await control.send("POST", "/stations", station)).status_code == 409
            await app.wait_for(lambda m: (entry := listed(m, "STATION100")) is not None
                               and entry["display"] == "2/2")
            started = await app.post("/api/charging/start", {"charger_id": "CP100", "connector_id": 1})
            assert started.status_code == 200, started.text
            await app.wait_for(lambda m: m.get("event") == "session_started")
            busy = await control.send("DELETE", "/stations/STATION100")
            assert busy.status_code == 409 and "CP100" in busy.json()["message"]
            assert (await app.post("/api/charging/stop", {})).status_code == 200
            await app.wait_for(lambda m: m.get("event") == "session_stopped")
            for _ in range(100):  # the car leaves the connector a little after the transaction ends
                removed = await control.send("DELETE", "/stations/STATION100")
                if removed.status_code != 409:
                    break
                await asyncio.sleep(0.1)
            assert removed.status_code == 200, removed.text
            def latest_list() -> dict[str, Any]:
                return [m for m in app.received if m["type"] == "charger_list_update"][-1]

            for _ in range(100):
                if listed(latest_list(), "STATION100") is None:
                    break
                await asyncio.sleep(0.05)
            assert listed(latest_list(), "STATION100") is None and listed(latest_list(), "STATION001") is not None
            assert stack.cms is not None and not stack.cms.central.knows("CP100")
            unknown = await app.post("/api/charging/start", {"charger_id": "CP100", "connector_id": 1})
            assert unknown.status_code == 404
            bad = await control.send("POST", "/stations", {**station, "id": "STATION101", "latitude": 200})
            assert bad.status_code == 422

            # a charge point more, then less, at a station that stays
            await control.ok("POST", "/stations/STATION001/charge-points", {"id": "CP101", "kind": "DC",
                                                                           "max_power_kw": 50, "connectors": 1})
            for _ in range(100):
                entry = listed(latest_list(), "STATION001")
                if entry and any(c["charger_id"] == "CP101" and c["display"] == "1/1" for c in entry["chargers"]):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"CP101 never listed as 1/1: {listed(latest_list(), 'STATION001')}")
            assert stack.cms.connected("CP101")
            await control.ok("DELETE", "/charge-points/CP101")
            for _ in range(100):
                entry = listed(latest_list(), "STATION001")
                if entry and all(c["charger_id"] != "CP101" for c in entry["chargers"]):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("CP101 is still listed after its removal")
            assert (await control.send("DELETE", "/charge-points/CP002")).status_code == 200
            last = await control.send("DELETE", "/charge-points/CP001")
            assert last.status_code == 409 and "remove the station" in last.json()["message"]

    asyncio.run(main())


class ThirdPartyChargePoint(OcppChargePoint):
    """A charge point that is not the twin's (an OCPP test tool's), written with the ocpp package."""

    @on(Action.get_configuration)
    def on_get_configuration(self, **_: Any) -> call_result.GetConfiguration:
        return call_result.GetConfiguration(configuration_key=[{"key": "Vendor", "readonly": True,
                                                                "value": "third party"}])


def test_a_charge_point_of_someone_elses_is_listed_and_driven_through_the_cms(tmp_path: Path) -> None:
    async def main() -> None:
        async with controlled(tmp_path) as (stack, control, app):
            added = await control.ok("POST", "/stations", {
                "id": "LAB", "name": "Test lab", "address": "Lab 1", "latitude": 30.0, "longitude": 31.2,
                "charge_points": [{"id": "EXT1", "connectors": 1, "simulated": False}]})
            assert added["external"] == ["EXT1"]
            assert stack.fleet is not None and "EXT1" not in stack.fleet.charge_points
            async with connect(f"{stack.urls.ocpp}/EXT1", subprotocols=[Subprotocol("ocpp1.6")]) as socket:
                tool = ThirdPartyChargePoint("EXT1", socket)
                listening = asyncio.get_running_loop().create_task(tool.start())
                booted = await tool.call(call.BootNotification(charge_point_model="lab", charge_point_vendor="x"))
                assert booted.status == "Accepted"
                await tool.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
                await app.wait_for(lambda m: m["type"] == "charger_status_update" and m["charger_id"] == "EXT1"
                                   and m["data"]["display"] == "1/1")
                answer = await control.ok("POST", "/charge-points/EXT1/ocpp/GetConfiguration", {})
                assert answer["answer"] == {"configurationKey": [{"key": "Vendor", "readonly": True,
                                                                  "value": "third party"}]}
                listening.cancel()
            await control.ok("DELETE", "/stations/LAB")

    asyncio.run(main())


def test_a_blocked_id_tag_is_refused_by_the_cms_and_the_charger_ends_the_session(tmp_path: Path) -> None:
    async def main() -> None:
        async with controlled(tmp_path) as (stack, control, app):
            tag = stack.users[0].id_tag
            assert await control.ok("PUT", f"/id-tags/{tag}", {"status": "Blocked"}) == {"id_tag": tag,
                                                                                       "status": "Blocked"}
            assert (await control.send("PUT", f"/id-tags/{tag}", {"status": "Maybe"})).status_code == 422
            started = await app.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1})
            assert started.status_code == 200, started.text
            (refused,) = await app.wait_for(lambda m: m.get("event") == "session_error")
            assert refused["data"]["error"] == "Not authorized"
            await app.wait_for(lambda m: m["type"] == "active_session_update" and not m["has_active_session"],
                               count=2)  # on connect, and once the charger ended it

            await control.ok("PUT", f"/id-tags/{tag}", {"status": "Accepted"})
            await start_when_free(app)
            await app.wait_for(lambda m: m.get("event") == "meter_value")
            assert len([m for m in app.received if m.get("event") == "session_error"]) == 1

    asyncio.run(main())
