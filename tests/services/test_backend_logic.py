"""The backend's session logic without sockets: (state, event) -> (state, messages), and its store.

Every message the logic asks to publish, and every key it writes, is checked
against the contracts with zero violations allowed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from _backend_support import STATIONS, T0, USERS, meter_event, started_event, status_event, stopped_event
from hypothesis import given
from hypothesis import strategies as st

from chargetwin.contracts import Validator, default_validator
from chargetwin.contracts.durations import format_duration
from chargetwin.contracts.rules import METER_TOLERANCE_WH
from chargetwin.twin.model.config import ChargePointSpec, StationSpec
from chargetwin.twin.services.backend import messages as msg
from chargetwin.twin.services.backend.exceptions import ApiError, CmsError
from chargetwin.twin.services.backend.logic import (
    ACTIVE_SESSION_KEY,
    CHARGER_LIST_KEY,
    BackendLogic,
    Effects,
    fan_out,
)
from chargetwin.twin.services.backend.state import Network, Session, SessionStatus, Users
from chargetwin.twin.services.backend.store import Store
from chargetwin.twin.services.users import test_users as make_users

CONNECTED = (1, 2)
NOW = T0


def make_logic(stations: list[StationSpec] = STATIONS) -> BackendLogic:
    return BackendLogic(Network(stations), Users(USERS))


def deliveries(effects: Effects, connected: tuple[int, ...] = CONNECTED) -> list[tuple[str, dict[str, Any]]]:
    return [*effects.publish, *fan_out(effects.broadcast, connected)]


def conforming(effects: Effects, validator: Validator | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every message and key of ``effects``, asserted to conform to the contracts."""
    validator = validator or default_validator()
    sent = deliveries(effects)
    for channel, message in sent:
        found = validator.validate(message, channel=f"redis:{channel}", direction="publish")
        assert not found, (channel, message, [v.to_dict() for v in found])
    stamp = msg.rfc3339(NOW)
    for key, value in effects.keys.items():
        if value is None:
            continue
        if key == CHARGER_LIST_KEY:
            wrapped = {"type": "charger_list_update", "action": "update",
                       "data": {"chargers": json.loads(value), "timestamp": stamp}, "timestamp": stamp}
        else:
            assert key.startswith("chargetwin:active_session:")
            wrapped = {"type": "active_session_update", "has_active_session": True, "data": json.loads(value),
                       "timestamp": stamp}
        found = validator.validate(wrapped, channel="websocket", direction="receive")
        assert not found, (key, value, [v.to_dict() for v in found])
    return sent


def kinds(sent: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str | None]]:
    return [(channel, m["type"], m.get("event")) for channel, m in sent]


def available(logic: BackendLogic, *chargers: tuple[str, int]) -> None:
    for charger_id, connector_id in chargers:
        logic.handle(status_event(charger_id, connector_id, "Available"), now=NOW)


def active_session(logic: BackendLogic, user_id: int = 1, charger_id: str = "CP001", tx: int = 789,
                   connector_id: int = 1) -> Session:
    available(logic, (charger_id, connector_id))
    session, _ = logic.begin_start(user_id, charger_id, connector_id, now=NOW)
    logic.start_accepted(session, None, now=NOW)
    logic.handle(started_event(charger_id, tx, connector_id=connector_id, id_tag=session.id_tag), now=NOW)
    return session


# --- start ---------------------------------------------------------------------------------------


def test_start_checks_charger_connector_session_and_status_in_turn() -> None:
    logic = make_logic()
    with pytest.raises(ApiError) as caught:
        logic.begin_start(1, "CP999", 1, now=NOW)
    assert (caught.value.status, caught.value.error) == (404, "Charger not found")
    with pytest.raises(ApiError) as caught:
        logic.begin_start(1, "CP001", 3, now=NOW)
    assert (caught.value.status, caught.value.error) == (404, "Connector not found")
    with pytest.raises(ApiError) as caught:  # never reported: not usable yet
        logic.begin_start(1, "CP001", 1, now=NOW)
    assert (caught.value.status, caught.value.error) == (409, "Charger not available")
    logic.handle(status_event("CP001", 1, "Charging"), now=NOW)
    with pytest.raises(ApiError) as caught:
        logic.begin_start(1, "CP001", 1, now=NOW)
    assert (caught.value.status, caught.value.message) == (409, "The requested charger is currently unavailable")

    available(logic, ("CP001", 2), ("CP002", 1))
    session, effects = logic.begin_start(1, "CP001", 2, now=NOW)
    assert (session.status, session.transaction_id, session.id_tag, session.station_id) == (
        "initiated", None, "RFID001", "STATION001")
    assert list(effects.sessions) == [session.session_id] and not effects.publish
    with pytest.raises(ApiError) as caught:  # one session per user (SPEC-NOTES N-45), on any charger
        logic.begin_start(1, "CP002", 1, now=NOW)
    assert (caught.value.status, caught.value.error) == (409, "Session already active")
    with pytest.raises(ApiError) as caught:  # the connector is taken by user 1's session
        logic.begin_start(2, "CP001", 2, now=NOW)
    assert (caught.value.status, caught.value.error) == (409, "Charger not available")


