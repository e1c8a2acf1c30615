"""Small scenarios built in code for the model's tests (no TOML, no loader)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from chargetwin.twin.model.config import (
    DemandSpec,
    Distribution,
    EVModel,
    FaultSpec,
    FleetSpec,
    IntRange,
    MaintenanceSpec,
    MaintenanceWindow,
    NetworkGeneration,
    NetworkSpec,
    PowerOption,
    RunSpec,
    Scenario,
)

CAIRO = timezone(timedelta(hours=2))

EV_MIX = (
    EVModel("Nissan Leaf 40 kWh", 2, 39.0, 6.6, 46.0, ac_phases=1),
    EVModel("Tesla Model 3 LR", 3, 75.0, 11.0, 170.0),
    EVModel("Hyundai Kona Electric", 2, 64.0, 11.0, 77.0),
    EVModel("Renault Zoe (no DC)", 1, 52.0, 22.0, 0.0),
)


def city(*, stations: int = 30, users: int = 600, arrivals_per_day: float = 1500.0, hours: float = 6.0,
         seed: int = 1, start_hour: int = 16, profile: str = "city", faults: bool = False,
         warmup: float = 0.0, windows: tuple[MaintenanceWindow, ...] = ()) -> Scenario:
    """A generated city of ``stations`` stations with 1-3 charging points of 2 connectors each."""
    generate = NetworkGeneration(
        stations=stations, charge_points_per_station=IntRange(1, 3), connectors_per_charge_point=IntRange(2, 2),
        power_options=(PowerOption("AC", 22.0, 0.5), PowerOption("AC", 7.4, 0.2, phases=1),
                       PowerOption("DC", 60.0, 0.2), PowerOption("DC", 150.0, 0.1)),
        center_latitude=30.0444, center_longitude=31.2357, radius_km=8.0,
        tariff_ac_per_kwh=7.41, tariff_dc_per_kwh=12.0, currency="EGP")
    return Scenario(
        name="test-city", description="built by tests",
        run=RunSpec(datetime(2025, 1, 29, start_hour, 0, tzinfo=CAIRO), hours * 3600.0, seed=seed, warmup=warmup),
        network=NetworkSpec(generate=generate),
        fleet=FleetSpec(users, EV_MIX),
        demand=DemandSpec(arrivals_per_day, profile=profile),
        faults=FaultSpec(enabled=faults, mtbf=Distribution("exponential", 6 * 3600.0),
                         mttr=Distribution("lognormal", 3600.0, 1800.0)),
        maintenance=MaintenanceSpec(windows=windows),
    )


def with_seed(scenario: Scenario, seed: int) -> Scenario:
    return replace(scenario, run=replace(scenario.run, seed=seed))


def with_app(scenario: Scenario, **changes: Any) -> Scenario:
    """``scenario`` with some fields of its ``[fleet.app]`` changed (e.g. ``browsing_at_peak=40``)."""
    app = replace(scenario.fleet.app, **changes)
    return replace(scenario, fleet=replace(scenario.fleet, app=app))
