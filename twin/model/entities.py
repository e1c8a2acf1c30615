"""The model's runtime entities: stations, charging points, connectors, drivers, sessions.

Plain mutable objects owned by one :class:`~chargetwin.twin.model.world.World`.
Positions are kilometres east (``x``) and north (``y``) of the network's
centre. Nothing here schedules anything: the world's processes do.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import ChargePointSpec, EVModel, StationSpec
from .physics import ChargeCurve

if TYPE_CHECKING:
    import simpy

__all__ = ["ChargePoint", "Connector", "Driver", "Session", "Station", "Waiter"]


@dataclass(slots=True, eq=False)
class Connector:
    """One connector: its OCPP status, its energy register and who is plugged in."""

    charge_point: ChargePoint
    id: int
    register: float = 0.0
    status: str = "Available"
    driver: Driver | None = None
    session: Session | None = None
    inoperative: bool = False
    fault_code: str | None = None  # a fault of this connector alone (the twin's control API); None: none

    @property
    def free(self) -> bool:
        """Nobody plugged in, and nothing keeps a driver from plugging in."""
        return (self.driver is None and not self.inoperative and self.fault_code is None
                and not self.charge_point.faulted and not self.charge_point.station.under_maintenance)

    @property
    def register_wh(self) -> int:
        """The register as the meter shows it: whole Wh, rounded down."""
        return math.floor(self.register)


@dataclass(slots=True, eq=False)
class ChargePoint:
    spec: ChargePointSpec
    station: Station
    connectors: list[Connector] = field(default_factory=list)
    faulted: bool = False
    power_cap_kw: float | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def kind(self) -> str:
        return self.spec.kind


@dataclass(slots=True, eq=False)
class Waiter:
    """A driver queueing at a station; ``event`` succeeds with a connector, or None to send them on."""

    kind: str
    event: simpy.Event
    driver: Driver


@dataclass(slots=True, eq=False)
class Station:
    spec: StationSpec
    x: float
    y: float
    charge_points: list[ChargePoint] = field(default_factory=list)
    under_maintenance: bool = False
    queue: deque[Waiter] = field(default_factory=deque)

    @property
    def id(self) -> str:
        return self.spec.id

    def kinds(self) -> set[str]:
        return {cp.kind for cp in self.charge_points}

    def free_connector(self, kind: str) -> Connector | None:
        """A free connector of ``kind``, or None."""
        for cp in self.charge_points:
            if cp.kind == kind:
                for connector in cp.connectors:
                    if connector.free:
                        return connector
        return None

    def usable_for(self, kind: str) -> bool:
        """Whether a driver of ``kind`` could be served here at all (now or after a wait)."""
        if self.under_maintenance:
            return False
        return any(cp.kind == kind and not cp.faulted and any(not c.inoperative for c in cp.connectors)
                   for cp in self.charge_points)


@dataclass(slots=True, eq=False)
class Driver:
    """A user of the app with their EV; ``busy`` while on their way, waiting or charging."""

    user_id: int
    id_tag: str
    ev: EVModel
    home: tuple[float, float]
    work: tuple[float, float]
    busy: bool = False
    app_open: bool = False
    # the current trip: state of charge on arrival, where to stop, when to leave
    soc: float = 0.5
    target_soc: float = 0.8
    departure: float = math.inf

    def can_charge(self, kind: str) -> bool:
        return kind == "AC" or self.ev.max_dc_kw > 0


@dataclass(slots=True, eq=False)
class Session:
    """A transaction: the car's charge follows ``curve`` from the anchor (``anchor_t``, ``anchor_soc``).

    While ``charging`` is False (the car reached its target, or stopped) the
    SoC stays at the anchor. The connector's register at any time is
    ``register_start`` plus the energy since the start, so it never falls.
    """

    id: int
    driver: Driver
    connector: Connector
    kind: str
    curve: ChargeCurve
    started: float
    meter_start: int
    register_start: float
    soc_start: float
    target_soc: float
    departure: float
    anchor_t: float
    anchor_soc: float
    phases: int
    charge_point_id: str
    connector_id: int
    ac_voltage: float
    charging: bool = True
    ended: simpy.Event | None = None
    changed: simpy.Event | None = None
    stop_reason: str | None = None

    def soc_at(self, t: float) -> float:
        if not self.charging:
            return self.anchor_soc
        return self.curve.soc_after(self.anchor_soc, t - self.anchor_t)

    def energy_kwh_at(self, t: float) -> float:
        """Exact energy delivered since the start (kWh): SoC gained times capacity."""
        return (self.soc_at(t) - self.soc_start) * self.curve.capacity_kwh

    def register_at(self, t: float) -> float:
        return self.register_start + self.energy_kwh_at(t) * 1000.0

    def reanchor(self, t: float, *, charging: bool) -> None:
        """Fix the SoC reached at ``t`` and go on charging (or not) from there."""
        self.anchor_soc = self.soc_at(t)
        self.anchor_t = t
        self.charging = charging
