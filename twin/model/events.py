"""The model's typed event stream: what happened, when, where.

Every event has ``t``, seconds since the run's start. Events are values:
consumers read them and never change them (they are not frozen only because
a frozen dataclass costs six times as much to make, and a day of a city
makes millions of meter samples). Consumers (the KPI
collector, the trace writer, the charge point simulators, the app users)
subscribe to the stream; the model does not know who listens. Later these
events become OCPP and app traffic: a :class:`ConnectorStatusChanged` is a
StatusNotification, a :class:`MeterSample` a MeterValues, and so on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AppClosed",
    "AppOpened",
    "Arrival",
    "Balk",
    "ConnectorStatusChanged",
    "Departure",
    "Event",
    "Fault",
    "MaintenanceEnded",
    "MaintenanceStarted",
    "MeterSample",
    "PlugIn",
    "Repair",
    "TransactionStarted",
    "TransactionStopped",
]


@dataclass(slots=True)
class Event:
    """Base of every event: ``t`` is seconds since the start of the run."""

    t: float


@dataclass(slots=True)
class AppOpened(Event):
    user_id: int


@dataclass(slots=True)
class AppClosed(Event):
    user_id: int


@dataclass(slots=True)
class Arrival(Event):
    """A driver reached a station, wanting a connector of ``kind``."""

    user_id: int
    station_id: str
    kind: str


@dataclass(slots=True)
class Balk(Event):
    """A driver gave up waiting at a station after ``waited`` seconds (and may try the next)."""

    user_id: int
    station_id: str
    waited: float


@dataclass(slots=True)
class PlugIn(Event):
    """A driver plugged in, ``waited`` seconds after arriving at the first station tried."""

    user_id: int
    station_id: str
    charge_point_id: str
    connector_id: int
    waited: float


@dataclass(slots=True)
class ConnectorStatusChanged(Event):
    """OCPP StatusNotification: a connector (or, with ``connector_id`` 0, a charging point) changed status."""

    station_id: str
    charge_point_id: str
    connector_id: int
    status: str
    previous: str
    error_code: str | None = None


@dataclass(slots=True)
class TransactionStarted(Event):
    """OCPP StartTransaction: ``meter_start`` is the connector's register in whole Wh."""

    session_id: int
    user_id: int
    id_tag: str
    station_id: str
    charge_point_id: str
    connector_id: int
    meter_start: int
    soc: float


@dataclass(slots=True)
class MeterSample(Event):
    """OCPP MeterValues of a running transaction.

    ``register_wh`` is the connector's energy register (whole Wh, never
    decreasing); ``energy_wh`` the session's energy so far (register minus
    meter_start). ``voltage`` is per phase on AC; ``current`` per phase on AC.
    """

    session_id: int
    charge_point_id: str
    connector_id: int
    register_wh: int
    energy_wh: int
    power_kw: float
    voltage: float
    current: float
    phases: int
    soc: float


@dataclass(slots=True)
class TransactionStopped(Event):
    """OCPP StopTransaction. ``reason`` is an OCPP 1.6 Reason; ``error_code`` is set when a fault ended it."""

    session_id: int
    user_id: int
    charge_point_id: str
    connector_id: int
    meter_stop: int
    energy_wh: int
    soc: float
    reason: str
    error_code: str | None = None


@dataclass(slots=True)
class Departure(Event):
    """A driver left: ``done`` after charging, ``fault`` after a fault ended it, ``gave_up`` unserved."""

    user_id: int
    station_id: str | None
    reason: str


@dataclass(slots=True)
class Fault(Event):
    station_id: str
    charge_point_id: str
    error_code: str


@dataclass(slots=True)
class Repair(Event):
    station_id: str
    charge_point_id: str


@dataclass(slots=True)
class MaintenanceStarted(Event):
    station_id: str
    reason: str


@dataclass(slots=True)
class MaintenanceEnded(Event):
    station_id: str
