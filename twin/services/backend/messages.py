"""The messages the backend publishes, built exactly as the contracts say (seed 3, 4).

Pure functions of their arguments: no clock, no I/O. Each returns a dict
that validates against its schema under ``contracts/schemas/messages/``.
Station aggregates use :mod:`chargetwin.contracts.status` and display
strings :mod:`chargetwin.contracts.durations`, so the backend and the
contract checks agree by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from chargetwin.contracts.durations import format_duration
from chargetwin.contracts.status import STATUS_LABELS, count_classes, display_for, station_status

from ...model.config import ChargePointSpec, StationSpec
from ..timestamps import format_timestamp, utc_text
from .state import Session

__all__ = [
    "DEFAULT_CAPACITY_KWH",
    "MAX_TIME_REMAINING_S",
    "MIN_CHARGING_KW",
    "MIN_SOC_GAIN",
    "Message",
    "StatusOf",
    "active_session_data",
    "active_session_update",
    "charger_error",
    "charger_list",
    "charger_status_update",
    "connector_status_changed",
    "cost",
    "estimate_time_remaining",
    "maintenance_mode",
    "meter_value_data",
    "notification",
    "response",
    "rfc3339",
    "seconds_between",
    "session_duration",
    "session_end_data",
    "session_error_data",
    "session_update",
    "station_counts",
    "station_entry",
    "status_changed",
]

Message = dict[str, Any]
StatusOf = Callable[[str, int], str]
"""``status_of(charger_id, connector_id)``: the connector's last OCPP status."""


def rfc3339(moment: datetime) -> str:
    """``2025-01-29T12:00:00.000Z``: RFC 3339 in UTC with a ``Z``, as the seed writes it (SPEC-NOTES N-20).

    Whatever zone the twin's clock is in (a scenario's local time), so that one
    message never mixes offsets with the ``Z`` times the CMS passes on.
    """
    if moment.tzinfo is None:
        raise ValueError("timestamps need a UTC offset; the twin's clocks give timezone-aware times")
    return format_timestamp(moment)


