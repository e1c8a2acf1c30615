"""Semantic rules: what the protocol requires that JSON Schema cannot say.

Each rule is a small named function that takes one message, already valid
against its schema, and returns the violations it finds (an empty tuple
when the message conforms). The validator runs the rules of a message's
schema only after the schema passed, so rules may rely on the structure.

:data:`RULES` lists every rule by name, :data:`RULES_BY_SCHEMA` the rules of
each schema. The names are what reports and ``chargetwin validate`` show.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .durations import display_minutes
from .status import STATUS_LABELS, count_classes, display_for, station_status
from .violations import Violation

__all__ = [
    "METER_TOLERANCE_WH",
    "RULES",
    "RULES_BY_SCHEMA",
    "Rule",
    "charging_duration_display_matches",
    "connector_status_within_counts",
    "counts_add_up",
    "display_matches_status",
    "energy_aliases_agree",
    "list_counts_add_up",
    "list_display_matches_status",
    "list_status_follows_counts",
    "maintenance_shows_none_available",
    "meter_value_matches_energy",
    "power_aliases_agree",
    "station_status_label_matches",
    "status_follows_counts",
    "time_remaining_display_matches",
    "timestamps_parse",
]

Message = Mapping[str, Any]
Check = Callable[[Message], Sequence[Violation]]

METER_TOLERANCE_WH = 5
"""How far ``meter_value`` (Wh) may be from 1000 x the energy in kWh.