def test_a_car_plugged_in_and_waiting_can_be_started() -> None:
    logic = make_logic()
    logic.handle(status_event("CP003", 1, "Preparing"), now=NOW)  # DESIGN "Data flow": plug in, then start
    session, _ = logic.begin_start(3, "CP003", 1, now=NOW)
    assert session.status == "initiated"


def test_a_refused_start_fails_the_session_and_tells_the_user() -> None:
    logic = make_logic()
    available(logic, ("CP001", 1))
    session, _ = logic.begin_start(1, "CP001", 1, now=NOW)
    effects = logic.start_rejected(session, CmsError(503, "CMS unavailable", "The CMS cannot be reached."), now=NOW)
    sent = conforming(effects)
    assert kinds(sent) == [("user:1:notifications", "response", None),
                           ("user:1:session_updates", "session_update", "session_error")]
    assert sent[0][1]["data"] == {"success": False, "error": "CMS unavailable", "message": "The CMS cannot be reached."}
    assert sent[1][1]["transaction_id"] is None
    assert effects.sessions[session.session_id].status == SessionStatus.FAILED
    logic.begin_start(1, "CP001", 1, now=NOW)  # the user may try again


@pytest.mark.parametrize(("first", "then", "abandoned"), [
    ("Preparing", "Available", True),  # the car left before the transaction (OCPP ConnectionTimeOut)
    ("Available", "Faulted", True),
    ("Preparing", "Unavailable", True),
    ("Available", "Available", False),  # a repeated notification
    ("Preparing", "Charging", False),
])
def test_a_start_the_charger_will_not_begin_frees_the_user(first: str, then: str, abandoned: bool) -> None:
    logic = make_logic()
    logic.handle(status_event("CP001", 1, first), now=NOW)
    session, _ = logic.begin_start(1, "CP001", 1, now=NOW)
    logic.start_accepted(session, None, now=NOW)
    sent = conforming(logic.handle(status_event("CP001", 1, then), now=NOW))
    errors = [m for c, m in sent if m["type"] == "session_update"]
    assert [m["event"] for m in errors] == (["session_error"] if abandoned else [])
    assert (logic.open_session_of(1) is None) == abandoned
    assert (session.status == SessionStatus.FAILED) == abandoned


def test_an_accepted_start_answers_initiated_and_pushes_a_response() -> None:
    logic = make_logic()
    available(logic, ("CP001", 1))
    session, _ = logic.begin_start(1, "CP001", 1, now=NOW)
    data, effects = logic.start_accepted(session, None, now=NOW)
    answer = {"success": True, "data": data}
    assert not default_validator().validate(answer, channel="backend:/api/charging/start", direction="response",
                                            status=200)
    assert data["transaction_id"] is None and data["status"] == "initiated"
    (delivery,) = conforming(effects)
    assert delivery[0] == "user:1:notifications" and delivery[1]["data"]["success"] is True


# --- CMS events: sessions -----------------------------------------------------------------------


def test_session_started_activates_the_initiated_session() -> None:
    logic = make_logic()
    available(logic, ("CP001", 1))
    session, _ = logic.begin_start(1, "CP001", 1, now=NOW)
    effects = logic.handle(started_event("CP001", 789, meter_start=1000), now=NOW + timedelta(seconds=5))
    sent = conforming(effects)
    assert kinds(sent) == [("user:1:session_updates", "session_update", "session_started"),
                           ("user:1:notifications", "notification", None),
                           ("user:1:session_updates", "active_session_update", None)]
    assert sent[0][1]["session_id"] == session.session_id and sent[0][1]["transaction_id"] == 789
    assert sent[0][1]["data"]["meter_start"] == 1000
    assert sent[1][1]["title"] == "Charging Started"
    assert sent[2][1]["data"]["status"] == "active"
    assert json.loads(effects.keys[ACTIVE_SESSION_KEY.format(user_id=1)] or "")["transaction_id"] == 789
    assert session.status == "active"


