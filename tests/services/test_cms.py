"""The CMS stub over real sockets: OCPP 1.6J frames in, contract-valid events and REST answers out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cms_testkit import NETWORK, EventReceiver, closing, eventually, run, settings
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargetwin.contracts import Validator
from chargetwin.twin.clock import SimClock
from chargetwin.twin.services.cms import Cms, CmsStartError
from chargetwin.twin.services.settings import Settings

CLOCK_START = "2025-01-29T16:00:00.000Z"
EVENTS = "backend:/internal/cms/events"


class ScriptedChargePoint(ChargePoint):  # type: ignore[misc]
    """A charge point whose answers the test chooses ("Accepted", "Rejected")."""

    answer = "Accepted"
    remote_starts: list[dict[str, Any]]

    @on(Action.remote_start_transaction)
    def on_remote_start(self, **request: Any) -> call_result.RemoteStartTransaction:
        self.remote_starts.append(request)
        return call_result.RemoteStartTransaction(status=self.answer)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, **_: Any) -> call_result.RemoteStopTransaction:
        return call_result.RemoteStopTransaction(status=self.answer)

    @on(Action.change_availability)
    def on_change_availability(self, **_: Any) -> call_result.ChangeAvailability:
        return call_result.ChangeAvailability(status=self.answer)


@asynccontextmanager
async def charge_point(cms: Cms, identity: str = "CP001") -> AsyncIterator[ScriptedChargePoint]:
    async with connect(f"{cms.ocpp_url}/{identity}", subprotocols=["ocpp1.6"]) as websocket:  # type: ignore[list-item]
        cp = ScriptedChargePoint(identity, websocket)
        cp.remote_starts = []
        reader = asyncio.ensure_future(cp.start())
        try:
            yield cp
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


@dataclass
class Stack:
    cms: Cms
    receiver: EventReceiver
    http: httpx.AsyncClient
    frames: list[tuple[str, str, list[Any]]] = field(default_factory=list)

    async def post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        answer = await self.http.post(f"{self.cms.rest_url}{path}", json=body)
        return answer.status_code, answer.json()


@asynccontextmanager
async def stack(**changes: Any) -> AsyncIterator[Stack]:
    receiver = EventReceiver()
    await receiver.start()
    id_tags = changes.pop("id_tags", None)
    config: Settings = settings(backend_port=receiver.port, **changes)
    frames: list[tuple[str, str, list[Any]]] = []
    clock = SimClock(datetime(2025, 1, 29, 16, 0, tzinfo=UTC), monotonic=lambda: 0.0)  # always 16:00Z
    cms = Cms(settings=config, stations=NETWORK, clock=clock, heartbeat_interval=42, id_tags=id_tags,
              ocpp_tap=lambda cp, direction, frame: frames.append((cp, direction, json.loads(frame))))
    await cms.start()
    http = httpx.AsyncClient(timeout=10)
    try:
        yield Stack(cms, receiver, http, frames)
    finally:
        await closing(http.aclose, cms.stop, receiver.stop)


def assert_valid(validator: Validator, events: list[dict[str, Any]]) -> None:
    for event in events:
        assert validator.validate(event, channel=EVENTS, direction="request") == [], event


def assert_rest(validator: Validator, path: str, status: int, body: dict[str, Any]) -> None:
    found = validator.validate(body, channel=f"cms:{path}", direction="response", status=status)
    assert found == [], (status, body, found)


def status_notification(connector_id: int, status: str, error_code: str = "NoError", **extra: Any) -> Any:
    return call.StatusNotification(connector_id=connector_id, error_code=error_code, status=status, **extra)


# --- OCPP in, events out -------------------------------------------------------------


def test_boot_heartbeat_and_status_notifications_become_events(validator: Validator) -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            boot = await cp.call(call.BootNotification(charge_point_model="m", charge_point_vendor="v"))
            assert boot.status == "Accepted" and boot.interval == 42 and boot.current_time == CLOCK_START
            assert (await cp.call(call.Heartbeat())).current_time == CLOCK_START
            await cp.call(status_notification(0, "Available"))
            await cp.call(status_notification(1, "Preparing", timestamp="2025-01-29T18:00:00+02:00"))
            await cp.call(status_notification(2, "Faulted", "GroundFailure", info="earth leak"))
            events = await s.receiver.wait_for(3)
            assert_valid(validator, events)
            assert [(e["data"]["connector_id"], e["data"]["status"], e["data"]["error_code"]) for e in events] == [
                (0, "Available", None), (1, "Preparing", None), (2, "Faulted", "GroundFailure")]
            assert {e["charger_id"] for e in events} == {"CP001"}
            assert events[0]["data"]["timestamp"] == CLOCK_START  # stamped by the CMS's clock
            assert events[1]["data"]["timestamp"] == "2025-01-29T16:00:00.000Z"  # the charge point's, in UTC
            assert events[2]["data"]["info"] == "earth leak"
            calls = [frame[2] for cp_id, direction, frame in s.frames if direction == "receive" and frame[0] == 2]
            assert [c for c in calls[:2]] == ["BootNotification", "Heartbeat"]
    run(main())


def test_a_transaction_becomes_session_events(validator: Validator) -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID123", meter_start=1000,
                                                          timestamp="2025-01-29T12:00:00Z"))
            assert started.id_tag_info["status"] == "Accepted"
            other = await cp.call(call.StartTransaction(connector_id=2, id_tag="RFID456", meter_start=7,
                                                        timestamp="2025-01-29T12:00:01Z"))
            assert other.transaction_id > started.transaction_id
            tx = started.transaction_id
            three_phase = [
                {"value": "43500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "22.0", "measurand": "Power.Active.Import", "unit": "kW"},
                *({"value": "230.0", "measurand": "Voltage", "phase": f"L{n}-N", "unit": "V"} for n in (1, 2, 3)),
                *({"value": "31.88", "measurand": "Current.Import", "phase": f"L{n}", "unit": "A"} for n in (1, 2, 3)),
                {"value": "50.4", "measurand": "SoC", "location": "EV", "unit": "Percent"},
            ]
            await cp.call(call.MeterValues(connector_id=1, transaction_id=tx, meter_value=[
                {"timestamp": "2025-01-29T12:05:00Z", "sampled_value": three_phase},
                {"timestamp": "2025-01-29T12:06:00Z", "sampled_value": [{"value": "43.6", "unit": "kWh"}]}]))
            await cp.call(status_notification(1, "SuspendedEV"))
            await cp.call(call.StopTransaction(meter_stop=15500, timestamp="2025-01-29T13:00:00Z",
                                               transaction_id=tx, reason="Remote"))
            await cp.call(call.StopTransaction(meter_stop=9, timestamp="2025-01-29T13:00:00Z",
                                               transaction_id=other.transaction_id))
            events = await s.receiver.wait_for(7)
            assert_valid(validator, events)
            assert [e["event"] for e in events] == ["session_started", "session_started", "meter_value",
                                                    "meter_value", "connector_status_changed", "session_stopped",
                                                    "session_stopped"]
            first = events[0]
            assert first["transaction_id"] == tx and first["data"] == {
                "connector_id": 1, "id_tag": "RFID123", "meter_start": 1000, "start_time": "2025-01-29T12:00:00.000Z"}
            meter = events[2]["data"]
            assert meter == {"connector_id": 1, "energy_delivered": 42.5, "power": 22.0, "voltage": 230.0,
                             "current": 95.64, "meter_value": 42500, "charge_percentage": 50,
                             "time_remaining": None, "timestamp": "2025-01-29T12:05:00.000Z"}
            bare = events[3]["data"]
            assert (bare["meter_value"], bare["power"], bare["charge_percentage"]) == (42600, 0.0, None)
            assert events[4]["transaction_id"] == tx  # the transaction running on that connector
            assert events[5]["data"] == {"connector_id": 1, "id_tag": "RFID123", "meter_stop": 15500,
                                         "stop_time": "2025-01-29T13:00:00.000Z", "stop_reason": "Remote"}
            assert events[6]["data"]["stop_reason"] == "Local"  # OCPP's default when the reason is absent
            assert s.cms.central.transactions == {}
    run(main())


def test_meter_values_of_an_unknown_transaction_make_no_event() -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            await cp.call(call.MeterValues(connector_id=1, transaction_id=999, meter_value=[
                {"timestamp": "2025-01-29T12:05:00Z", "sampled_value": [{"value": "1"}]}]))
            await cp.call(status_notification(1, "Available"))
            events = await s.receiver.wait_for(1)
            assert [e["event"] for e in events] == ["connector_status_changed"]
    run(main())


def test_unknown_charge_points_and_clients_without_ocpp16_are_refused() -> None:
    async def main() -> None:
        async with stack() as s:
            for path, subprotocols, status in (("/NOPE", ["ocpp1.6"], 404), ("/CP001/x", ["ocpp1.6"], 404)):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"{s.cms.ocpp_url}{path}", subprotocols=subprotocols):  # type: ignore[arg-type]
                        pass
                assert refused.value.response.status_code == status, path
            assert not s.cms.connected("NOPE")
            # OCPP-J 1.6 section 3.1.2: without ocpp1.6, the handshake completes with no subprotocol, then closes
            for offered in (None, ["ocpp2.0.1"]):
                async with connect(f"{s.cms.ocpp_url}/CP001", subprotocols=offered) as socket:  # type: ignore[arg-type]
                    assert socket.subprotocol is None
                    with pytest.raises(ConnectionClosed):
                        await asyncio.wait_for(socket.recv(), 5)
                    assert socket.close_code == 1002 and "ocpp1.6" in (socket.close_reason or "")
            assert not s.cms.connected("CP001")
    run(main())


def test_a_new_connection_replaces_the_old_one() -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as first:
            assert s.cms.ocpp is not None
            await eventually(lambda: s.cms.connected("CP001"))
            links = s.cms.ocpp.links
            old = links["CP001"]
            async with charge_point(s.cms) as second:
                await eventually(lambda: links.get("CP001") not in (None, old), what="the second connection to win")
                await eventually(lambda: first._connection.close_code == 1000, what="the first to close")
                await second.call(status_notification(1, "Available"))
                await s.receiver.wait_for(1)
    run(main())


# --- REST ----------------------------------------------------------------------------

START, STOP = "/api/charging/remote_start", "/api/charging/stop"


def test_remote_start_and_stop(validator: Validator) -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            status, body = await s.post(START, {"charger_id": "CP001", "id_tag": "RFID123", "connector_id": 2})
            assert status == 200, body
            assert_rest(validator, START, status, body)
            assert body["data"] == {"charger_id": "CP001", "connector_id": 2, "status": "Accepted",
                                    "transaction_id": None}
            assert cp.remote_starts == [{"id_tag": "RFID123", "connector_id": 2}]
            status, body = await s.post(START, {"charger_id": "CP001", "id_tag": "RFID123"})
            assert status == 200 and body["data"]["connector_id"] == 1 and cp.remote_starts[-1]["connector_id"] == 1
            tx = (await cp.call(call.StartTransaction(connector_id=2, id_tag="RFID123", meter_start=0,
                                                      timestamp="2025-01-29T12:00:00Z"))).transaction_id
            for request in ({"charger_id": "CP001"}, {"charger_id": "CP001", "connector_id": 2},
                            {"charger_id": "CP001", "transaction_id": tx}):
                status, body = await s.post(STOP, request)
                assert status == 200, body
                assert_rest(validator, STOP, status, body)
                assert body["data"] == {"charger_id": "CP001", "connector_id": 2, "transaction_id": tx,
                                        "status": "Accepted"}
    run(main())


def test_rest_errors_use_the_envelope_and_their_status(validator: Validator) -> None:
    async def main() -> None:
        async with stack(cms_timeout_s=0.3) as s, charge_point(s.cms) as cp:
            cases: list[tuple[str, Any, int, str]] = [
                (START, {"charger_id": "NOPE", "id_tag": "T"}, 404, "Unknown charger"),
                (START, {"charger_id": "CP001", "id_tag": "T", "connector_id": 3}, 404, "Unknown connector"),
                (START, {"charger_id": "CP002", "id_tag": "T"}, 503, "Charger offline"),
                (START, {"charger_id": "CP001"}, 422, "Invalid request"),
                (START, {"charger_id": "CP001", "id_tag": "T", "extra": 1}, 422, "Invalid request"),
                (START, {"charger_id": "CP001", "id_tag": "T", "connector_id": "1"}, 422, "Invalid request"),
                (START, [1, 2], 422, "Invalid request"),
                (STOP, {"charger_id": "NOPE"}, 404, "Unknown charger"),
                (STOP, {"charger_id": "CP001"}, 404, "No active transaction"),
                (STOP, {"charger_id": "CP001", "connector_id": 9}, 404, "Unknown connector"),
                (STOP, {"charger_id": "CP001", "transaction_id": 77}, 404, "No active transaction"),
            ]
            for path, request, expected, title in cases:
                status, body = await s.post(path, request)
                assert (status, body["error"]) == (expected, title), (request, body)
                assert_rest(validator, path, status, body)
            answer = await s.http.post(f"{s.cms.rest_url}{START}", content=b"{not json",
                                       headers={"content-type": "application/json"})
            assert answer.status_code == 422 and answer.json()["success"] is False
            assert_rest(validator, START, 422, answer.json())

            cp.answer = "Rejected"
            status, body = await s.post(START, {"charger_id": "CP001", "id_tag": "T"})
            assert (status, body["error"]) == (409, "Rejected by charger")
            assert_rest(validator, START, status, body)
            for connector in (1, 2):
                await cp.call(call.StartTransaction(connector_id=connector, id_tag="T", meter_start=0,
                                                    timestamp="2025-01-29T12:00:00Z"))
            status, body = await s.post(STOP, {"charger_id": "CP001"})
            assert (status, body["error"]) == (409, "Ambiguous stop")
            assert_rest(validator, STOP, status, body)
            status, body = await s.post(STOP, {"charger_id": "CP001", "connector_id": 1})
            assert (status, body["error"]) == (409, "Rejected by charger")
            assert_rest(validator, STOP, status, body)

            for method, path, expected in (("GET", START, 405), ("POST", "/api/nothing", 404)):
                answer = await s.http.request(method, f"{s.cms.rest_url}{path}")
                assert answer.status_code == expected
                assert validator.check("rest/error", answer.json()) == []
    run(main())


def test_a_charge_point_that_does_not_answer_gives_504_in_time(validator: Validator) -> None:
    async def main() -> None:
        async with stack(cms_timeout_s=0.3) as s, connect(f"{s.cms.ocpp_url}/CP001",
                                                          subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
            await eventually(lambda: s.cms.connected("CP001"))
            began = time.monotonic()
            status, body = await s.post(START, {"charger_id": "CP001", "id_tag": "T"})
            assert (status, body["error"]) == (504, "Charger timeout")
            assert 0.25 < time.monotonic() - began < 2.0
            assert_rest(validator, START, status, body)
    run(main())


def test_a_charge_point_that_disconnects_instead_of_answering_gives_503(validator: Validator) -> None:
    async def main() -> None:
        async with stack(cms_timeout_s=5.0) as s:
            async with connect(f"{s.cms.ocpp_url}/CP001", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
                await eventually(lambda: s.cms.connected("CP001"))
                request = asyncio.ensure_future(s.post(START, {"charger_id": "CP001", "id_tag": "T"}))
                await ws.recv()  # the RemoteStartTransaction, never answered
                await ws.close()
                began = time.monotonic()
                status, body = await request
            assert (status, body["error"]) == (503, "Charger offline")
            assert time.monotonic() - began < 2.0
            assert_rest(validator, START, status, body)
    run(main())


def test_change_availability_is_forwarded() -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            assert await s.cms.change_availability("CP001", 0, operative=False) == "Accepted"
            cp.answer = "Scheduled"
            assert await s.cms.change_availability("CP001", 2, operative=True) == "Scheduled"
    run(main())


# --- delivery to the backend ---------------------------------------------------------


def test_events_wait_while_the_backend_is_down_and_arrive_in_order(validator: Validator) -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            await cp.call(status_notification(0, "Available"))
            await s.receiver.wait_for(1)
            await s.receiver.stop()
            statuses = ["Preparing", "Charging", "SuspendedEV", "Finishing", "Available"] * 4
            for status in statuses:
                await cp.call(status_notification(1, status))
            await asyncio.sleep(0.5)
            assert s.cms.delivery is not None and s.cms.delivery.pending == len(statuses)
            await s.receiver.start()
            events = await s.receiver.wait_for(1 + len(statuses), timeout=10)
            assert [e["data"]["status"] for e in events[1:]] == statuses
            assert_valid(validator, events)
    run(main())


def test_5xx_answers_are_retried_and_4xx_answers_dropped() -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            s.receiver.answer = 503
            await cp.call(status_notification(1, "Preparing"))
            await eventually(lambda: len(s.receiver.refused) >= 2, what="retries")
            s.receiver.answer = 202
            await s.receiver.wait_for(1)
            s.receiver.answer = 400
            await cp.call(status_notification(1, "Charging"))
            await eventually(lambda: len(s.receiver.refused) >= 3)
            s.receiver.answer = 202
            await cp.call(status_notification(1, "Finishing"))
            events = await s.receiver.wait_for(2)
            assert [e["data"]["status"] for e in events] == ["Preparing", "Finishing"]
            assert s.cms.delivery is not None and s.cms.delivery.dropped == 1
    run(main())


def test_events_carry_the_internal_token() -> None:
    async def main() -> None:
        async with stack(internal_token="wrong") as s, charge_point(s.cms) as cp:
            await cp.call(status_notification(1, "Preparing"))
            await eventually(lambda: s.cms.delivery is not None and s.cms.delivery.dropped == 1,
                             what="the 401 to drop the event")
            assert s.receiver.events == []
    run(main())


def test_a_taken_port_is_a_clear_start_error() -> None:
    async def main() -> None:
        async with stack() as s:
            for taken in ({"ocpp_port": s.cms.ocpp_port}, {"cms_port": s.cms.rest_port}):
                other = Cms(settings=settings(**taken), stations=NETWORK, clock=s.cms.clock)
                with pytest.raises(CmsStartError, match="choose another port"):
                    await other.start()
    run(main())


# --- the central system OCPP 1.6J asks for -------------------------------------------------


def test_id_tags_get_the_status_the_cms_knows() -> None:
    async def main() -> None:
        async with stack(id_tags=["TAG1", "TAG2", "TAG3"]) as s, charge_point(s.cms) as cp:
            s.cms.central.id_tags.set("TAG2", "Blocked")
            s.cms.central.id_tags.set("TAG3", "Expired")
            answers = {tag: (await cp.call(call.Authorize(id_tag=tag))).id_tag_info["status"]
                       for tag in ("TAG1", "TAG2", "TAG3", "NOBODY")}
            assert answers == {"TAG1": "Accepted", "TAG2": "Blocked", "TAG3": "Expired", "NOBODY": "Invalid"}
            started = await cp.call(call.StartTransaction(connector_id=1, id_tag="NOBODY", meter_start=0,
                                                          timestamp=CLOCK_START))
            assert started.id_tag_info["status"] == "Invalid" and started.transaction_id >= 1
            stopped = await cp.call(call.StopTransaction(meter_stop=10, timestamp=CLOCK_START, id_tag="TAG2",
                                                         transaction_id=started.transaction_id))
            assert stopped.id_tag_info["status"] == "Blocked"
            with pytest.raises(ValueError, match="Accepted"):
                s.cms.central.id_tags.set("TAG1", "Maybe")
    run(main())


def test_a_cms_told_of_no_users_accepts_every_tag() -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            assert (await cp.call(call.Authorize(id_tag="ANY"))).id_tag_info["status"] == "Accepted"
    run(main())


def test_data_transfer_and_the_firmware_and_diagnostics_notifications_are_answered() -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            answer = await cp.call(call.DataTransfer(vendor_id="com.example", message_id="x", data="{}"))
            assert answer.status == "UnknownVendorId"
            await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
            await cp.call(call.FirmwareStatusNotification(status="Installed"))
            errors = [f for _, direction, f in s.frames if direction == "send" and f[0] == 4]
            assert errors == []
    run(main())


def test_a_start_on_a_connector_the_charge_point_lacks_is_a_callerror_and_no_session() -> None:
    async def main() -> None:
        async with stack() as s, charge_point(s.cms) as cp:
            with pytest.raises(OCPPError) as refused:
                await cp.call(call.StartTransaction(connector_id=9, id_tag="TAG1", meter_start=0,
                                                    timestamp=CLOCK_START), suppress=False)
            assert refused.value.code == "PropertyConstraintViolation"
            assert "1..2" in str(refused.value.details)
            await asyncio.sleep(0.2)
            assert s.receiver.events == [] and s.cms.central.transactions == {}
    run(main())


def test_unhandled_calls_get_ocpp_j_callerror_codes() -> None:
    """OCPP-J 1.6 section 4.2.3: NotSupported for an OCPP action not supported, NotImplemented for an unknown one."""
    async def main() -> None:
        async with stack() as s, connect(f"{s.cms.ocpp_url}/CP001",
                                         subprotocols=["ocpp1.6"]) as socket:  # type: ignore[list-item]
            answers = {}
            for unique_id, action, payload in (
                    ("1", "ReserveNow", {"connectorId": 1, "expiryDate": CLOCK_START, "idTag": "T",
                                         "reservationId": 1}),
                    ("2", "MakeCoffee", {}),
                    ("3", "CancelReservation", {"reservationId": 1})):
                await socket.send(json.dumps([2, unique_id, action, payload]))
                answer = json.loads(await asyncio.wait_for(socket.recv(), 5))
                assert answer[0] == 4 and answer[1] == unique_id
                answers[action] = answer[2]
            assert answers == {"ReserveNow": "NotSupported", "MakeCoffee": "NotImplemented",
                               "CancelReservation": "NotSupported"}
    run(main())


def test_a_body_over_the_limit_is_answered_413_before_it_is_read() -> None:
    async def main() -> None:
        async with stack(max_body_bytes=1024) as s:
            status, body = await s.post("/api/charging/remote_start", {"charger_id": "CP001", "id_tag": "x" * 2000})
            assert status == 413 and body["error"] == "Body too large"
            status, _ = await s.post("/api/charging/remote_start", {"charger_id": "NOPE", "id_tag": "T"})
            assert status == 404  # still serving
    run(main())