Energy is published in kWh with at least two decimals, so rounding alone
accounts for up to 5 Wh (SPEC-NOTES N-08).
"""

_OK: tuple[Violation, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """A named semantic rule: its check, one line for people, its spec section."""

    name: str
    summary: str
    spec: str
    check: Check


RULES: dict[str, Rule] = {}


def _rule(spec: str) -> Callable[[Check], Check]:
    def register(check: Check) -> Check:
        summary = (check.__doc__ or check.__name__).strip().splitlines()[0]
        RULES[check.__name__] = Rule(check.__name__, summary, spec, check)
        return check
    return register


def _violation(rule: str, pointer: str, message: str, expected: Any, actual: Any) -> Violation:
    return Violation(rule=rule, pointer=pointer, message=message, expected=expected,
                     actual=actual, spec=RULES[rule].spec)


# --- charger_status_update (seed 4.6, DESIGN rulings 2 and 3) -------------------------


@_rule("2. Charging Station Status Model")
def counts_add_up(message: Message) -> Sequence[Violation]:
    """Available, in-use and unavailable connectors add up to the total."""
    data = message["data"]
    total = data["total_connectors"]
    added = data["available_connectors"] + data["connectors_in_use"] + data["connectors_unavailable"]
    if added == total:
        return _OK
    return [_violation("counts_add_up", "/data/total_connectors",
                       f"the counts add up to {added}, not to total_connectors {total}", added, total)]


@_rule("2. Charging Station Status Model")
def status_follows_counts(message: Message) -> Sequence[Violation]:
    """The station status follows from the connector counts and maintenance (ruling 3)."""
    data = message["data"]
    expected = station_status(available=data["available_connectors"], total=data["total_connectors"],
                              unavailable=data["connectors_unavailable"],
                              under_maintenance=data["is_under_maintenance"])
    if message["status"] == expected:
        return _OK
    return [_violation("status_follows_counts", "/status",
                       f"with these counts the status must be {expected!r}", expected, message["status"])]


def _display_violation(rule: str, pointer: str, status: str, available: int, total: int,
                       display: Any) -> Sequence[Violation]:
    expected = display_for(status, available=available, total=total)
    if display == expected:
        return _OK
    why = (f"an available station shows '{expected}'" if expected is not None
           else f"display must be null when the status is {status!r}")
    return [_violation(rule, pointer, why, expected, display)]


@_rule("2. Charging Station Status Model")
def display_matches_status(message: Message) -> Sequence[Violation]:
    """``display`` is "{available}/{total}" exactly when the status is available, else null."""
    data = message["data"]
    return _display_violation("display_matches_status", "/data/display", message["status"],
                              data["available_connectors"], data["total_connectors"], data["display"])


@_rule("4.6 Charger Status Update (Pushed from Gateway)")
def maintenance_shows_none_available(message: Message) -> Sequence[Violation]:
    """A station under maintenance counts no available connector (SPEC-NOTES N-07)."""
    data = message["data"]
    if not data["is_under_maintenance"] or data["available_connectors"] == 0:
        return _OK
    return [_violation("maintenance_shows_none_available", "/data/available_connectors",
                       "a station under maintenance has no connector available to drivers",
                       0, data["available_connectors"])]


@_rule("4.6 Charger Status Update (Pushed from Gateway)")
def station_status_label_matches(message: Message) -> Sequence[Violation]:
    """``data.station_status`` is the label of ``status`` (Available, In Use, Unavailable)."""
    expected = STATUS_LABELS[message["status"]]
    actual = message["data"]["station_status"]
    if actual == expected:
        return _OK
    return [_violation("station_status_label_matches", "/data/station_status",
                       f"status {message['status']!r} is labelled {expected!r}", expected, actual)]


@_rule("4.6 Charger Status Update (Pushed from Gateway)")
def connector_status_within_counts(message: Message) -> Sequence[Violation]:
    """The charging point's connectors fit within the station's counts (ruling 2)."""
    data = message["data"]
    listed = data["connector_status"]
    if len(listed) > data["total_connectors"]:
        return [_violation("connector_status_within_counts", "/data/connector_status",
                           "more connectors listed than the station has",
                           data["total_connectors"], len(listed))]
    counts = count_classes(entry["status"] for entry in listed)
    station = {"available": data["available_connectors"], "in_use": data["connectors_in_use"],
               "unavailable": data["connectors_unavailable"]}
    if data["is_under_maintenance"]:
        # Under maintenance no connector counts as available (SPEC-NOTES N-07).
        counts = {"available": 0, "in_use": counts["in_use"],
                  "unavailable": counts["unavailable"] + counts["available"]}
    for name, count in counts.items():
        if count > station[name]:
            return [_violation("connector_status_within_counts", "/data/connector_status",
                               f"{count} listed connectors are {name}, but the station counts only "
                               f"{station[name]}", station[name], count)]
    return _OK


# --- charger_list_update (seed 4.7) ---------------------------------------------------


def _list_entries(message: Message) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for i, station in enumerate(message["data"]["chargers"]):
        yield f"/data/chargers/{i}", station
        for j, charger in enumerate(station["chargers"]):
            yield f"/data/chargers/{i}/chargers/{j}", charger


def _list_status(entry: Mapping[str, Any]) -> str:
    return str(entry["station_status"] if "station_status" in entry else entry["status"])


@_rule("4.7 Charger List Update (Pushed from Gateway)")
def list_display_matches_status(message: Message) -> Sequence[Violation]:
    """Every station and charging point of the list shows "X/Y" exactly when available."""
    found: list[Violation] = []
    for pointer, entry in _list_entries(message):
        found.extend(_display_violation("list_display_matches_status", pointer + "/display",
                                        _list_status(entry), entry["available_connectors"],
                                        entry["total_connectors"], entry["display"]))
    return found


@_rule("4.7 Charger List Update (Pushed from Gateway)")
def list_counts_add_up(message: Message) -> Sequence[Violation]:
    """A station's counts are the sums of its charging points' counts."""
    found: list[Violation] = []
    for i, station in enumerate(message["data"]["chargers"]):
        for key in ("total_connectors", "available_connectors"):
            summed = sum(charger[key] for charger in station["chargers"])
            if summed != station[key]:
                found.append(_violation("list_counts_add_up", f"/data/chargers/{i}/{key}",
                                        f"the charging points' {key} add up to {summed}",
                                        summed, station[key]))
    for pointer, entry in _list_entries(message):
        if entry["available_connectors"] > entry["total_connectors"]:
            found.append(_violation("list_counts_add_up", pointer + "/available_connectors",
                                    "more connectors available than there are",
                                    entry["total_connectors"], entry["available_connectors"]))
    return found


@_rule("4.7 Charger List Update (Pushed from Gateway)")
def list_status_follows_counts(message: Message) -> Sequence[Violation]:
    """In the list, the status is 'available' exactly when a connector is available."""
    found: list[Violation] = []
    for pointer, entry in _list_entries(message):
        status = _list_status(entry)
        has_available = entry["available_connectors"] > 0
        if (status == "available") != has_available:
            key = "/station_status" if "station_status" in entry else "/status"
            expected = "available" if has_available else "in_use or unavailable"
            found.append(_violation("list_status_follows_counts", pointer + key,
                                    f"{entry['available_connectors']} available connectors mean "
                                    f"status {expected}", expected, status))
    return found


# --- session_update: meter_value (seed 3.2, example 2) -----------------------------


@_rule("3.2 Session Updates Channel")
def energy_aliases_agree(message: Message) -> Sequence[Violation]:
    """``energy_delivered`` equals ``energy_consumed`` (kept for backward compatibility)."""
    data = message["data"]
    if data["energy_delivered"] == data["energy_consumed"]:
        return _OK
    return [_violation("energy_aliases_agree", "/data/energy_delivered",
                       "energy_delivered must equal energy_consumed",
                       data["energy_consumed"], data["energy_delivered"])]


@_rule("3.2 Session Updates Channel")
def power_aliases_agree(message: Message) -> Sequence[Violation]:
    """``power`` equals ``output_power`` (kept for backward compatibility)."""
    data = message["data"]
    if data["power"] == data["output_power"]:
        return _OK
    return [_violation("power_aliases_agree", "/data/power", "power must equal output_power",
                       data["output_power"], data["power"])]


def _display_matches(rule: str, message: Message, seconds_key: str, display_key: str) -> Sequence[Violation]:
    data = message["data"]
    seconds = data[seconds_key]
    shown = display_minutes(data[display_key])
    low, high = seconds // 60, -(-seconds // 60)
    if shown is not None and low <= shown <= high:
        return _OK
    return [_violation(rule, f"/data/{display_key}",
                       f"{seconds} s is {low} min (rounded down) or {high} min (rounded up)",
                       {"seconds": seconds, "minutes": sorted({low, high})}, data[display_key])]


@_rule("3.2 Session Updates Channel")
def time_remaining_display_matches(message: Message) -> Sequence[Violation]:
    """``time_remaining_display`` shows ``time_remaining`` in whole minutes."""
    return _display_matches("time_remaining_display_matches", message,
                            "time_remaining", "time_remaining_display")


@_rule("3.2 Session Updates Channel")
def charging_duration_display_matches(message: Message) -> Sequence[Violation]:
    """``charging_duration_display`` shows ``charging_duration`` in whole minutes."""
    return _display_matches("charging_duration_display_matches", message,
                            "charging_duration", "charging_duration_display")


@_rule("3.2 Session Updates Channel")
def meter_value_matches_energy(message: Message) -> Sequence[Violation]:
    """``meter_value`` (Wh) is the session energy in kWh x 1000, within rounding."""
    data = message["data"]
    energy = data["energy_consumed"] if "energy_consumed" in data else data["energy_delivered"]
    expected = energy * 1000
    # 4.03 kWh is 4030.0000000000005 Wh in binary: the tolerance must not fail by a rounding error
    if math.fabs(data["meter_value"] - expected) <= METER_TOLERANCE_WH + 1e-6:
        return _OK
    shown = round(expected) if math.isfinite(expected) else expected  # 1e308 kWh is still a message
    return [_violation("meter_value_matches_energy", "/data/meter_value",
                       f"{energy} kWh is {expected:.0f} Wh (+/- {METER_TOLERANCE_WH} Wh)",
                       shown, data["meter_value"])]


# --- every message --------------------------------------------------------------------

_TIME_KEYS = ("timestamp", "start_time", "stop_time")


def _bad_time(text: str) -> str | None:
    try:
        datetime.fromisoformat(text)
    except ValueError as error:
        return str(error)
    return None


@_rule("3.1 User Notifications Channel")
def timestamps_parse(message: Message) -> Sequence[Violation]:
    """Every timestamp is a real date and time (the schema checks only its shape)."""
    found: list[Violation] = []
    if "timestamp" in message and (why := _bad_time(message["timestamp"])):
        found.append(_violation("timestamps_parse", "/timestamp", f"not a real time: {why}",
                                "an RFC 3339 date-time", message["timestamp"]))
    data = message.get("data")
    if isinstance(data, Mapping):
        for key in _TIME_KEYS:
            value = data.get(key)
            if isinstance(value, str) and (why := _bad_time(value)):
                found.append(_violation("timestamps_parse", f"/data/{key}", f"not a real time: {why}",
                                        "an RFC 3339 date-time", value))
    return found


def _with_timestamps(*checks: Check) -> tuple[Rule, ...]:
    return tuple(RULES[c.__name__] for c in (*checks, timestamps_parse))


RULES_BY_SCHEMA: dict[str, tuple[Rule, ...]] = {
    "messages/charger_status_update": _with_timestamps(
        counts_add_up, status_follows_counts, display_matches_status,
        station_status_label_matches, connector_status_within_counts, maintenance_shows_none_available),
    "messages/charger_list_update": _with_timestamps(
        list_display_matches_status, list_counts_add_up, list_status_follows_counts),
    "messages/session_update/meter_value": _with_timestamps(
        energy_aliases_agree, power_aliases_agree, time_remaining_display_matches,
        charging_duration_display_matches, meter_value_matches_energy),
    "cms/events/meter_value": _with_timestamps(meter_value_matches_energy),
}
"""Semantic rules of each schema; every other schema gets :func:`timestamps_parse` alone."""

DEFAULT_RULES: tuple[Rule, ...] = (RULES["timestamps_parse"],)