def test_a_start_at_the_charger_with_a_users_id_tag_opens_their_session() -> None:
    logic = make_logic()
    sent = conforming(logic.handle(started_event("CP002", 5, connector_id=2, id_tag="RFID002"), now=NOW))
    assert [c for c, _ in sent] == ["user:2:session_updates", "user:2:notifications", "user:2:session_updates"]
    assert logic.open_session_of(2) is not None
    assert conforming(logic.handle(started_event("CP002", 6, id_tag="UNKNOWN"), now=NOW)) == []


def test_meter_value_carries_everything_the_app_shows() -> None:
    logic = make_logic()
    active_session(logic)
    first = conforming(logic.handle(meter_event("CP001", 789, wh=3000, soc=40, at=600), now=NOW))
    # one SoC sample tells no capacity: a default one
    assert first[0][1]["data"]["time_remaining"] == round(0.6 * msg.DEFAULT_CAPACITY_KWH / 22.0 * 3600)
    (delivery,) = conforming(logic.handle(meter_event("CP001", 789, wh=6000, soc=50, power=22.0, at=1200),
                                          now=NOW + timedelta(seconds=1201)))
    channel, message = delivery
    data = message["data"]
    assert channel == "user:1:session_updates" and message["event"] == "meter_value"
    capacity = 3.0 / 10 * 100  # 3 kWh for 10 % of SoC: a 30 kWh battery
    remaining = round(0.5 * capacity / 22.0 * 3600)
    assert data == {
        "charger_id": "CP001", "connector_id": 1, "station_id": "STATION001", "station_name": "Cillout Mansoura",
        "station_address": "15 Tahrir Street, Downtown, Cairo", "charge_percentage": 50,
        "time_remaining": remaining, "time_remaining_display": format_duration(remaining),
        "energy_consumed": 6.0, "energy_consumed_unit": "kWh", "cost": round(6.0 * 7.41, 2), "cost_currency": "EGP",
        "charging_duration": 1200, "charging_duration_display": "20 min", "output_power": 22.0,
        "output_power_unit": "kW", "energy_delivered": 6.0, "power": 22.0, "voltage": 230.0,
        "current": round(22000 / 230, 1), "meter_value": 6000, "timestamp": "2025-01-29T12:20:00Z"}
    assert message["timestamp"] == "2025-01-29T12:20:01.000Z"  # published now; data.timestamp: measured


def test_the_first_meter_value_tells_a_time_remaining_from_a_default_capacity() -> None:
    """The first sample has one SoC: no capacity can be inferred yet, and 0 would say the battery is full."""
    logic = make_logic()
    active_session(logic)
    ((_, message),) = conforming(logic.handle(meter_event("CP001", 789, wh=100, soc=20, power=11.0, at=60),
                                              now=NOW))
    remaining = round(0.8 * msg.DEFAULT_CAPACITY_KWH / 11.0 * 3600)
    assert (message["data"]["time_remaining"], message["data"]["time_remaining_display"]) == (
        remaining, format_duration(remaining))


def test_a_gain_of_few_soc_points_infers_no_capacity() -> None:
    """Whole per cent SoC: 1 point in 0.3 kWh could be anything from 0.5 to 1.5 points; the default stays."""
    logic = make_logic()
    active_session(logic)
    logic.handle(meter_event("CP001", 789, wh=100, soc=20, at=60), now=NOW)
    ((_, message),) = conforming(logic.handle(meter_event("CP001", 789, wh=400, soc=21, at=120), now=NOW))
    assert message["data"]["time_remaining"] == round(0.79 * msg.DEFAULT_CAPACITY_KWH / 22.0 * 3600)
    ((_, message),) = conforming(logic.handle(meter_event("CP001", 789, wh=1600, soc=25, at=300), now=NOW))
    capacity = 1.5 / 5 * 100  # 1.5 kWh for 5 points: inferred
    assert message["data"]["time_remaining"] == round(0.75 * capacity / 22.0 * 3600)


def test_a_paused_car_gets_the_time_at_the_chargers_full_power() -> None:
    logic = make_logic()
    active_session(logic)  # CP001: 22 kW
    ((_, message),) = conforming(logic.handle(meter_event("CP001", 789, wh=100, soc=50, power=0.0), now=NOW))
    assert message["data"]["time_remaining"] == round(0.5 * msg.DEFAULT_CAPACITY_KWH / 22.0 * 3600)


@given(soc=st.integers(0, 100), power=st.floats(0.0, 400.0), wh=st.integers(0, 200_000))
def test_time_remaining_is_0_only_for_a_full_battery(soc: int, power: float, wh: int) -> None:
    logic = make_logic()
    active_session(logic)
    ((_, message),) = conforming(logic.handle(meter_event("CP001", 789, wh=wh, soc=soc, power=power), now=NOW))
    assert (message["data"]["time_remaining"] == 0) == (soc == 100)


