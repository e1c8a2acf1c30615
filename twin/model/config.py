"""What a scenario says, as typed, frozen data: the model's only input.

The scenario loader (:mod:`chargetwin.twin.scenario`) turns a TOML file into
a :class:`Scenario`; the model (:mod:`chargetwin.twin.model.world`) runs one.
Nothing here reads files or draws random numbers. Times inside the run are
seconds since ``run.start``; durations are seconds; powers kW; energies kWh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "PROFILES",
    "AppBehaviour",
    "ChargePointSpec",
    "ChecksSpec",
    "DemandSpec",
    "Distribution",
    "EVModel",
    "FaultSpec",
    "FleetSpec",
    "IntRange",
    "MaintenanceGeneration",
    "MaintenanceSpec",
    "MaintenanceWindow",
    "NetworkGeneration",
    "NetworkSpec",
    "PowerOption",
    "Range",
    "RunSpec",
    "Scenario",
    "StationSpec",
]

Kind = Literal["AC", "DC"]

PROFILES = ("workplace", "residential", "city", "flat")
"""Named hour-of-day demand profiles (:mod:`chargetwin.twin.model.demand`)."""


@dataclass(frozen=True, slots=True)
class Range:
    """A uniform draw between ``min`` and ``max`` (inclusive)."""

    min: float
    max: float


@dataclass(frozen=True, slots=True)
class IntRange:
    """A uniform integer draw between ``min`` and ``max`` (inclusive)."""

    min: int
    max: int


@dataclass(frozen=True, slots=True)
class Distribution:
    """A positive random duration or quantity: ``exponential`` (mean) or ``lognormal`` (mean, sd)."""

    kind: Literal["exponential", "lognormal", "fixed"]
    mean: float
    sd: float = 0.0


# --- network --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargePointSpec:
    """One charging point: AC (1 or 3 phases at ``voltage`` V per phase) or DC."""

    id: str
    kind: Kind
    max_power_kw: float
    connectors: int
    phases: int = 3
    voltage: float = 230.0


@dataclass(frozen=True, slots=True)
class StationSpec:
    """A station: a physical location with its charging points and tariff."""

    id: str
    name: str
    address: str
    latitude: float
    longitude: float
    tariff_per_kwh: float
    currency: str
    charge_points: tuple[ChargePointSpec, ...]


@dataclass(frozen=True, slots=True)
class PowerOption:
    """One kind of charging point the generator may build, with its weight."""

    kind: Kind
    max_power_kw: float
    weight: float
    phases: int = 3


@dataclass(frozen=True, slots=True)
class NetworkGeneration:
    """How to generate a network from the seed when stations are not listed."""

    stations: int
    charge_points_per_station: IntRange
    connectors_per_charge_point: IntRange
    power_options: tuple[PowerOption, ...]
    center_latitude: float
    center_longitude: float
    radius_km: float
    tariff_ac_per_kwh: float
    tariff_dc_per_kwh: float
    currency: str
    city: str = "Cairo"


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    """Explicit ``stations``, or ``generate`` (exactly one of them is set)."""

    stations: tuple[StationSpec, ...] = ()
    generate: NetworkGeneration | None = None


# --- fleet ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EVModel:
    """An EV model of the fleet mix.

    ``max_dc_kw`` 0 means the car cannot charge on DC. Above ``transition_soc``
    the car's power limit falls linearly to zero at 100 % SoC.
    """

    name: str
    weight: float
    battery_kwh: float
    max_ac_kw: float
    max_dc_kw: float
    ac_phases: int = 3
    transition_soc: float = 0.8
    dc_voltage_min: float = 350.0
    dc_voltage_max: float = 450.0


@dataclass(frozen=True, slots=True)
class AppBehaviour:
    """How users use the mobile app: drivers during their sessions, and browsers who only look at the map.

    ``open_before_driving`` and ``keep_open_while_charging`` are
    probabilities per session; a driver who does not keep the app open
    reopens it every ``reopen_interval`` s on average. Besides them,
    ``browsing_at_peak`` users on average have the app open just to look at
    the map during the busiest hour of the demand profile (other hours in
    proportion to the profile); a browse lasts ``browse_duration`` s on
    average (exponential).
    """

    open_before_driving: float = 0.9
    keep_open_while_charging: float = 0.4
    reopen_interval: float = 1200.0
    browsing_at_peak: int = 0
    browse_duration: float = 180.0


@dataclass(frozen=True, slots=True)
class FleetSpec:
    """The users, their EVs and their habits. Users live within the network's area."""

    users: int
    ev_models: tuple[EVModel, ...]
    app: AppBehaviour = field(default_factory=AppBehaviour)


