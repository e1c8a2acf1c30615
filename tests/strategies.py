"""Hypothesis strategies for protocol messages, kept in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from chargetwin.contracts.status import CONNECTOR_CLASS, STATUS_LABELS, count_classes, display_for, station_status
from chargetwin.twin.model import config as cfg

connector_statuses = st.sampled_from(sorted(CONNECTOR_CLASS))
seconds = st.integers(min_value=0, max_value=200 * 3600)


@st.composite
def charger_status_updates(draw: st.DrawFn) -> dict[str, Any]:
    """A conforming charger_status_update: a station of several charging points.

    The message names one charging point; counts, display and status are the
    station's aggregate (DESIGN ruling 2), derived as the backend must.
    """
    station = draw(st.lists(st.lists(connector_statuses, min_size=1, max_size=4), min_size=1, max_size=5))
    maintenance = draw(st.booleans())
    if maintenance:
        station = [["Unavailable"] * len(point) for point in station]
    named = draw(st.integers(min_value=0, max_value=len(station) - 1))
    counts = count_classes(status for point in station for status in point)
    total = sum(counts.values())
    status = station_status(available=counts["available"], total=total,
                            unavailable=counts["unavailable"], under_maintenance=maintenance)
    timestamp = "2025-01-29T12:00:00Z"
    data: dict[str, Any] = {
        "total_connectors": total,
        "available_connectors": counts["available"],
        "connectors_in_use": counts["in_use"],
        "connectors_unavailable": counts["unavailable"],
        "display": display_for(status, available=counts["available"], total=total),
        "connector_status": [{"connector_id": i, "status": s} for i, s in enumerate(station[named], 1)],
        "station_status": STATUS_LABELS[status],
        "is_under_maintenance": maintenance,
        "timestamp": timestamp,
    }
    if maintenance:
        data["maintenance_reason"] = "Scheduled maintenance"
    return {"type": "charger_status_update", "station_id": "STATION001", "charger_id": f"CP{named + 1:03d}",
            "status": status, "data": data, "timestamp": timestamp}


# --- scenarios (chargetwin.twin.scenario) ---------------------------------------------

OCPP_ERROR_CODES = ("ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature",
                    "InternalError", "LocalListConflict", "OtherError", "OverCurrentFailure", "OverVoltage",
                    "PowerMeterFailure", "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage",
                    "WeakSignal")
"""OCPP 1.6 ChargePointErrorCode values a fault may report (all but NoError)."""

names = st.text(min_size=1, max_size=12)
fractions = st.floats(min_value=0.0, max_value=1.0)
positives = st.floats(min_value=0.001, max_value=1e6)
non_negatives = st.floats(min_value=0.0, max_value=1e6)
durations = st.one_of(st.integers(min_value=1, max_value=10**7).map(float), positives)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))])


@st.composite
def soc_ranges(draw: st.DrawFn) -> cfg.Range:
    low, high = sorted((draw(fractions), draw(fractions)))
    return cfg.Range(low, high)


@st.composite
def distributions(draw: st.DrawFn) -> cfg.Distribution:
    kind = draw(st.sampled_from(["exponential", "lognormal", "fixed"]))
    sd = draw(st.one_of(non_negatives, durations)) if kind == "lognormal" else 0.0
    return cfg.Distribution(kind, draw(durations), sd)


@st.composite
def run_specs(draw: st.DrawFn) -> cfg.RunSpec:
    duration = draw(durations)
    start = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=offsets))
    return cfg.RunSpec(start=start, duration=duration, seed=draw(st.integers(0, 2**63 - 1)),
                       speed=draw(st.one_of(st.none(), positives)), meter_interval=draw(durations),
                       warmup=duration * draw(st.floats(0.0, 0.9)))


@st.composite
def charge_points(draw: st.DrawFn, cp_id: str, kind: Any) -> cfg.ChargePointSpec:
    return cfg.ChargePointSpec(cp_id, kind, draw(positives), draw(st.integers(1, 4)),
                               phases=draw(st.sampled_from([1, 3])), voltage=draw(positives))


@st.composite
def explicit_networks(draw: st.DrawFn) -> cfg.NetworkSpec:
    """Stations with unique ids, charge point ids unique across them, both AC and DC present."""
    kinds = draw(st.lists(st.lists(st.sampled_from(["AC", "DC"]), min_size=1, max_size=3), min_size=1, max_size=4))
    kinds[0] = ["AC", "DC", *kinds[0]]
    numbers = iter(range(1, 100))
    stations = tuple(
        cfg.StationSpec(f"STATION{i:03d}", draw(names), draw(names), draw(st.floats(-90, 90)),
                        draw(st.floats(-180, 180)), draw(non_negatives), draw(st.sampled_from(["EGP", "EUR"])),
                        tuple(draw(charge_points(f"CP{next(numbers):03d}", kind)) for kind in cps))
        for i, cps in enumerate(kinds, start=1))
    return cfg.NetworkSpec(stations=stations)


@st.composite
def int_ranges(draw: st.DrawFn) -> cfg.IntRange:
    low, high = sorted((draw(st.integers(1, 4)), draw(st.integers(1, 4))))
    return cfg.IntRange(low, high)


@st.composite
def generated_networks(draw: st.DrawFn) -> cfg.NetworkSpec:
    options = (cfg.PowerOption("AC", draw(positives), draw(positives), draw(st.sampled_from([1, 3]))),
               cfg.PowerOption("DC", draw(positives), draw(positives)))
    return cfg.NetworkSpec(generate=cfg.NetworkGeneration(
        stations=draw(st.integers(1, 2000)), charge_points_per_station=draw(int_ranges()),
        connectors_per_charge_point=draw(int_ranges()), power_options=options,
        center_latitude=draw(st.floats(-90, 90)), center_longitude=draw(st.floats(-180, 180)),
        radius_km=draw(positives), tariff_ac_per_kwh=draw(non_negatives), tariff_dc_per_kwh=draw(non_negatives),
        currency="EGP", city=draw(names)))


@st.composite
def ev_models(draw: st.DrawFn, name: str) -> cfg.EVModel:
    v_low, v_high = sorted((draw(positives), draw(positives)))
    return cfg.EVModel(name, draw(positives), draw(positives), draw(positives), draw(non_negatives),
                       ac_phases=draw(st.sampled_from([1, 2, 3])),
                       transition_soc=draw(st.floats(0.01, 0.99)), dc_voltage_min=v_low, dc_voltage_max=v_high)


@st.composite
def fleets(draw: st.DrawFn) -> cfg.FleetSpec:
    model_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    models = [draw(ev_models(name)) for name in model_names]
    models[0] = cfg.EVModel(models[0].name, models[0].weight, models[0].battery_kwh, models[0].max_ac_kw,
                            max_dc_kw=draw(positives))  # one model charges on DC
    app = cfg.AppBehaviour(draw(fractions), draw(fractions), draw(durations))
    return cfg.FleetSpec(draw(st.integers(1, 10**6)), tuple(models), app)


@st.composite
def demands(draw: st.DrawFn) -> cfg.DemandSpec:
    weights = st.lists(non_negatives, min_size=24, max_size=24).filter(lambda w: sum(w) > 0).map(tuple)
    return cfg.DemandSpec(
        arrivals_per_day=draw(non_negatives), profile=draw(st.one_of(st.sampled_from(cfg.PROFILES), weights)),
        scale=draw(non_negatives), dc_share=draw(fractions), arrival_soc=draw(soc_ranges()),
        target_soc=draw(soc_ranges()), dc_target_soc=draw(soc_ranges()), ac_dwell=draw(distributions()),
        patience=draw(non_negatives), max_balks=draw(st.integers(0, 5)), search_stations=draw(st.integers(1, 10)),
        travel_speed_kmh=draw(positives))


@st.composite
def maintenance_specs(draw: st.DrawFn, run: cfg.RunSpec, network: cfg.NetworkSpec) -> cfg.MaintenanceSpec:
    """Windows inside the run on distinct stations (so none overlap), and maybe generated ones."""
    count = network.generate.stations if network.generate else len(network.stations)
    ids = [f"STATION{n:03d}" for n in range(1, min(count, 5) + 1)]
    chosen = draw(st.lists(st.sampled_from(ids), unique=True, max_size=len(ids)))
    windows = []
    for station_id in chosen:
        start = run.duration * draw(st.floats(0.0, 0.9))
        length = max((run.duration - start) * draw(st.floats(0.01, 0.99)), 1e-9)
        windows.append(cfg.MaintenanceWindow(station_id, start, length, draw(names)))
    generate = None
    if draw(st.booleans()):
        latest = run.duration * draw(st.floats(0.0, 0.6))
        generate = cfg.MaintenanceGeneration(draw(st.integers(1, count)), run.duration * draw(st.floats(0.001, 0.3)),
                                             cfg.Range(latest * draw(st.floats(0.0, 1.0)), latest), draw(names))
    return cfg.MaintenanceSpec(tuple(windows), generate)


@st.composite
def checks_specs(draw: st.DrawFn) -> cfg.ChecksSpec:
    latency = draw(st.dictionaries(names, positives, max_size=4))
    return cfg.ChecksSpec(draw(st.integers(0, 100)), tuple(latency.items()),
                          draw(st.one_of(st.none(), non_negatives)), draw(st.one_of(st.none(), fractions)),
                          draw(positives))


@st.composite
def scenarios(draw: st.DrawFn) -> cfg.Scenario:
    """Any well-formed scenario: one the loader accepts, every field drawn."""
    run = draw(run_specs())
    network = draw(st.one_of(explicit_networks(), generated_networks()))
    codes = draw(st.lists(st.sampled_from(OCPP_ERROR_CODES), min_size=1, max_size=4, unique=True))
    return cfg.Scenario(
        name=draw(names), description=draw(st.text(max_size=40)), run=run, network=network, fleet=draw(fleets()),
        demand=draw(demands()),
        faults=cfg.FaultSpec(draw(st.booleans()), draw(distributions()), draw(distributions()), tuple(codes)),
        maintenance=draw(maintenance_specs(run, network)), checks=draw(checks_specs()), source="<round-trip>")