def test_meter_value_keeps_a_time_remaining_the_charge_point_sent_and_its_last_soc() -> None:
    logic = make_logic()
    active_session(logic)
    (delivery,) = conforming(logic.handle(meter_event("CP001", 789, wh=100, soc=60, remaining=4000), now=NOW))
    assert (delivery[1]["data"]["time_remaining"], delivery[1]["data"]["time_remaining_display"]) == (4000, "1hr 6min")
    (delivery,) = conforming(logic.handle(meter_event("CP001", 789, wh=200, soc=None), now=NOW))
    assert delivery[1]["data"]["charge_percentage"] == 60
    assert delivery[1]["data"]["timestamp"] == msg.rfc3339(NOW)  # no sample time: the time it arrived


def test_meter_value_of_an_unknown_transaction_is_ignored() -> None:
    assert conforming(make_logic().handle(meter_event("CP001", 1, wh=10), now=NOW)) == []


@pytest.mark.parametrize(("reason", "requested", "status", "event", "title"), [
    ("Remote", True, None, "session_stopped", "Charging Stopped"),
    ("Remote", False, None, "session_stopped", "Charging Stopped"),
    ("RemoteStop", False, None, "session_stopped", "Charging Stopped"),
    ("EVDisconnected", True, None, "session_stopped", "Charging Stopped"),
    ("EVDisconnected", False, None, "session_completed", "Charging Completed"),
    ("Local", False, None, "session_completed", "Charging Completed"),
    ("Other", False, "Faulted", "session_error", "Charging Error"),
    ("PowerLoss", True, "Faulted", "session_error", "Charging Error"),
    ("EmergencyStop", False, "Faulted", "session_error", "Charging Error"),
    ("Other", False, "Charging", "session_completed", "Charging Completed"),
])
def test_how_a_session_ends_decides_the_event(reason: str, requested: bool, status: str | None, event: str,
                                               title: str) -> None:
    logic = make_logic()
    session = active_session(logic)
    if requested:
        logic.stop_accepted(session, now=NOW)
    if status is not None:
        logic.handle(status_event("CP001", 1, status, error_code="GroundFailure" if status == "Faulted" else None),
                     now=NOW)
    effects = logic.handle(stopped_event("CP001", 789, meter_stop=15500, reason=reason, at=3600),
                           now=NOW + timedelta(seconds=3601))
    sent = conforming(effects)
    assert kinds(sent) == [("user:1:session_updates", "session_update", event),
                           ("user:1:session_updates", "active_session_update", None),
                           ("user:1:notifications", "notification", None)]
    end = sent[0][1]["data"]
    if event == "session_error":
        assert end["error_code"] == "GroundFailure" and end["timestamp"] == "2025-01-29T13:00:00Z"
    else:
        assert (end["energy_delivered"], end["duration"], end["meter_stop"]) == (14.5, 3600, 15500)
    assert sent[1][1] == {"type": "active_session_update", "has_active_session": False, "data": None,
                          "timestamp": "2025-01-29T13:00:01.000Z"}
    assert sent[2][1]["title"] == title
    assert effects.keys == {ACTIVE_SESSION_KEY.format(user_id=1): None}
    assert logic.open_session_of(1) is None


def test_a_repeated_session_stopped_is_answered_the_same_way() -> None:
    logic = make_logic()
    active_session(logic)
    event = stopped_event("CP001", 789, meter_stop=2000, reason="EVDisconnected")
    first = logic.handle(event, now=NOW)
    again = logic.handle(event, now=NOW)  # the CMS retries when it got no 202
    assert again.publish == first.publish and again.keys == first.keys and not again.sessions
    assert logic.handle(stopped_event("CP001", 1234, meter_stop=1), now=NOW).publish == []


def test_a_repeated_session_started_publishes_again_without_a_second_session() -> None:
    logic = make_logic()
    session = active_session(logic)
    again = conforming(logic.handle(started_event("CP001", 789), now=NOW))
    assert [m["type"] for _, m in again] == ["session_update", "notification", "active_session_update"]
    assert list(logic.sessions) == [session.session_id]


# --- stop ---------------------------------------------------------------------------------------