# --- demand ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemandSpec:
    """Arrivals of drivers wanting to charge.

    ``arrivals_per_day`` is the expected count over 24 h at ``scale`` 1,
    spread over the day by ``profile`` (a name of :data:`PROFILES`, or 24
    hourly weights). AC drivers plan a departure after a dwell drawn from
    ``ac_dwell``; their car stops charging at ``target_soc`` if that comes
    first and waits plugged in. DC drivers stop at ``dc_target_soc``. A driver who finds no free compatible connector
    waits up to ``patience`` s at the nearest usable station, then balks to
    the next one, at most ``max_balks`` times, then gives up.
    """

    arrivals_per_day: float
    profile: str | tuple[float, ...] = "city"
    scale: float = 1.0
    dc_share: float = 0.3
    arrival_soc: Range = Range(0.1, 0.5)
    target_soc: Range = Range(0.8, 1.0)
    dc_target_soc: Range = Range(0.7, 0.85)
    ac_dwell: Distribution = Distribution("lognormal", 3 * 3600.0, 1.5 * 3600.0)
    patience: float = 900.0
    max_balks: int = 2
    search_stations: int = 5
    travel_speed_kmh: float = 25.0


# --- faults and maintenance -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Failures of charging points: time to failure and time to repair."""

    enabled: bool = False
    mtbf: Distribution = Distribution("exponential", 30 * 86400.0)
    mttr: Distribution = Distribution("lognormal", 4 * 3600.0, 2 * 3600.0)
    error_codes: tuple[str, ...] = ("GroundFailure", "InternalError", "OverCurrentFailure",
                                    "PowerMeterFailure", "HighTemperature")


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A station under maintenance from ``start`` for ``duration`` seconds of the run."""

    station_id: str
    start: float
    duration: float
    reason: str = "Scheduled maintenance"


@dataclass(frozen=True, slots=True)
class MaintenanceGeneration:
    """``stations`` random stations each get one window of ``duration`` starting within ``within``."""

    stations: int
    duration: float
    within: Range
    reason: str = "Scheduled maintenance"


@dataclass(frozen=True, slots=True)
class MaintenanceSpec:
    windows: tuple[MaintenanceWindow, ...] = ()
    generate: MaintenanceGeneration | None = None


# --- run and checks -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunSpec:
    """The simulated period and how to run it.

    ``speed`` is simulated seconds per wall second for runs with services
    (None: as fast as possible); the model alone always runs as fast as it can.
    """

    start: datetime
    duration: float
    seed: int = 1
    speed: float | None = 60.0
    meter_interval: float = 60.0
    warmup: float = 0.0


@dataclass(frozen=True, slots=True)
class ChecksSpec:
    """Pass/fail thresholds, used by scenario runs (``chargetwin run``)."""

    max_violations: int = 0
    latency_p99_ms: tuple[tuple[str, float], ...] = ()
    max_clock_lag_p99_s: float | None = None
    max_balk_share: float | None = None
    session_started_deadline_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole scenario file, resolved and checked."""

    name: str
    description: str
    run: RunSpec
    network: NetworkSpec
    fleet: FleetSpec
    demand: DemandSpec
    faults: FaultSpec = field(default_factory=FaultSpec)
    maintenance: MaintenanceSpec = field(default_factory=MaintenanceSpec)
    checks: ChecksSpec = field(default_factory=ChecksSpec)
    source: str = "<memory>"