def seconds_between(start: str, end: str | datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (0 if ``end`` is earlier)."""
    finish = end if isinstance(end, datetime) else datetime.fromisoformat(end)
    return max(0, int((finish - datetime.fromisoformat(start)).total_seconds()))


def cost(energy_kwh: float, tariff_per_kwh: float) -> float:
    """Energy x tariff, 2 decimals (SPEC-NOTES N-35)."""
    return round(energy_kwh * tariff_per_kwh, 2)


MIN_CHARGING_KW = 0.05
"""Below this power the car is not really charging (SuspendedEV trickle): no time can be told."""

MAX_TIME_REMAINING_S = 7 * 86400
"""Estimates are capped at a week."""

DEFAULT_CAPACITY_KWH = 60.0
"""Battery capacity assumed until a session's own samples tell it: a mid-size EV (OCPP 1.6 does not carry it)."""

MIN_SOC_GAIN = 5
"""SoC points a session must gain before its battery capacity is inferred from energy per point. SoC comes
in whole per cent, so a gain of n points is known to +-1: at 1 point the capacity could be off by half or
double, at 5 by about a fifth."""


def estimate_time_remaining(*, soc: int | None, power_kw: float, capacity_kwh: float | None) -> int | None:
    """Seconds to a full battery at the present power, or None when it cannot be told.

    0 only for a full battery (SoC 100): any charge still to go takes at least a second.
    """
    if soc is None:
        return None
    if soc >= 100:
        return 0
    if capacity_kwh is None or capacity_kwh <= 0 or power_kw < MIN_CHARGING_KW:
        return None
    seconds = (100 - soc) / 100 * capacity_kwh / power_kw * 3600
    return max(1, min(MAX_TIME_REMAINING_S, round(seconds)))


# --- seed 3.1, 4.2: notifications and responses -------------------------------------------------


def notification(title: str, text: str, data: Mapping[str, Any], *, now: str) -> Message:
    return {"type": "notification", "title": title, "message": text, "data": dict(data), "timestamp": now}


def response(action: str, data: Mapping[str, Any], *, now: str) -> Message:
    """``response`` (DESIGN ruling 4): ``action`` is start_charging or stop_charging."""
    return {"type": "response", "action": action, "data": dict(data), "timestamp": now}


# --- seed 3.2, 4.8: session updates -------------------------------------------------------------


def session_update(session: Session, event: str, data: Mapping[str, Any], *, now: str) -> Message:
    return {"type": "session_update", "session_id": session.session_id, "transaction_id": session.transaction_id,
            "event": event, "data": dict(data), "timestamp": now}


def meter_value_data(session: Session, station: StationSpec, *, meter_wh: int, power_kw: float,
                     voltage: float, current: float, charge_percentage: int, time_remaining: int,
                     measured_at: str) -> Message:
    """``data`` of a ``meter_value`` session update (seed 3.2, all 22 fields; SPEC-NOTES N-08, N-24)."""
    assert session.start_time is not None
    energy = round(meter_wh / 1000, 3)
    measured_at = utc_text(measured_at)
    duration = seconds_between(session.start_time, measured_at)
    return {
        "charger_id": session.charger_id,
        "connector_id": session.connector_id,
        "station_id": station.id,
        "station_name": station.name,
        "station_address": station.address,
        "charge_percentage": charge_percentage,
        "time_remaining": time_remaining,
        "time_remaining_display": format_duration(time_remaining),
        "energy_consumed": energy,
        "energy_consumed_unit": "kWh",
        "cost": cost(energy, station.tariff_per_kwh),
        "cost_currency": station.currency,
        "charging_duration": duration,
        "charging_duration_display": format_duration(duration),
        "output_power": power_kw,
        "output_power_unit": "kW",
        "energy_delivered": energy,
        "power": power_kw,
        "voltage": voltage,
        "current": current,
        "meter_value": meter_wh,
        "timestamp": measured_at,
    }


def session_duration(session: Session) -> int:
    """Seconds from the charger's start to its stop (StopTransaction's timestamp) of an ended session (N-52)."""
    assert session.start_time is not None and session.stop_time is not None
    return seconds_between(session.start_time, session.stop_time)


def session_end_data(session: Session) -> Message:
    """``data`` of ``session_stopped`` / ``session_completed`` (``$defs/session_end_data``)."""
    assert session.start_time is not None and session.stop_time is not None
    assert session.meter_stop is not None and session.stop_reason is not None
    return {"charger_id": session.charger_id, "connector_id": session.connector_id,
            "meter_stop": session.meter_stop, "energy_delivered": session.energy_kwh,
            "duration": session_duration(session),
            "stop_time": utc_text(session.stop_time), "stop_reason": session.stop_reason}


def session_error_data(session: Session, *, error: str, text: str, error_code: str | None,
                       at: str) -> Message:
    """``data`` of ``session_error`` (SPEC-NOTES N-10)."""
    return {"charger_id": session.charger_id, "connector_id": session.connector_id, "error": error,
            "message": text, "error_code": error_code, "timestamp": utc_text(at)}


def active_session_data(session: Session, *, now: datetime) -> Message:
    """``data`` of an ``active_session_update`` with a session (seed 4.8); also the Redis key's content."""
    start = session.start_time or session.created_at
    return {"session_id": session.session_id, "transaction_id": session.transaction_id,
            "charger_id": session.charger_id, "connector_id": session.connector_id,
            "station_id": session.station_id, "start_time": utc_text(start), "energy_delivered": session.energy_kwh,
            "duration": seconds_between(start, now), "status": session.status}


def active_session_update(data: Mapping[str, Any] | None, *, now: str) -> Message:
    return {"type": "active_session_update", "has_active_session": data is not None,
            "data": None if data is None else dict(data), "timestamp": now}


# --- seed 3.3, 4.5: charger updates -------------------------------------------------------------


def _charger_update(charger_id: str, event: str, data: Mapping[str, Any], now: str) -> Message:
    return {"type": "charger_update", "charger_id": charger_id, "event": event, "data": dict(data),
            "timestamp": now}


def connector_status_changed(charger_id: str, connector_id: int, *, status: str, previous: str | None,
                             error_code: str | None, at: str, now: str) -> Message:
    return _charger_update(charger_id, "connector_status_changed",
                           {"connector_id": connector_id, "status": status, "previous_status": previous,
                            "error_code": error_code, "timestamp": utc_text(at)}, now)


def status_changed(charger_id: str, *, status: str, previous: str | None, at: str, now: str) -> Message:
    """The charging point as a whole (OCPP connector 0; SPEC-NOTES N-05)."""
    return _charger_update(charger_id, "status_changed",
                           {"status": status, "previous_status": previous, "connector_id": 0,
                            "timestamp": utc_text(at)}, now)


def charger_error(charger_id: str, connector_id: int, *, error_code: str, info: str | None, at: str,
                  now: str) -> Message:
    """An OCPP error code other than NoError (SPEC-NOTES N-11, N-19)."""
    return _charger_update(charger_id, "error",
                           {"connector_id": connector_id, "error_code": error_code, "info": info,
                            "timestamp": utc_text(at)}, now)


def maintenance_mode(charger_id: str, station_id: str, *, under_maintenance: bool, reason: str | None,
                     at: str, now: str) -> Message:
    return _charger_update(charger_id, "maintenance_mode",
                           {"station_id": station_id, "is_under_maintenance": under_maintenance,
                            "maintenance_reason": reason, "timestamp": utc_text(at)}, now)


# --- seed 2, 4.6, 4.7: the map ------------------------------------------------------------------


def _statuses(cp: ChargePointSpec, status_of: StatusOf) -> list[str]:
    return [status_of(cp.id, n) for n in range(1, cp.connectors + 1)]


def station_counts(statuses: list[str], *, under_maintenance: bool) -> dict[str, int]:
    """Available / in use / unavailable counts; under maintenance nothing is available (SPEC-NOTES N-07)."""
    counts: dict[str, int] = count_classes(statuses)
    if under_maintenance:
        counts = {"available": 0, "in_use": counts["in_use"],
                  "unavailable": counts["unavailable"] + counts["available"]}
    return counts


def charger_status_update(station: StationSpec, charger_id: str, status_of: StatusOf, *,
                          maintenance_reason: str | None, under_maintenance: bool, at: str,
                          now: str) -> Message:
    """The station's aggregate, listing the connectors of ``charger_id`` (DESIGN rulings 2, 3)."""
    statuses = [s for cp in station.charge_points for s in _statuses(cp, status_of)]
    counts = station_counts(statuses, under_maintenance=under_maintenance)
    total = len(statuses)
    status = station_status(available=counts["available"], total=total, unavailable=counts["unavailable"],
                            under_maintenance=under_maintenance)
    (cp,) = [cp for cp in station.charge_points if cp.id == charger_id]
    data: Message = {
        "total_connectors": total,
        "available_connectors": counts["available"],
        "connectors_in_use": counts["in_use"],
        "connectors_unavailable": counts["unavailable"],
        "display": display_for(status, available=counts["available"], total=total),
        "connector_status": [{"connector_id": n, "status": s}
                             for n, s in enumerate(_statuses(cp, status_of), start=1)],
        "station_status": STATUS_LABELS[status],
        "is_under_maintenance": under_maintenance,
    }
    if under_maintenance:
        data["maintenance_reason"] = maintenance_reason
    data["timestamp"] = utc_text(at)
    return {"type": "charger_status_update", "station_id": station.id, "charger_id": charger_id,
            "status": status, "data": data, "timestamp": now}


def _list_entry(statuses: list[str], under_maintenance: bool) -> tuple[str, int, int]:
    counts = station_counts(statuses, under_maintenance=under_maintenance)
    status = station_status(available=counts["available"], total=len(statuses),
                            unavailable=counts["unavailable"], under_maintenance=under_maintenance)
    return status, counts["available"], len(statuses)


def charger_list(stations: list[StationSpec], status_of: StatusOf,
                 maintenance: Mapping[str, str | None]) -> list[Message]:
    """``data.chargers`` of a ``charger_list_update``: every station and charging point (seed 4.7, N-47).

    ``maintenance`` holds the stations under maintenance (id -> reason).
    """
    return [station_entry(station, status_of, under=station.id in maintenance) for station in stations]


def station_entry(station: StationSpec, status_of: StatusOf, *, under: bool) -> Message:
    """One station of a ``charger_list_update``, with its charging points."""
    chargers = []
    for cp in station.charge_points:
        status, available, total = _list_entry(_statuses(cp, status_of), under)
        chargers.append({"charger_id": cp.id, "total_connectors": total, "available_connectors": available,
                         "status": status, "display": display_for(status, available=available, total=total)})
    status, available, total = _list_entry(
        [s for cp in station.charge_points for s in _statuses(cp, status_of)], under)
    return {
        "station_id": station.id,
        "station_name": station.name,
        "location": {"latitude": station.latitude, "longitude": station.longitude,
                     "address": station.address},
        "chargers": chargers,
        "station_status": status,
        "total_connectors": total,
        "available_connectors": available,
        "display": display_for(status, available=available, total=total),
    }