def test_stop_checks_the_session() -> None:
    logic = make_logic()
    for charger_id, status, error in ((None, 404, "No active session"), ("CP999", 404, "Charger not found")):
        with pytest.raises(ApiError) as caught:
            logic.begin_stop(1, charger_id)
        assert (caught.value.status, caught.value.error) == (status, error)
    available(logic, ("CP001", 1))
    session, _ = logic.begin_start(1, "CP001", 1, now=NOW)
    with pytest.raises(ApiError) as caught:  # no transaction yet (SPEC-NOTES N-42)
        logic.begin_stop(1, None)
    assert (caught.value.status, caught.value.error) == (409, "Session not started")
    logic.handle(started_event("CP001", 789), now=NOW)
    with pytest.raises(ApiError) as caught:
        logic.begin_stop(1, "CP002")
    assert (caught.value.status, caught.value.error) == (404, "No active session")
    assert logic.begin_stop(1, None) is session and logic.begin_stop(1, "CP001") is session


def test_stop_answers_energy_and_duration_so_far() -> None:
    logic = make_logic()
    session = active_session(logic)
    logic.handle(meter_event("CP001", 789, wh=5500), now=NOW)
    data, effects = logic.stop_accepted(session, now=NOW + timedelta(seconds=3600))
    assert not default_validator().validate({"success": True, "data": data}, channel="backend:/api/charging/stop",
                                            direction="response", status=200)
    assert (data["energy_delivered"], data["duration"], data["transaction_id"]) == (5.5, 3600, 789)
    (delivery,) = conforming(effects)
    assert delivery[1]["action"] == "stop_charging" and delivery[1]["data"]["success"] is True


def test_a_stop_answered_after_stop_transaction_tells_what_session_stopped_tells() -> None:
    """Seed 1 and Example 4: the stop response and session_stopped show the same energy and duration.
    The reference CMS answers a stop once StopTransaction reached the backend: the answer then tells the
    charger's figures, not the time until the answer."""
    logic = make_logic()
    session = active_session(logic)
    logic.handle(meter_event("CP001", 789, wh=5500), now=NOW)
    sent = conforming(logic.handle(stopped_event("CP001", 789, meter_stop=7000, reason="Remote", at=180),
                                   now=NOW + timedelta(seconds=181)))
    (stopped,) = [m for _, m in sent if m.get("event") == "session_stopped"]
    data, _ = logic.stop_accepted(session, now=NOW + timedelta(seconds=184))
    assert (data["duration"], data["energy_delivered"]) == (180, 6.0)
    assert (data["duration"], data["energy_delivered"]) == (stopped["data"]["duration"],
                                                            stopped["data"]["energy_delivered"])


def test_a_refused_stop_leaves_the_session_running() -> None:
    logic = make_logic()
    session = active_session(logic)
    (delivery,) = conforming(logic.stop_rejected(session, CmsError(409, "Stop rejected", "No."), now=NOW))
    assert delivery[1]["data"] == {"success": False, "error": "Stop rejected", "message": "No."}
    assert logic.open_session_of(1) is session and not session.stop_requested


# --- CMS events: connectors and maintenance ------------------------------------------------------


def test_a_status_notification_goes_to_every_connected_user() -> None:
    logic = make_logic()
    effects = logic.handle(status_event("CP002", 2, "Available", at=1), now=NOW)
    sent = conforming(effects)
    assert kinds(sent) == [("user:1:charger_updates", "charger_update", "connector_status_changed"),
                           ("user:2:charger_updates", "charger_update", "connector_status_changed"),
                           ("user:1:charger_updates", "charger_status_update", None),
                           ("user:2:charger_updates", "charger_status_update", None)]
    update = sent[2][1]
    assert (update["station_id"], update["charger_id"], update["status"]) == ("STATION001", "CP002", "available")
    assert update["data"]["display"] == "1/4"
    assert update["data"]["connector_status"] == [{"connector_id": 1, "status": "Unavailable"},
                                                  {"connector_id": 2, "status": "Available"}]
    assert sent[0][1]["data"]["previous_status"] is None
    again = conforming(logic.handle(status_event("CP002", 2, "Charging"), now=NOW))
    assert again[0][1]["data"]["previous_status"] == "Available"
    assert again[2][1]["status"] == "in_use"
    listed = json.loads(effects.keys[CHARGER_LIST_KEY] or "")
    assert [s["station_id"] for s in listed] == ["STATION001", "STATION002"]


