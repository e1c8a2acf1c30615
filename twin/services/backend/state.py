"""What the backend knows: the network (static), sessions and connector statuses (persisted).

Plain data, no I/O: :mod:`.logic` changes it, :mod:`.store` saves and loads
it. Times are kept as the RFC 3339 strings the CMS sent (``start_time``,
``stop_time``), so a restarted backend computes the same durations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from ...model.config import ChargePointSpec, StationSpec
from ..users import TestUser

__all__ = [
    "CLOSED_STATUSES",
    "OPEN_STATUSES",
    "UNKNOWN_STATUS",
    "ConnectorState",
    "Network",
    "Session",
    "SessionStatus",
    "Users",
]


class SessionStatus:
    """Lifecycle of a session row: initiated -> active -> stopped | completed | error; failed if never started."""

    INITIATED: Final = "initiated"
    ACTIVE: Final = "active"
    STOPPED: Final = "stopped"
    COMPLETED: Final = "completed"
    ERROR: Final = "error"
    FAILED: Final = "failed"


OPEN_STATUSES = frozenset({SessionStatus.INITIATED, SessionStatus.ACTIVE})
"""A session in one of these is the user's active session (SPEC-NOTES N-45)."""

CLOSED_STATUSES = frozenset({SessionStatus.STOPPED, SessionStatus.COMPLETED, SessionStatus.ERROR,
                             SessionStatus.FAILED})

UNKNOWN_STATUS = "Unavailable"
"""Status of a connector that never sent StatusNotification: it cannot be used yet."""


@dataclass(slots=True)
class Session:
    """One charging session of one user on one connector (a row of ``sessions``).

    ``meter_start`` / ``meter_stop`` are raw registers (Wh); ``meter_wh`` is the
    session's energy so far (Wh, from the last ``meter_value``);
    ``soc_first`` / ``wh_at_soc_first`` remember the first SoC sample, from
    which the battery capacity is inferred (energy per % of SoC).
    """

    session_id: int
    user_id: int
    id_tag: str
    charger_id: str
    connector_id: int
    station_id: str
    status: str
    created_at: str
    transaction_id: int | None = None
    meter_start: int | None = None
    start_time: str | None = None
    meter_wh: int = 0
    soc: int | None = None
    soc_first: int | None = None
    wh_at_soc_first: int | None = None
    power_kw: float = 0.0
    stop_requested: bool = False
    meter_stop: int | None = None
    stop_time: str | None = None
    stop_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def energy_kwh(self) -> float:
        """Energy delivered so far (or in total, once stopped), kWh with 3 decimals."""
        if self.meter_stop is not None and self.meter_start is not None:
            return round(max(0, self.meter_stop - self.meter_start) / 1000, 3)
        return round(self.meter_wh / 1000, 3)


@dataclass(slots=True)
class ConnectorState:
    """The last StatusNotification of a connector (connector 0: the charging point itself)."""

    charger_id: str
    connector_id: int
    status: str
    error_code: str | None = None
    updated_at: str | None = None


class Network:
    """Stations and charging points by id, as the model built them (read-only)."""

    def __init__(self, stations: Sequence[StationSpec]) -> None:
        self.stations: dict[str, StationSpec] = {}
        self.charge_points: dict[str, ChargePointSpec] = {}
        self.station_of: dict[str, StationSpec] = {}
        for station in stations:
            if station.id in self.stations:
                raise ValueError(f"station {station.id!r} is listed twice")
            self.stations[station.id] = station
            for cp in station.charge_points:
                if cp.id in self.charge_points:
                    raise ValueError(f"charging point {cp.id!r} is listed twice")
                self.charge_points[cp.id] = cp
                self.station_of[cp.id] = station

    def add(self, station: StationSpec) -> None:
        """Add a station (or replace one of the same id: its charging points as given now)."""
        if station.id in self.stations:
            self.remove(station.id)
        taken = [cp.id for cp in station.charge_points if cp.id in self.charge_points]
        if taken:
            raise ValueError(f"charging point {taken[0]!r} is already in the network")
        self.stations[station.id] = station
        for cp in station.charge_points:
            self.charge_points[cp.id] = cp
            self.station_of[cp.id] = station

    def remove(self, station_id: str) -> StationSpec:
        station = self.stations.pop(station_id)
        for cp in station.charge_points:
            del self.charge_points[cp.id]
            del self.station_of[cp.id]
        return station

    def has_connector(self, charger_id: str, connector_id: int) -> bool:
        cp = self.charge_points.get(charger_id)
        return cp is not None and 1 <= connector_id <= cp.connectors


class Users:
    """Test users by id, id tag and email (read-only)."""

    def __init__(self, users: Iterable[TestUser]) -> None:
        self.by_id: dict[int, TestUser] = {}
        self.by_id_tag: dict[str, TestUser] = {}
        self.by_email: dict[str, TestUser] = {}
        for user in users:
            self.by_id[user.user_id] = user
            self.by_id_tag[user.id_tag] = user
            self.by_email[user.email.casefold()] = user
