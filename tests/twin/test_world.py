"""The world model: conservation, bounds, registers, determinism, demand, queues, faults, commands."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import itertools
import json
import math
import os
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from model_scenarios import city, with_app, with_seed

from chargetwin.twin.model import events as ev
from chargetwin.twin.model.config import MaintenanceWindow
from chargetwin.twin.model.demand import PROFILE_WEIGHTS, arrival_times, expected_arrivals, hourly_rates
from chargetwin.twin.model.exceptions import UnknownTargetError
from chargetwin.twin.model.kpi import KpiCollector
from chargetwin.twin.model.world import World, browsing_demand


def run(scenario, until=None):  # type: ignore[no-untyped-def]
    events: list[ev.Event] = []
    world = World(scenario, sinks=[events.append])
    kpis = KpiCollector(world)
    world.subscribe(kpis)
    world.run(until)
    return world, events, kpis.result()


@pytest.fixture(scope="module")
def busy_city():  # type: ignore[no-untyped-def]
    return run(city(faults=True, hours=8.0))


def of(events: list[ev.Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if type(e) is kind]


def test_energy_is_conserved(busy_city) -> None:  # type: ignore[no-untyped-def]
    """Meter energy of every transaction equals its SoC gain times the battery, to the Wh."""
    world, events, _ = busy_city
    started = {e.session_id: e for e in of(events, ev.TransactionStarted)}
    stopped = of(events, ev.TransactionStopped)
    assert len(stopped) > 100
    total_meter = total_soc = 0.0
    for stop in stopped:
        start = started[stop.session_id]
        capacity = world.drivers[stop.user_id - 1].ev.battery_kwh
        soc_energy = (stop.soc - start.soc) * capacity * 1000
        assert stop.energy_wh == stop.meter_stop - start.meter_start
        assert abs(stop.energy_wh - soc_energy) < 1.0
        total_meter += stop.energy_wh
        total_soc += soc_energy
    assert abs(total_meter - total_soc) < len(stopped)


def test_soc_stays_within_bounds(busy_city) -> None:  # type: ignore[no-untyped-def]
    _, events, _ = busy_city
    samples = of(events, ev.MeterSample)
    assert samples
    assert all(0.0 <= s.soc < 1.0 for s in samples)
    assert all(0.0 <= s.soc < 1.0 for s in of(events, ev.TransactionStopped))


def test_registers_are_whole_wh_and_never_go_backwards(busy_city) -> None:  # type: ignore[no-untyped-def]
    _, events, _ = busy_city
    readings: dict[tuple[str, int], list[int]] = defaultdict(list)
    for e in events:
        if isinstance(e, ev.TransactionStarted):
            readings[(e.charge_point_id, e.connector_id)].append(e.meter_start)
        elif isinstance(e, ev.MeterSample):
            readings[(e.charge_point_id, e.connector_id)].append(e.register_wh)
        elif isinstance(e, ev.TransactionStopped):
            readings[(e.charge_point_id, e.connector_id)].append(e.meter_stop)
    assert len(readings) > 20
    for values in readings.values():
        assert all(type(v) is int for v in values)
        assert values == sorted(values)


def test_meter_samples_come_every_interval_of_a_transaction(busy_city) -> None:  # type: ignore[no-untyped-def]
    _, events, _ = busy_city
    times: dict[int, list[float]] = defaultdict(list)
    for sample in of(events, ev.MeterSample):
        times[sample.session_id].append(sample.t)
    gaps = {b - a for ts in times.values() for a, b in itertools.pairwise(ts)}
    assert gaps == {60.0}


def test_voltage_current_and_power_agree(busy_city) -> None:  # type: ignore[no-untyped-def]
    _, events, _ = busy_city
    for s in of(events, ev.MeterSample):
        phases = s.phases or 1
        assert s.voltage * s.current * phases == pytest.approx(s.power_kw * 1000, rel=1e-9, abs=1e-6)


def test_same_seed_same_kpis_other_seed_other_kpis() -> None:
    scenario = city(hours=3.0)
    first, second, other = (run(s)[2] for s in (scenario, scenario, with_seed(scenario, 2)))
    assert first == second
    assert first != other
    assert first["sessions"]["started"] > 0


def test_arrival_count_lies_within_statistical_bounds() -> None:
    """Counts of a Poisson process with mean m fall within m +/- 4 sqrt(m) (p > 0.9999)."""
    import random

    scenario = city(arrivals_per_day=20_000, hours=24.0, start_hour=0)
    demand, run_spec = scenario.demand, scenario.run
    expected = expected_arrivals(demand, run_spec.start, run_spec.duration)
    assert expected == pytest.approx(20_000)
    for seed in range(5):
        count = sum(1 for _ in arrival_times(demand, run_spec.start, run_spec.duration, random.Random(seed)))
        assert abs(count - expected) < 4 * math.sqrt(expected)


def test_arrivals_follow_the_hourly_profile() -> None:
    import random

    scenario = city(arrivals_per_day=50_000, hours=24.0, start_hour=0, profile="residential")
    demand, run_spec = scenario.demand, scenario.run
    per_hour = [0] * 24
    for t in arrival_times(demand, run_spec.start, run_spec.duration, random.Random(3)):
        per_hour[int(t // 3600)] += 1
    from chargetwin.twin.model.demand import hourly_rates

    for count, rate in zip(per_hour, hourly_rates(demand), strict=True):
        assert abs(count - rate * 3600) < 5 * math.sqrt(rate * 3600) + 1


def test_littles_law_holds_in_steady_state() -> None:
    """L = lambda W: cars plugged in on average = plug-in rate x mean time plugged in."""
    scenario = city(stations=60, users=3000, arrivals_per_day=1200, hours=72.0, profile="flat",
                    warmup=12 * 3600.0)
    law = run(scenario)[2]["littles_law"]
    assert law["mean_cars_plugged_in"] > 5
    assert law["mean_cars_plugged_in"] == pytest.approx(law["plug_ins_per_hour"] * law["mean_plugged_hours"],
                                                        rel=0.05)


def test_a_fault_ends_the_session_with_an_error(busy_city) -> None:  # type: ignore[no-untyped-def]
    _, events, kpis = busy_city
    faulted = [e for e in of(events, ev.TransactionStopped) if e.error_code is not None]
    assert faulted and kpis["sessions_ended_by_fault"] == len(faulted)
    assert {e.reason for e in faulted} == {"Other"}
    faults = {(f.charge_point_id, f.t) for f in of(events, ev.Fault)}
    assert all((e.charge_point_id, e.t) in faults for e in faulted)


def test_nobody_plugs_into_a_faulted_charge_point(busy_city) -> None:  # type: ignore[no-untyped-def]
    _, events, _ = busy_city
    faulted: set[str] = set()
    for e in events:
        if isinstance(e, ev.Fault):
            faulted.add(e.charge_point_id)
        elif isinstance(e, ev.Repair):
            faulted.discard(e.charge_point_id)
        elif isinstance(e, ev.PlugIn):
            assert e.charge_point_id not in faulted


def test_maintenance_makes_a_station_unavailable_and_drivers_go_elsewhere() -> None:
    scenario = city(hours=6.0, arrivals_per_day=3000, windows=())
    station = World(scenario).network.stations[0].id
    scenario = replace(scenario, maintenance=replace(scenario.maintenance, windows=(
        MaintenanceWindow(station, 3600.0, 7200.0),)))
    _, events, kpis = run(scenario)
    assert kpis["maintenance_windows"] == 1
    during = [e for e in events if 3600.0 < e.t < 3600.0 + 7200.0]
    assert not [e for e in during if isinstance(e, ev.PlugIn | ev.Arrival) and e.station_id == station]
    changes = [e for e in during if isinstance(e, ev.ConnectorStatusChanged) and e.station_id == station]
    freed = [e for e in changes if e.previous in ("Finishing", "Available", "Unavailable", "Faulted")]
    assert freed and {e.status for e in freed} <= {"Unavailable", "Faulted"}  # nobody is let in
    assert any(isinstance(e, ev.MaintenanceEnded) and e.t == 3600.0 + 7200.0 for e in events)
    reopened = [e for e in events if isinstance(e, ev.ConnectorStatusChanged) and e.station_id == station
                and e.t == 3600.0 + 7200.0]
    assert reopened and {e.status for e in reopened} == {"Available"}


def test_waits_and_balks_are_recorded_when_demand_exceeds_capacity() -> None:
    kpis = run(city(stations=5, arrivals_per_day=6000, hours=4.0))[2]
    assert kpis["balks"] > 0
    assert kpis["waits_s"]["p95"] > 0
    assert kpis["gave_up"] > 0


def test_remote_commands_drive_a_charging_point() -> None:
    world = World(city(hours=1.0, arrivals_per_day=1))
    cp = next(iter(world.charge_points.values()))
    assert world.remote_start(cp.id, 1, "TAG1") is False  # nobody plugged in
    assert world.remote_stop(cp.id, 1) is False
    seen: list[ev.Event] = []
    world.subscribe(seen.append)
    assert world.change_availability(cp.id, 0, operative=False) == "Accepted"
    assert {e.status for e in seen if isinstance(e, ev.ConnectorStatusChanged)} == {"Unavailable"}
    assert world.change_availability(cp.id, 0, operative=True) == "Accepted"
    assert cp.connectors[0].status == "Available"
    with pytest.raises(UnknownTargetError, match="no charging point 'CP999999'"):
        world.remote_start("CP999999", 1, "TAG1")
    with pytest.raises(UnknownTargetError, match=r"connectors 1\.\.2, not 7"):
        world.remote_stop(cp.id, 7)


def test_a_person_starts_and_stops_from_the_app() -> None:
    """RemoteStart on a free connector with a user's id tag plugs in that user's car; only a stop ends it."""
    world = World(city(hours=6.0, arrivals_per_day=1))
    driver = world.drivers[0]
    cp = next(cp for cp in world.charge_points.values() if driver.can_charge(cp.kind))
    seen: list[ev.Event] = []
    world.subscribe(lambda e: seen.append(e) if getattr(e, "user_id", driver.user_id) == driver.user_id
                    and getattr(e, "charge_point_id", cp.id) == cp.id else None)
    assert world.remote_start(cp.id, 1, "NOT-A-USER") is False
    assert world.remote_start(cp.id, 1, driver.id_tag) is True
    assert world.remote_start(cp.id, 2, driver.id_tag) is False  # one car per person
    world.run(4 * 3600.0)
    assert [type(e).__name__ for e in seen[:4]] == ["PlugIn", "ConnectorStatusChanged", "ConnectorStatusChanged",
                                                    "TransactionStarted"]
    assert not any(isinstance(e, ev.TransactionStopped) for e in seen)  # a full car waits: only a stop ends it
    assert world.remote_stop(cp.id, 1) is True
    world.run(4 * 3600.0 + 120)
    stopped = [e for e in seen if isinstance(e, ev.TransactionStopped)]
    assert [e.reason for e in stopped] == ["Remote"]
    assert cp.connectors[0].status == "Available" and not driver.busy


def test_reserved_users_never_set_out_by_themselves() -> None:
    world = World(city(hours=4.0, users=50, arrivals_per_day=20_000), reserved_users=10)
    plugged: set[int] = set()
    world.subscribe(lambda e: plugged.add(e.user_id) if isinstance(e, ev.PlugIn) else None)
    world.run()
    assert len(plugged) > 20 and not plugged & set(range(1, 11))


def test_a_power_cap_slows_running_sessions() -> None:
    scenario = city(hours=2.0)
    world = World(scenario)
    world.run(3600.0)
    session = next(s for s in world.sessions.values() if s.charging and s.curve.limit_kw > 5)
    before = world.sample(session, world.env.now).power_kw
    world.set_power_cap(session.charge_point_id, 3.0)
    after = world.sample(session, world.env.now)
    assert after.power_kw <= 3.0 < before
    world.run(7200.0)  # and the world runs on with the capped curve


def test_model_code_never_touches_the_clock_or_the_network() -> None:
    """The model imports no clock, sleep, socket, asyncio or web framework (STYLE: pure model)."""
    forbidden = {"time", "asyncio", "socket", "threading", "fastapi", "httpx", "websockets", "redis", "ocpp"}
    import chargetwin.twin.model as package

    for path in Path(package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"
            if isinstance(node, ast.Attribute) and node.attr in {"now", "utcnow", "today"}:
                assert not (isinstance(node.value, ast.Name) and node.value.id in {"datetime", "date"}), path.name


# --- browsers: users who open the app only to look at the map --------------------------

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "city-3h-without-browsers.json"
"""Events and KPIs of ``city(hours=3.0, faults=True)`` recorded before browsers existed.