def test_an_error_code_adds_an_error_event_and_connector_0_is_the_charge_point() -> None:
    logic = make_logic()
    sent = conforming(logic.handle(status_event("CP003", 1, "Faulted", error_code="GroundFailure", info="earth"),
                                   now=NOW))
    assert [e for _, _, e in kinds(sent)][::2] == ["connector_status_changed", "error", None]
    assert sent[2][1]["data"] == {"connector_id": 1, "error_code": "GroundFailure", "info": "earth",
                                  "timestamp": "2025-01-29T12:00:00Z"}
    sent = conforming(logic.handle(status_event("CP003", 0, "Unavailable"), now=NOW))
    assert [e for _, _, e in kinds(sent)][::2] == ["status_changed", None]
    assert conforming(logic.handle(status_event("CP999", 1, "Available"), now=NOW)) == []
    assert conforming(logic.handle(status_event("CP003", 2, "Available"), now=NOW)) == []


def test_the_charge_points_own_status_reaches_apps_and_leaves_the_counts_alone() -> None:
    """Connector 0 (SPEC-NOTES N-05): a status_changed and, for a fault, an error; no connector of the map."""
    logic = make_logic()
    available(logic, ("CP001", 1), ("CP001", 2))
    before = conforming(logic.handle(status_event("CP001", 2, "Available"), now=NOW))[-1][1]
    sent = conforming(logic.handle(status_event("CP001", 0, "Faulted", error_code="GroundFailure"), now=NOW))
    assert kinds(sent)[::2] == [("user:1:charger_updates", "charger_update", "status_changed"),
                                ("user:1:charger_updates", "charger_update", "error"),
                                ("user:1:charger_updates", "charger_status_update", None)]
    assert sent[0][1]["data"] == {"status": "Faulted", "previous_status": None, "connector_id": 0,
                                  "timestamp": "2025-01-29T12:00:00Z"}
    assert sent[2][1]["data"]["connector_id"] == 0
    after = sent[4][1]
    assert after["data"] | {"timestamp": None} == before["data"] | {"timestamp": None}  # counts: connectors 1..n
    assert [c["connector_id"] for c in after["data"]["connector_status"]] == [1, 2]
    again = conforming(logic.handle(status_event("CP001", 0, "Available"), now=NOW))
    assert again[0][1]["data"]["previous_status"] == "Faulted"
    assert [s["available_connectors"] for s in logic.charger_list()] == [2, 0]


def test_maintenance_turns_the_station_red_and_back() -> None:
    logic = make_logic()
    available(logic, ("CP001", 1), ("CP001", 2), ("CP002", 1), ("CP002", 2))
    sent = conforming(logic.set_maintenance("STATION001", True, reason="Scheduled maintenance", now=NOW))
    assert [(m["type"], m.get("event"), m["charger_id"]) for c, m in sent if c.startswith("user:1:")] == [
        ("charger_update", "maintenance_mode", "CP001"), ("charger_update", "maintenance_mode", "CP002"),
        ("charger_status_update", None, "CP001"), ("charger_status_update", None, "CP002")]
    update = sent[4][1]
    assert (update["status"], update["data"]["available_connectors"], update["data"]["connectors_unavailable"],
            update["data"]["maintenance_reason"]) == ("unavailable", 0, 4, "Scheduled maintenance")
    with pytest.raises(ApiError) as caught:  # its connectors report Available, but the station is closed
        logic.begin_start(1, "CP001", 1, now=NOW)
    assert (caught.value.status, caught.value.error) == (409, "Charger not available")
    sent = conforming(logic.set_maintenance("STATION001", False, now=NOW))
    assert sent[4][1]["status"] == "available" and "maintenance_reason" not in sent[4][1]["data"]


# --- rules that hold for all inputs -------------------------------------------------------------

statuses = st.sampled_from(["Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing",
                            "Reserved", "Unavailable", "Faulted", "Occupied"])


@st.composite
def networks(draw: st.DrawFn) -> tuple[list[StationSpec], dict[tuple[str, int], str], set[str]]:
    shape = draw(st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1, max_size=3))
    stations, reported, n = [], {}, 0
    for i, points in enumerate(shape, start=1):
        cps = []
        for connectors in points:
            n += 1
            cps.append(ChargePointSpec(f"CP{n:03d}", "AC", 22.0, connectors))
            for c in range(1, connectors + 1):
                status = draw(st.none() | statuses)  # None: never reported
                if status is not None:
                    reported[f"CP{n:03d}", c] = status
        stations.append(StationSpec(f"STATION{i:03d}", f"Station {i}", f"{i} Nile Street", 30.0, 31.0, 7.0, "EGP",
                                    tuple(cps)))
    maintenance = {s.id for s in stations if draw(st.booleans())}
    return stations, reported, maintenance


