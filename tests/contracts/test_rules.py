"""Semantic rules and the status model hold for all inputs, and fail where they must."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from strategies import charger_status_updates, seconds

from chargetwin.contracts import Validator
from chargetwin.contracts.durations import display_minutes, format_duration
from chargetwin.contracts.rules import RULES, RULES_BY_SCHEMA
from chargetwin.contracts.status import display_for, station_status


@given(seconds)
def test_format_duration_is_read_back_as_the_whole_minutes(value: int) -> None:
    assert display_minutes(format_duration(value)) == value // 60


def test_format_duration_matches_the_seed() -> None:
    assert format_duration(1200) == "20 min"
    assert format_duration(8100) == "2hr 15min"
    assert format_duration(7200) == "2hr 0min"
    assert format_duration(59) == "0 min"


def test_display_minutes_refuses_other_shapes() -> None:
    for text in ("20min", "2hr 15 min", "2 hr 15min", "1hr 60min", "60 min", "0hr 5min", "", "20 mins"):
        assert display_minutes(text) is None, text


@given(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10), st.booleans())
def test_station_status_follows_ruling_3(available: int, in_use: int, unavailable: int, maintenance: bool) -> None:
    total = available + in_use + unavailable
    if total == 0:
        return
    status = station_status(available=available, total=total, unavailable=unavailable,
                            under_maintenance=maintenance)
    if maintenance or unavailable == total:
        assert status == "unavailable"
    elif available:
        assert status == "available"
    else:
        assert status == "in_use"
    shown = display_for(status, available=available, total=total)
    assert (shown is not None) == (status == "available")


@given(charger_status_updates())
def test_every_well_formed_charger_status_update_conforms(validator: Validator, message: dict[str, Any]) -> None:
    assert validator.validate(message, channel="websocket", direction="receive") == []


@given(charger_status_updates(), st.sampled_from(["available", "in_use", "unavailable"]))
def test_a_wrong_status_is_always_caught(validator: Validator, message: dict[str, Any], wrong: str) -> None:
    if wrong == message["status"]:
        return
    broken = copy.deepcopy(message)
    broken["status"] = wrong
    rules = {v.rule for v in validator.validate(broken, channel="websocket", direction="receive")}
    assert "status_follows_counts" in rules


@given(charger_status_updates(), st.integers(1, 5))
def test_a_wrong_display_is_always_caught(validator: Validator, message: dict[str, Any], shift: int) -> None:
    broken = copy.deepcopy(message)
    data = broken["data"]
    data["display"] = f"{data['available_connectors'] + shift}/{data['total_connectors'] + shift}"
    rules = {v.rule for v in validator.validate(broken, channel="websocket", direction="receive")}
    assert "display_matches_status" in rules


@given(seconds, seconds)
def test_meter_value_displays_built_from_the_seconds_conform(
        validator: Validator, remaining: int, duration: int) -> None:
    message = _meter_value(validator)
    message["data"].update(time_remaining=remaining, time_remaining_display=format_duration(remaining),
                           charging_duration=duration, charging_duration_display=format_duration(duration))
    assert validator.validate(message, channel="websocket", direction="receive") == []


@given(st.integers(0, 10_000_000))
def test_meter_value_in_wh_matches_energy_in_kwh_at_two_decimals(validator: Validator, wh: int) -> None:
    message = _meter_value(validator)
    kwh = round(wh / 1000, 2)
    message["data"].update(meter_value=wh, energy_consumed=kwh, energy_delivered=kwh)
    assert validator.validate(message, channel="websocket", direction="receive") == []
    message["data"]["meter_value"] = wh + 20
    rules = {v.rule for v in validator.validate(message, channel="websocket", direction="receive")}
    assert rules == {"meter_value_matches_energy"}


def test_an_absurd_energy_is_a_violation_not_a_crash(validator: Validator) -> None:
    event = {"event": "meter_value", "charger_id": "CP001", "transaction_id": 1,
             "data": {"energy_delivered": 1e308, "power": 1, "voltage": 1, "current": 1,
                      "meter_value": 1, "charge_percentage": None, "time_remaining": None}}
    found = validator.validate(event, channel="backend:/internal/cms/events", direction="request")
    assert [v.rule for v in found] == ["meter_value_matches_energy"]


def test_every_rule_is_used_by_some_schema_and_documented() -> None:
    used = {rule.name for rules in RULES_BY_SCHEMA.values() for rule in rules}
    assert used == set(RULES)
    for rule in RULES.values():
        assert rule.summary and rule.spec


def _meter_value(validator: Validator) -> dict[str, Any]:
    return copy.deepcopy(_METER_VALUE)


_METER_VALUE: dict[str, Any] = {
    "type": "session_update", "session_id": 456, "transaction_id": 789, "event": "meter_value",
    "data": {
        "charger_id": "CP001", "connector_id": 1, "station_id": "STATION001", "station_name": "Cillout Mansoura",
        "station_address": "15 Tahrir Street, Downtown, Cairo", "charge_percentage": 50, "time_remaining": 1200,
        "time_remaining_display": "20 min", "energy_consumed": 42.5, "energy_consumed_unit": "kWh", "cost": 315,
        "cost_currency": "EGP", "charging_duration": 8100, "charging_duration_display": "2hr 15min",
        "output_power": 22.0, "output_power_unit": "kW", "energy_delivered": 42.5, "power": 22.0,
        "voltage": 230, "current": 95.7, "meter_value": 42500, "timestamp": "2025-01-29T12:05:00Z",
    },
    "timestamp": "2025-01-29T12:05:00Z",
}