Regenerate after a change to the model that is meant to change runs: ``CHARGETWIN_UPDATE_GOLDEN=1``.
"""

APP_EVENTS = (ev.AppOpened, ev.AppClosed)


def canonical(event: ev.Event) -> str:
    """An event as one line of text; floats to 9 significant digits (C libraries may differ in the last bit)."""
    values = (getattr(event, f.name) for f in dataclasses.fields(event))
    return f"{type(event).__name__}({','.join(f'{v:.9g}' if isinstance(v, float) else str(v) for v in values)})"


def test_without_browsers_a_run_is_exactly_what_it_was_before_them() -> None:
    _, events, kpis = run(city(hours=3.0, faults=True))
    digest = hashlib.sha256("\n".join(map(canonical, events)).encode()).hexdigest()
    if os.environ.get("CHARGETWIN_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps({"events": len(events), "digest": digest, "kpis": kpis}, indent=1) + "\n",
                          encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert (len(events), digest) == (golden["events"], golden["digest"])
    assert {key: kpis[key] for key in golden["kpis"]} == golden["kpis"]
    assert kpis["browses"] == 0 and kpis["apps_opened"] > 0


def test_browsers_change_nothing_but_app_events() -> None:
    """Browsers draw from their own random stream and never touch a trip: the rest of the run stays the same."""
    scenario = city(hours=3.0, faults=True)
    plain, browsed = (run(s) for s in (scenario, with_app(scenario, browsing_at_peak=40)))
    assert ([canonical(e) for e in plain[1] if not isinstance(e, APP_EVENTS)]
            == [canonical(e) for e in browsed[1] if not isinstance(e, APP_EVENTS)])
    assert browsed[2]["browses"] > 100
    # a trip that starts during a browse finds its app open already: it opens nothing
    assert plain[2]["apps_opened"] < browsed[2]["apps_opened"] <= plain[2]["apps_opened"] + browsed[2]["browses"]
    assert browsed[2]["peak_apps_open"] > plain[2]["peak_apps_open"]


def test_the_busiest_hour_brings_browsing_at_peak_over_browse_duration_browses_a_second() -> None:
    """Little's law (L = lambda W) at the profile's peak; every other hour in proportion to its weight."""
    app = with_app(city(), browsing_at_peak=50, browse_duration=180.0).fleet.app
    for profile in ("residential", "flat", tuple(range(24))):
        demand = replace(city().demand, profile=profile, scale=3.0)
        rates = hourly_rates(browsing_demand(demand, app))
        weights = PROFILE_WEIGHTS[profile] if isinstance(profile, str) else profile
        assert max(rates) == pytest.approx(50 / 180, rel=1e-12)
        assert rates == pytest.approx([50 / 180 * w / max(weights) for w in weights], rel=1e-12)


def test_browses_follow_the_demand_profile() -> None:
    scenario = with_app(city(hours=24.0, start_hour=0, arrivals_per_day=0, profile="residential"),
                        browsing_at_peak=40, browse_duration=180.0)
    _, events, _ = run(scenario)
    per_hour = [0] * 24
    for e in of(events, ev.AppOpened):
        per_hour[int(e.t // 3600)] += 1
    for count, rate in zip(per_hour, hourly_rates(browsing_demand(scenario.demand, scenario.fleet.app)),
                           strict=True):
        assert abs(count - rate * 3600) < 5 * math.sqrt(rate * 3600) + 1


def test_the_mean_number_of_browsers_is_browsing_at_peak() -> None:
    """On a flat profile, without trips, the browsers are an M/M/inf queue: Poisson(rho = 40) in steady state.

    Its autocovariance is rho exp(-mu tau) (mu = 1 / 180 s), so the time average
    over L seconds has the variance 2 rho / (mu L) (1 - (1 - exp(-mu L)) / (mu L)).
    After a warmup of 10 mean browses (a bias of rho exp(-10) < 0.002) the
    average must lie within 4 standard deviations of rho (normal approximation:
    two-sided p < 1e-4; L = 7.5 h gives 40 +/- 2.9).
    """
    rho, mean, warmup, hours = 40, 180.0, 1800.0, 8.0
    scenario = with_app(city(hours=hours, arrivals_per_day=0, profile="flat"), browsing_at_peak=rho,
                        browse_duration=mean)
    _, events, kpis = run(scenario)
    area, last, now_open, peak = 0.0, warmup, 0, 0
    for e in events:
        if isinstance(e, APP_EVENTS):
            area += now_open * max(0.0, e.t - last)
            last = max(last, e.t)
            now_open += 1 if isinstance(e, ev.AppOpened) else -1
            peak = max(peak, now_open)
    end = hours * 3600.0
    area += now_open * (end - last)
    mu_l = (end - warmup) / mean
    sd = math.sqrt(2 * rho / mu_l * (1 - (1 - math.exp(-mu_l)) / mu_l))
    assert abs(area / (end - warmup) - rho) < 4 * sd
    assert kpis["browses"] == kpis["apps_opened"] == len(of(events, ev.AppOpened))
    assert kpis["peak_apps_open"] == peak


def test_only_free_users_browse_and_a_browse_with_nobody_free_is_skipped() -> None:
    """Users on a trip, with the app open, or reserved for people never start a browse."""
    scenario = with_app(city(hours=2.0, users=6, arrivals_per_day=0, profile="flat"), browsing_at_peak=30)
    world = World(scenario, reserved_users=2)
    events: list[ev.Event] = []
    world.subscribe(events.append)
    collector = KpiCollector(world)
    world.subscribe(collector)
    world.run()
    kpis = collector.result()
    assert {e.user_id for e in of(events, ev.AppOpened)} == {3, 4, 5, 6}
    assert kpis["peak_apps_open"] == 4
    assert kpis["browses"] < expected_arrivals(browsing_demand(scenario.demand, scenario.fleet.app),
                                               scenario.run.start, scenario.run.duration) / 2


def test_a_trip_takes_over_a_browsers_app_and_the_browse_never_closes_it() -> None:
    """A browse's AppClosed never comes while its user is on a trip: the trip closes the app when they leave.

    Drivers here open the app before driving and keep it open while charging,
    so a trip's app is open from its start to the Departure, closed right after it.
    """
    scenario = with_app(city(users=150, hours=6.0, arrivals_per_day=3000), browsing_at_peak=60,
                        browse_duration=1800.0, open_before_driving=1.0, keep_open_while_charging=1.0)
    world = World(scenario)
    last: dict[int, ev.Event] = {}
    browsing: set[int] = set()
    taken_over: set[int] = set()
    wrong: list[ev.Event] = []

    def watch(e: ev.Event) -> None:
        user_id = getattr(e, "user_id", None)
        if user_id is None:
            return
        driver = world.drivers[user_id - 1]
        if isinstance(e, APP_EVENTS) and isinstance(last.get(user_id), type(e)):
            wrong.append(e)  # opened twice or closed twice in a row
        if isinstance(e, ev.AppOpened) and world.is_browsing(user_id):
            browsing.add(user_id)
        elif isinstance(e, ev.AppClosed):
            browsing.discard(user_id)
            if driver.busy and not isinstance(last.get(user_id), ev.Departure):
                wrong.append(e)
        elif driver.busy and user_id in browsing:
            taken_over.add(user_id)
        if isinstance(e, (*APP_EVENTS, ev.Departure)):
            last[user_id] = e

    world.subscribe(watch)
    world.run()
    assert wrong == []
    assert len(taken_over) > 10