@given(networks())
def test_station_aggregates_conform_for_every_mix_of_statuses(
        network: tuple[list[StationSpec], dict[tuple[str, int], str], set[str]]) -> None:
    stations, reported, maintenance = network
    logic = make_logic(stations)
    for (charger_id, connector_id), status in reported.items():
        logic.handle(status_event(charger_id, connector_id, status), now=NOW)
    for station_id in maintenance:
        logic.set_maintenance(station_id, True, reason="Works", now=NOW)
    last = logic.handle(status_event(stations[0].charge_points[0].id, 1, "Available"), now=NOW)
    sent = conforming(last)
    update = sent[-1][1]
    assert update["type"] == "charger_status_update"
    under = stations[0].id in maintenance
    assert update["status"] == ("unavailable" if under else "available")
    listed = json.loads(last.keys[CHARGER_LIST_KEY] or "")
    assert sum(s["total_connectors"] for s in listed) == sum(cp.connectors for s in stations for cp in s.charge_points)
    assert listed == logic.charger_list()  # the incrementally re-encoded key is the whole list, rebuilt


@given(readings=st.lists(st.tuples(st.integers(0, 2_000_000), st.floats(0, 350, allow_nan=False),
                                   st.none() | st.integers(0, 100)), min_size=1, max_size=8),
       tariff=st.floats(0, 50, allow_nan=False), elapsed=st.lists(st.integers(0, 36_000), min_size=8, max_size=8))
def test_meter_values_conform_and_agree_for_all_readings(readings: list[tuple[int, float, int | None]],
                                                         tariff: float, elapsed: list[int]) -> None:
    stations = [StationSpec("STATION001", "S", "A street", 30.0, 31.0, tariff, "EGP",
                            (ChargePointSpec("CP001", "DC", 350.0, 1),))]
    logic = make_logic(stations)
    active_session(logic)
    at = 0
    for (wh, power, soc), step in zip(sorted(readings, key=lambda r: r[0]), elapsed, strict=False):
        at += step
        ((_, message),) = conforming(logic.handle(meter_event("CP001", 789, wh=wh, power=power, soc=soc, at=at),
                                                  now=NOW + timedelta(seconds=at)))
        data = message["data"]
        assert abs(data["meter_value"] - data["energy_consumed"] * 1000) <= METER_TOLERANCE_WH
        assert data["cost"] == round(data["energy_consumed"] * tariff, 2)
        assert data["charging_duration"] == at
        assert data["energy_delivered"] == data["energy_consumed"] and data["power"] == data["output_power"]


@given(connected=st.sets(st.integers(1, 50), max_size=10), count=st.integers(0, 4))
def test_charger_messages_reach_every_connected_user_once_and_nobody_else(connected: set[int], count: int) -> None:
    messages = [{"n": i} for i in range(count)]
    sent = fan_out(messages, list(connected) + list(connected))
    assert len(sent) == count * len(connected)
    assert {c for c, _ in sent} <= {f"user:{u}:charger_updates" for u in connected}
    for user in connected:
        assert [m for c, m in sent if c == f"user:{user}:charger_updates"] == messages


@given(soc=st.integers(0, 100), power=st.floats(0.1, 400), capacity=st.floats(1, 200))
def test_time_remaining_shrinks_as_the_battery_fills(soc: int, power: float, capacity: float) -> None:
    now = msg.estimate_time_remaining(soc=soc, power_kw=power, capacity_kwh=capacity)
    later = msg.estimate_time_remaining(soc=min(100, soc + 1), power_kw=power, capacity_kwh=capacity)
    assert now is not None and later is not None and 0 <= later <= now
    assert (now == 0) == (soc == 100)  # a full battery, and only a full one, has nothing to go
    assert msg.estimate_time_remaining(soc=None, power_kw=power, capacity_kwh=capacity) is None
    assert msg.estimate_time_remaining(soc=soc, power_kw=0, capacity_kwh=capacity) == (0 if soc == 100 else None)


# --- the store and a restart ---------------------------------------------------------------------


