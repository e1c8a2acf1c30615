"""Simulated charge points of a world model against the real CMS, over real OCPP 1.6J WebSockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from cms_testkit import START, STATION, EventReceiver, closing, eventually, run, scenario, settings

from chargetwin.contracts import Validator
from chargetwin.twin.clock import SimClock
from chargetwin.twin.model import events as ev
from chargetwin.twin.model.config import ChargePointSpec, StationSpec
from chargetwin.twin.model.world import World
from chargetwin.twin.runner import ModelRunner
from chargetwin.twin.services.chargepoints import ChargePointFleet
from chargetwin.twin.services.cms import Cms
from chargetwin.twin.services.settings import Settings
from chargetwin.twin.services.timestamps import format_timestamp

EVENTS = "backend:/internal/cms/events"
REMOTE_START, STOP = "/api/charging/remote_start", "/api/charging/stop"
HEARTBEAT = 30


@dataclass
class Twin:
    world: World
    clock: SimClock
    cms: Cms
    fleet: ChargePointFleet
    receiver: EventReceiver
    http: httpx.AsyncClient
    settings: Settings
    model: list[ev.Event] = field(default_factory=list)
    frames: list[tuple[str, str, list[Any]]] = field(default_factory=list)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        answer = await self.http.post(f"{self.cms.rest_url}{path}", json=body)
        return answer.status_code, answer.json()

    def statuses(self, charger_id: str, connector_id: int) -> list[str]:
        return [e["data"]["status"] for e in self.receiver.of("connector_status_changed")
                if e["charger_id"] == charger_id and e["data"]["connector_id"] == connector_id]

    async def settled(self) -> None:
        """Every queued OCPP request answered and every event delivered."""
        await eventually(lambda: self.fleet.pending == 0 and self.cms.delivery is not None
                         and self.cms.delivery.pending == 0, what="the fleet and the CMS to be idle")


def cms_for(twin_settings: Settings, world: World, clock: SimClock, frames: list[tuple[str, str, list[Any]]],
            stations: list[StationSpec] | None = None, heartbeat: int = HEARTBEAT) -> Cms:
    return Cms(settings=twin_settings, stations=stations or [s.spec for s in world.network.stations], clock=clock,
               heartbeat_interval=heartbeat,
               ocpp_tap=lambda cp, direction, frame: frames.append((cp, direction, json.loads(frame))))


@asynccontextmanager
async def twin(*, speed: float = 60.0, cms_stations: list[StationSpec] | None = None, heartbeat: int = HEARTBEAT,
               **changes: Any) -> AsyncIterator[Twin]:
    world = World(scenario())
    clock = SimClock(START, speed=speed)
    model: list[ev.Event] = []
    world.subscribe(model.append)
    receiver = EventReceiver()
    await receiver.start()
    frames: list[tuple[str, str, list[Any]]] = []
    cms = cms_for(settings(backend_port=receiver.port, **changes), world, clock, frames, cms_stations, heartbeat)
    await cms.start()
    fleet_settings = replace(cms.settings, ocpp_port=cms.ocpp_port)
    fleet = ChargePointFleet(world, fleet_settings, clock, reconnect_max=0.5)
    await fleet.start()
    http = httpx.AsyncClient(timeout=10)
    state = Twin(world, clock, cms, fleet, receiver, http, fleet_settings, model, frames)
    try:
        await fleet.wait_ready(timeout=5)
        yield state
    finally:
        await closing(http.aclose, fleet.stop, lambda: state.cms.stop(), receiver.stop)


def assert_valid(validator: Validator, events: list[dict[str, Any]]) -> None:
    for event in events:
        assert validator.validate(event, channel=EVENTS, direction="request") == [], event


def test_boot_sends_every_connector_status(validator: Validator) -> None:
    async def main() -> None:
        async with twin() as t:
            events = await t.receiver.wait_for(5)
            assert_valid(validator, events)
            seen = sorted((e["charger_id"], e["data"]["connector_id"], e["data"]["status"]) for e in events)
            assert seen == [("CP001", 0, "Available"), ("CP001", 1, "Available"), ("CP001", 2, "Available"),
                            ("CP002", 0, "Available"), ("CP002", 1, "Available")]
            assert {e["data"]["timestamp"] for e in events} == {format_timestamp(t.clock.at(0))}
            for cp in t.fleet.charge_points.values():
                assert (cp.boots, cp.heartbeat_interval) == (1, HEARTBEAT)
    run(main())


def test_heartbeats_come_at_the_interval_the_cms_gives() -> None:
    async def main() -> None:
        async with twin(heartbeat=1) as t:
            def heartbeats() -> int:
                return sum(1 for cp, way, f in t.frames if way == "receive" and f[0] == 2 and f[2] == "Heartbeat")
            await asyncio.sleep(0.5)
            assert heartbeats() == 0
            await eventually(lambda: heartbeats() >= 2, timeout=3, what="a heartbeat of each charge point")
    run(main())


def test_model_sessions_become_consistent_session_events(validator: Validator) -> None:
    """AC and DC sessions of the model, stepped in time by the ModelRunner, end to end."""
    async def main() -> None:
        async with twin(speed=1200.0) as t:
            runner = ModelRunner(t.world, t.clock, tick=0.02)
            runner.start()
            try:
                assert t.world.remote_start("CP001", 1, "TAG00000001")
                assert t.world.remote_start("CP002", 1, "TAG00000002")
                await eventually(lambda: t.world.env.now >= 600, what="ten simulated minutes")
                assert t.world.remote_stop("CP001", 1) and t.world.remote_stop("CP002", 1)
                await eventually(lambda: t.world.env.now >= 700, what="the cars to unplug")
            finally:
                await runner.stop()
            await t.settled()
        check_session_events(validator, t)
    run(main())


def check_session_events(validator: Validator, t: Twin) -> None:
    events = t.receiver.events
    assert_valid(validator, events)
    for charger_id in ("CP001", "CP002"):
        assert t.statuses(charger_id, 1) == ["Available", "Preparing", "Charging", "Finishing", "Available"]
        started = next(e for e in t.model if isinstance(e, ev.TransactionStarted) and e.charge_point_id == charger_id)
        stopped = next(e for e in t.model if isinstance(e, ev.TransactionStopped) and e.charge_point_id == charger_id)
        samples = [e for e in t.model if isinstance(e, ev.MeterSample) and e.charge_point_id == charger_id]
        mine = [e for e in events if e["charger_id"] == charger_id and e["event"] != "connector_status_changed"]
        assert [e["event"] for e in mine] == ["session_started"] + ["meter_value"] * len(samples) + ["session_stopped"]
        assert len(samples) >= 9
        transaction_id = mine[0]["transaction_id"]
        assert {e["transaction_id"] for e in mine} == {transaction_id}
        assert mine[0]["data"] == {"connector_id": 1, "id_tag": started.id_tag, "meter_start": started.meter_start,
                                   "start_time": format_timestamp(t.clock.at(started.t))}
        for sample, event in zip(samples, mine[1:-1], strict=True):
            data = event["data"]
            assert data["meter_value"] == sample.energy_wh
            assert abs(data["meter_value"] - round(data["energy_delivered"] * 1000)) <= 5
            assert abs(data["power"] - sample.power_kw) < 0.001 and data["power"] > 0
            assert abs(data["voltage"] - sample.voltage) < 0.1
            assert abs(data["voltage"] * data["current"] - data["power"] * 1000) <= 0.01 * data["power"] * 1000
            assert abs(data["charge_percentage"] - sample.soc * 100) <= 1
            assert data["timestamp"] == format_timestamp(t.clock.at(sample.t))
        readings = [e["data"]["meter_value"] for e in mine[1:-1]]
        assert readings == sorted(readings) and readings[-1] > 0
        assert mine[-1]["data"] == {"connector_id": 1, "id_tag": started.id_tag, "meter_stop": stopped.meter_stop,
                                    "stop_time": format_timestamp(t.clock.at(stopped.t)), "stop_reason": "Remote"}
    ac = next(e for e in events if e["event"] == "meter_value" and e["charger_id"] == "CP001")["data"]
    dc = next(e for e in events if e["event"] == "meter_value" and e["charger_id"] == "CP002")["data"]
    assert (ac["voltage"], ac["power"]) == (230.0, 11.0)  # 3 x 230 V x 15.94 A: the car's 11 kW on board charger
    assert 350 <= dc["voltage"] <= 450 and dc["power"] == 60.0


def test_rest_remote_start_and_stop_go_through_the_model(validator: Validator) -> None:
    async def main() -> None:
        async with twin() as t:
            status, body = await t.post(REMOTE_START, {"charger_id": "CP001", "connector_id": 2,
                                                       "id_tag": "TAG00000003"})
            assert status == 200, body
            assert validator.validate(body, channel=f"cms:{REMOTE_START}", direction="response", status=status) == []
            session = t.world.connector("CP001", 2).session
            assert session is not None and session.driver.id_tag == "TAG00000003"
            started = (await t.receiver.wait_for(1, "session_started"))[0]
            status, body = await t.post(STOP, {"charger_id": "CP001"})
            assert status == 200, body
            assert validator.validate(body, channel=f"cms:{STOP}", direction="response", status=status) == []
            assert body["data"]["transaction_id"] == started["transaction_id"]
            stopped = (await t.receiver.wait_for(1, "session_stopped"))[0]
            assert stopped["transaction_id"] == started["transaction_id"]
            assert stopped["data"]["stop_reason"] == "Remote"
            status, body = await t.post(STOP, {"charger_id": "CP001"})
            assert status == 404, body  # nothing runs any more
            assert_valid(validator, t.receiver.events)
            assert_answer_precedes_its_consequences(t.frames)
    run(main())


def test_a_stop_is_answered_once_its_stop_transaction_reached_the_backend(validator: Validator) -> None:
    """So that the backend's answer to the app tells the charger's final energy and duration, as session_stopped
    does (seed 1, Example 4), even when the backend is slow to take events."""
    async def main() -> None:
        async with twin() as t:
            status, body = await t.post(REMOTE_START, {"charger_id": "CP001", "id_tag": "TAG00000003"})
            assert status == 200, body
            (started,) = await t.receiver.wait_for(1, "session_started")
            t.receiver.delay = 0.3
            status, body = await t.post(STOP, {"charger_id": "CP001"})
            assert status == 200, body
            (stopped,) = t.receiver.of("session_stopped")
            assert stopped["transaction_id"] == body["data"]["transaction_id"] == started["transaction_id"]
            assert_valid(validator, t.receiver.events)
    run(main())


def assert_answer_precedes_its_consequences(frames: list[tuple[str, str, list[Any]]]) -> None:
    """OCPP 1.6: the RemoteStartTransaction.conf reaches the CMS before the requests the start set off."""
    def index(direction: str, predicate: Any) -> int:
        return next(i for i, (_, way, frame) in enumerate(frames) if way == direction and predicate(frame))

    request = index("send", lambda f: f[0] == 2 and f[2] == "RemoteStartTransaction")
    answer = index("receive", lambda f: f[0] == 3 and f[1] == frames[request][2][1])
    preparing = index("receive", lambda f: f[0] == 2 and f[2] == "StatusNotification"
                      and f[3]["status"] == "Preparing")
    start = index("receive", lambda f: f[0] == 2 and f[2] == "StartTransaction")
    assert request < answer < preparing < start


def test_the_charge_point_rejects_what_the_model_cannot_do(validator: Validator) -> None:
    bigger = replace(STATION, charge_points=(ChargePointSpec("CP001", "AC", 22.0, 3),
                                             ChargePointSpec("CP002", "DC", 60.0, 1),
                                             ChargePointSpec("CP009", "AC", 22.0, 1)))

    async def main() -> None:
        async with twin(cms_stations=[bigger]) as t:
            for request, expected in (
                ({"charger_id": "CP001", "id_tag": "NOBODY"}, 409),  # nobody waits there; not a user of the fleet
                ({"charger_id": "CP001", "id_tag": "TAG00000001", "connector_id": 3}, 409),  # the model has 2
                ({"charger_id": "CP009", "id_tag": "TAG00000001"}, 503),  # no such simulated charge point
            ):
                status, body = await t.post(REMOTE_START, request)
                assert status == expected, body
                assert validator.validate(body, channel=f"cms:{REMOTE_START}", direction="response",
                                          status=status) == []
            assert t.world.sessions == {}
    run(main())


def test_change_availability_reaches_the_model(validator: Validator) -> None:
    async def main() -> None:
        async with twin() as t:
            assert await t.cms.change_availability("CP001", 2, operative=False) == "Accepted"
            await eventually(lambda: t.statuses("CP001", 2)[-1:] == ["Unavailable"])
            assert await t.cms.change_availability("CP001", 2, operative=True) == "Accepted"
            await eventually(lambda: t.statuses("CP001", 2)[-1:] == ["Available"])
            assert t.world.remote_start("CP001", 1, "TAG00000001")
            assert await t.cms.change_availability("CP001", 1, operative=False) == "Scheduled"
            assert_valid(validator, t.receiver.events)
    run(main())


def test_the_charge_point_reports_its_own_status_on_connector_0(validator: Validator) -> None:
    """OCPP 1.6 StatusNotification connectorId 0: at boot, then whenever the charge point as a whole faults,
    recovers or becomes unavailable (SPEC-NOTES N-05: the backend's ``status_changed``)."""
    async def main() -> None:
        async with twin() as t:
            await t.receiver.wait_for(5)
            t.world.fault("CP002", "GroundFailure")
            await eventually(lambda: t.statuses("CP002", 1)[-1:] == ["Faulted"])
            whole = [e for e in t.receiver.events if e["charger_id"] == "CP002" and e["data"]["connector_id"] == 0]
            assert [(e["data"]["status"], e["data"]["error_code"]) for e in whole] == [
                ("Available", None), ("Faulted", "GroundFailure")]
            order = [e["data"]["connector_id"] for e in t.receiver.events if e["charger_id"] == "CP002"]
            assert order[-2:] == [0, 1]  # the charge point, then its connector
            t.world.repair("CP002")
            await eventually(lambda: t.statuses("CP002", 0)[-1:] == ["Available"])

            assert await t.cms.change_availability("CP001", 0, operative=False) == "Accepted"
            await eventually(lambda: t.statuses("CP001", 0)[-1:] == ["Unavailable"])
            assert t.statuses("CP001", 1)[-1] == t.statuses("CP001", 2)[-1] == "Unavailable"
            assert await t.cms.change_availability("CP001", 0, operative=True) == "Accepted"
            await eventually(lambda: t.statuses("CP001", 0)[-1:] == ["Available"])
            await t.settled()
            assert t.statuses("CP001", 0) == ["Available", "Unavailable", "Available"]
            assert t.statuses("CP002", 0) == ["Available", "Faulted", "Available"]
            assert_valid(validator, t.receiver.events)
    run(main())


def test_requests_wait_while_the_cms_is_away_and_go_out_after_the_next_boot(validator: Validator) -> None:
    async def main() -> None:
        async with twin() as t:
            await t.receiver.wait_for(5)
            port = t.cms.ocpp_port
            await t.cms.stop()
            await eventually(lambda: not any(cp.ready.is_set() for cp in t.fleet.charge_points.values()))
            assert t.world.remote_start("CP001", 1, "TAG00000001")
            t.world.env.run(until=300)
            assert t.world.remote_stop("CP001", 1)
            t.world.env.run(until=310)
            assert t.fleet.pending > 5
            t.cms = cms_for(replace(t.cms.settings, ocpp_port=port), t.world, t.clock, t.frames)
            await t.cms.start()
            await t.fleet.wait_ready(timeout=5)
            await t.settled()
            assert {cp.boots for cp in t.fleet.charge_points.values()} == {2}
            after = t.receiver.events[5:]
            assert_valid(validator, after)
            mine = [e["event"] for e in after
                    if e["charger_id"] == "CP001" and e["event"] != "connector_status_changed"]
            samples = sum(isinstance(e, ev.MeterSample) for e in t.model)
            assert samples >= 4
            assert mine == ["session_started"] + ["meter_value"] * samples + ["session_stopped"]
            assert t.statuses("CP001", 1)[-1] == "Finishing"  # the status at reboot, not the ones missed
    run(main())


def test_the_fleet_keeps_trying_until_a_cms_appears() -> None:
    async def main() -> None:
        world = World(scenario())
        clock = SimClock(START)
        receiver = EventReceiver()
        await receiver.start()
        cms = Cms(settings=settings(backend_port=receiver.port), stations=[s.spec for s in world.network.stations],
                  clock=clock)
        await cms.start()
        port = cms.ocpp_port
        await cms.stop()
        fleet = ChargePointFleet(world, replace(cms.settings, ocpp_port=port), clock, reconnect_initial=0.05,
                                 reconnect_max=0.2)
        await fleet.start()
        cms = Cms(settings=settings(backend_port=receiver.port, ocpp_port=port),
                  stations=[s.spec for s in world.network.stations], clock=clock)
        try:
            await asyncio.sleep(0.3)
            assert not any(cp.ready.is_set() for cp in fleet.charge_points.values())
            await cms.start()
            await fleet.wait_ready(timeout=5)
            await receiver.wait_for(5)
        finally:
            await closing(fleet.stop, cms.stop, receiver.stop)
    run(main())


def test_the_charge_point_answers_every_call_a_central_system_may_send() -> None:
    from ocpp.v16 import call as calls

    from chargetwin.harness.conformance.ocpp import OcppPayloads
    from chargetwin.harness.trace import TraceRecord
    from chargetwin.twin.services.cms.exceptions import CommandRejectedError

    async def main() -> None:
        async with twin() as t:
            link = t.cms.ocpp

            async def ask(payload: Any) -> Any:
                return await link.call("CP001", payload)

            got = await ask(calls.GetConfiguration(key=["HeartbeatInterval", "NoSuchKey"]))
            assert got.configuration_key == [{"key": "HeartbeatInterval", "readonly": False, "value": str(HEARTBEAT)}]
            assert got.unknown_key == ["NoSuchKey"]
            every = await ask(calls.GetConfiguration())
            assert {k["key"] for k in every.configuration_key} >= {"HeartbeatInterval", "NumberOfConnectors"}
            assert (await ask(calls.ChangeConfiguration(key="MeterValueSampleInterval", value="30"))).status == \
                "Accepted"
            again = await ask(calls.GetConfiguration(key=["MeterValueSampleInterval"]))
            assert again.configuration_key[0]["value"] == "30"
            assert (await ask(calls.ChangeConfiguration(key="NumberOfConnectors", value="9"))).status == "Rejected"
            assert (await ask(calls.ChangeConfiguration(key="Nope", value="1"))).status == "NotSupported"
            statuses = len(t.statuses("CP001", 1))
            assert (await ask(calls.TriggerMessage(requested_message="StatusNotification", connector_id=1))
                    ).status == "Accepted"
            await eventually(lambda: len(t.statuses("CP001", 1)) > statuses, what="the triggered status")
            assert (await ask(calls.TriggerMessage(requested_message="DiagnosticsStatusNotification"))).status == \
                "NotImplemented"
            assert (await ask(calls.UnlockConnector(connector_id=1))).status == "Unlocked"
            assert (await ask(calls.UnlockConnector(connector_id=7))).status == "NotSupported"
            assert (await ask(calls.ClearCache())).status == "Accepted"
            boots = t.fleet.charge_points["CP001"].boots
            assert (await ask(calls.Reset(type="Soft"))).status == "Accepted"
            await eventually(lambda: t.fleet.charge_points["CP001"].boots > boots, what="a boot after the reset")
            await eventually(lambda: "CP001" in link.links, what="the charge point back")
            try:
                await ask(calls.GetLocalListVersion())
            except CommandRejectedError as error:  # OCPP-J 1.6 section 4.2.3: a known action it does not support
                assert "NotSupported" in str(error)
            else:
                raise AssertionError("an action without a handler must get a CALLERROR")
            payloads = OcppPayloads()
            for cp, direction, frame in t.frames:  # the CMS's view: what it sent, the charge point received
                payloads.on_record(TraceRecord(hop="ocpp", channel=f"ocpp:{cp}", t_sim=0, t_wall=0, message=frame,
                                               direction="receive" if direction == "send" else "send"))
            assert payloads.invalid == [] and payloads.frames > 20
            assert payloads.errors["NotSupported"] == 1
    run(main())


def test_a_frame_that_breaks_its_action_schema_is_named() -> None:
    from chargetwin.harness.conformance.ocpp import OcppPayloads
    from chargetwin.harness.trace import TraceRecord

    payloads = OcppPayloads()
    for direction, frame in (("send", [2, "a", "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                                                    "timestamp": "2026-01-01T00:00:00Z"}]),
                             ("receive", [3, "a", {"transactionId": "7", "idTagInfo": {"status": "Accepted"}}]),
                             ("receive", [3, "zzz", {}])):
        payloads.on_record(TraceRecord(hop="ocpp", channel="ocpp:CP1", direction=direction, message=frame, t_sim=0,
                                       t_wall=0))
    assert payloads.invalid_count == 2
    assert "StartTransactionResponse" in payloads.invalid[0] and "integer" in payloads.invalid[0]
    assert "a CALLRESULT to no CALL seen" in payloads.invalid[1]