def test_the_store_gives_back_what_a_restarted_logic_needs(tmp_path: Path) -> None:
    path = tmp_path / "backend.sqlite3"
    store = Store(path)
    store.sync_users(USERS)
    logic = make_logic()
    for effects in (logic.handle(status_event("CP001", 1, "Available"), now=NOW),
                    logic.handle(status_event("CP003", 1, "Faulted", error_code="GroundFailure"), now=NOW),
                    logic.set_maintenance("STATION002", True, reason="Works", now=NOW)):
        store.save(effects)
    session, effects = logic.begin_start(1, "CP001", 1, now=NOW)
    store.save(effects)
    store.save(logic.handle(started_event("CP001", 789, meter_start=1000), now=NOW))
    store.save(logic.handle(meter_event("CP001", 789, wh=3000, soc=40, at=600), now=NOW))
    store.save(logic.handle(started_event("CP002", 790, id_tag="RFID002"), now=NOW))
    store.save(logic.handle(stopped_event("CP002", 790, meter_stop=1500, reason="Local"), now=NOW))
    store.close()

    store = Store(path)
    stored = store.load()
    again = BackendLogic(Network(STATIONS), Users(USERS), sessions=stored.sessions, connectors=stored.connectors,
                         maintenance=stored.maintenance, next_session_id=stored.next_session_id)
    assert [s.session_id for s in stored.sessions] == [session.session_id]  # ended sessions stay in the file
    assert stored.sessions[0] == session and stored.next_session_id == 3
    assert again.status_of("CP003", 1) == "Faulted" and again.maintenance == {"STATION002": "Works"}
    ((_, message),) = conforming(again.handle(meter_event("CP001", 789, wh=6000, soc=50, at=1200), now=NOW))
    assert (message["session_id"], message["data"]["charging_duration"]) == (session.session_id, 1200)
    assert message["data"]["time_remaining"] > 0  # the first SoC sample survived
    closed = store.session(2)
    assert closed is not None and closed.status == "completed"
    assert store.check_password("USER1@chargetwin.example", "chargetwin") == 1
    assert store.check_password("user1@chargetwin.example", "wrong") is None
    assert store.check_password("nobody@chargetwin.example", "chargetwin") is None
    store.sync_users(make_users([(9, "RFID009")]))
    assert store.check_password("user1@chargetwin.example", "chargetwin") is None
    store.close()


# --- a restarted world ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Available", "Preparing"])
def test_a_charger_that_reports_free_a_connector_with_an_active_session_ends_it(status: str) -> None:
    logic = make_logic()
    session = active_session(logic)
    logic.handle(meter_event("CP001", 789, wh=4200, soc=40, at=600), now=NOW)
    sent = conforming(logic.handle(status_event("CP001", 1, status), now=NOW + timedelta(minutes=20)))
    mine = [(m["type"], m.get("event"), m.get("has_active_session")) for c, m in sent if c.startswith("user:1:")
            and not c.endswith("charger_updates")]
    assert mine == [("session_update", "session_error", None), ("active_session_update", None, False),
                    ("notification", None, None)]
    error = next(m for _, m in sent if m.get("event") == "session_error")
    assert error["data"]["error"] == "Session lost" and status in error["data"]["message"]
    assert session.status == SessionStatus.ERROR and session.energy_kwh == 4.2  # billed to the last meter value
    assert logic.open_session_of(1) is None
    again, _ = logic.begin_start(1, "CP001", 1, now=NOW)  # the user can charge again
    assert again.session_id != session.session_id


@pytest.mark.parametrize("status", ["Charging", "SuspendedEV", "Finishing", "Unavailable", "Faulted"])
def test_a_status_that_can_carry_a_transaction_leaves_the_session_alone(status: str) -> None:
    logic = make_logic()
    session = active_session(logic)
    sent = conforming(logic.handle(status_event("CP001", 1, status), now=NOW))
    assert session.status == SessionStatus.ACTIVE and logic.open_session_of(1) is session
    assert not [m for _, m in sent if m.get("event") == "session_error"]


def test_reconcile_fails_a_start_left_half_done_and_ends_sessions_on_chargers_gone() -> None:
    logic = make_logic()
    gone = active_session(logic, user_id=1, charger_id="CP001", tx=1)
    available(logic, ("CP002", 1))
    half, _ = logic.begin_start(2, "CP002", 1, now=NOW)
    kept = [s for s in STATIONS if all(cp.id != "CP001" for cp in s.charge_points)]
    restarted = BackendLogic(Network(kept), Users(USERS), sessions=[gone, half], next_session_id=3)
    sent = conforming(restarted.reconcile(now=NOW))
    assert {(c, m.get("event")) for c, m in sent if m["type"] == "session_update"} == {
        ("user:1:session_updates", "session_error"), ("user:2:session_updates", "session_error")}
    assert (gone.status, half.status) == (SessionStatus.ERROR, SessionStatus.FAILED)
    assert restarted.open_session_of(1) is None and restarted.open_session_of(2) is None


def test_a_session_the_cms_did_not_authorize_ends_as_an_error() -> None:
    logic = make_logic()
    session = active_session(logic)
    sent = conforming(logic.handle(stopped_event("CP001", 789, meter_stop=1000, reason="DeAuthorized"), now=NOW))
    (error,) = [m for _, m in sent if m.get("event") == "session_error"]
    assert error["data"]["error"] == "Not authorized" and session.status == SessionStatus.ERROR
    assert logic.open_session_of(1) is None
