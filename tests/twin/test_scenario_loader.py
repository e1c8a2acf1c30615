"""Scenario files: the bundled scenarios, the schema, the loader's errors and round trips."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from strategies import OCPP_ERROR_CODES, scenarios

from chargetwin.twin.model import config as cfg
from chargetwin.twin.scenario import (
    ScenarioError,
    ScenarioInvalidError,
    ScenarioReadError,
    ScenarioSyntaxError,
    bundled_scenarios,
    dumps_scenario,
    format_duration,
    load_scenario,
    loads_scenario,
    parse_duration,
)
from chargetwin.twin.scenario._schema import dotted_key, schema_document, to_json
from chargetwin.twin.scenario.durations import DURATION_PATTERN

BAD = Path(__file__).parent / "fixtures" / "bad-scenarios"
BAD_FILES = sorted(BAD.glob("*.toml"))
BUNDLED = ("smoke", "city-evening-peak", "maintenance-storm", "city-24h", "steady-state")

MINIMAL = """
[scenario]
name = "minimal"

[run]
start = 2025-01-29T18:00:00+02:00
duration = "15m"

[network.generate]
stations = 3
charge_points_per_station = { min = 1, max = 2 }
connectors_per_charge_point = { min = 1, max = 2 }
power_options = [{ kind = "AC", max_power_kw = 22.0, weight = 1 }, { kind = "DC", max_power_kw = 60.0, weight = 1 }]
center_latitude = 30.0444
center_longitude = 31.2357
radius_km = 5.0
tariff_ac_per_kwh = 3.39
tariff_dc_per_kwh = 6.55
currency = "EGP"

[fleet]
users = 10
ev_models = [{ name = "MG ZS EV", weight = 1, battery_kwh = 72.0, max_ac_kw = 7.0, max_dc_kw = 90.0 }]

[demand]
arrivals_per_day = 500
"""
"""Every required key and nothing else: all the rest comes from the defaults."""


def expectation(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <text>'"
    return first.removeprefix("# expect: ")


def min_connectors(network: cfg.NetworkSpec) -> int:
    """Connectors the network has at least: counted, or the generator's lower bounds."""
    if network.generate is None:
        return sum(cp.connectors for s in network.stations for cp in s.charge_points)
    gen = network.generate
    return gen.stations * gen.charge_points_per_station.min * gen.connectors_per_charge_point.min


def station_count(network: cfg.NetworkSpec) -> int:
    return network.generate.stations if network.generate else len(network.stations)


def kinds(network: cfg.NetworkSpec) -> set[str]:
    if network.generate:
        return {o.kind for o in network.generate.power_options}
    return {cp.kind for s in network.stations for cp in s.charge_points}


def expected_arrivals(scenario: cfg.Scenario) -> float:
    """Arrivals over a run of whole days (then the profile's shape does not matter)."""
    days = scenario.run.duration / 86400
    assert days == int(days)
    return scenario.demand.arrivals_per_day * scenario.demand.scale * days


# --- the bundled scenarios -----------------------------------------------------------


def test_the_bundled_scenarios_are_all_there() -> None:
    assert sorted(bundled_scenarios()) == sorted(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_scenario_loads(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    assert scenario.source == str(bundled_scenarios()[name])
    assert scenario.run.start.utcoffset() == timedelta(hours=2)  # Cairo


@pytest.mark.parametrize("name", BUNDLED)
def test_every_bundled_scenario_passes_the_reference_validator_too(name: str) -> None:
    document = tomllib.loads(bundled_scenarios()[name].read_text(encoding="utf-8"))
    Draft202012Validator(schema_document()).validate(to_json(document, (), []))


def test_smoke_is_small_explicit_and_quick() -> None:
    smoke = load_scenario("smoke")
    assert 2 <= len(smoke.network.stations) <= 3
    assert kinds(smoke.network) == {"AC", "DC"}
    assert 4 <= min_connectors(smoke.network) <= 12
    assert 20 <= smoke.fleet.users <= 100
    assert 10 * 60 <= smoke.run.duration <= 20 * 60
    assert smoke.run.speed == 60
    assert smoke.run.seed == 42
    arrivals = smoke.demand.arrivals_per_day * smoke.demand.scale * smoke.run.duration / 86400
    assert smoke.demand.profile == "flat" and arrivals >= 5  # several sessions start
    assert smoke.fleet.app.browsing_at_peak > 0  # and users who only look at the map


def test_city_evening_peak_has_the_sizes_of_the_issue() -> None:
    peak = load_scenario("city-evening-peak")
    assert station_count(peak.network) >= 150
    assert min_connectors(peak.network) >= 1000
    assert peak.fleet.users >= 5000
    assert (peak.run.start.hour, peak.run.start.minute) == (16, 0)
    assert peak.run.duration == 5 * 3600  # 16:00-21:00 local
    assert peak.demand.profile == "city"
    assert peak.checks.latency_p99_ms and peak.checks.max_balk_share is not None


def test_maintenance_storm_closes_many_stations_at_a_busy_hour_and_fails_often() -> None:
    storm = load_scenario("maintenance-storm")
    assert storm.maintenance.generate is not None
    closed = storm.maintenance.generate.stations + len(storm.maintenance.windows)
    assert closed >= 0.25 * station_count(storm.network)
    assert 16 <= storm.run.start.hour <= 19  # the evening rush
    assert storm.faults.enabled and storm.faults.mtbf.mean <= 86400


def test_city_24h_is_the_benchmark_day() -> None:
    day = load_scenario("city-24h")
    gen = day.network.generate
    assert gen is not None and gen.stations == 1000
    assert gen.charge_points_per_station.min == gen.charge_points_per_station.max == 2
    assert min_connectors(day.network) == 4000
    assert day.run.duration == 86400
    assert expected_arrivals(day) >= 20_000
    assert day.demand.profile == "city"
    assert day.faults.enabled and day.faults.mtbf.mean >= 7 * 86400  # realistic, not a storm
    assert day.network.generate is not None and day.network.generate.currency == "EGP"


def test_city_24h_states_its_sources() -> None:
    text = bundled_scenarios()["city-24h"].read_text(encoding="utf-8")
    for source in ("Vehicle Technologies Office", "Department for Transport", "EVnetNL", "Joint Research Centre"):
        assert source in text


def test_steady_state_is_flat_calm_and_long() -> None:
    steady = load_scenario("steady-state")
    assert steady.demand.profile == "flat"
    assert not steady.faults.enabled
    assert steady.maintenance == cfg.MaintenanceSpec()
    assert steady.run.duration >= 86400 and 0 < steady.run.warmup < steady.run.duration / 4
    per_hour = steady.demand.arrivals_per_day * steady.demand.scale / 24
    busy = per_hour * max(steady.demand.ac_dwell.mean, 3600) / 3600  # pessimistic: every session AC
    assert busy < 0.5 * min_connectors(steady.network)  # well below capacity


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_scenarios_round_trip_through_toml(name: str) -> None:
    scenario = load_scenario(name)
    assert loads_scenario(dumps_scenario(scenario), source=scenario.source) == scenario


# --- malformed files -----------------------------------------------------------------


def test_there_are_enough_malformed_fixtures() -> None:
    assert len(BAD_FILES) >= 15


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_a_malformed_file_says_what_is_wrong_and_where(path: Path) -> None:
    expected = expectation(path)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert path.name in message
    assert expected in message
    assert "Traceback" not in message and "jsonschema" not in message
    assert info.value.source == str(path)
    assert all(line.startswith(str(path)) for line in message.splitlines())


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.stem for p in BAD_FILES])
def test_each_expectation_names_a_key_or_a_place(path: Path) -> None:
    expected = expectation(path)
    if path.stem not in ("not-utf8", "syntax-missing-equals"):
        assert expected.split(":", 1)[0] in {p.key for p in _problems(path)}


def _problems(path: Path) -> tuple[Any, ...]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value.problems


def test_a_syntax_error_carries_line_and_column() -> None:
    with pytest.raises(ScenarioSyntaxError) as info:
        loads_scenario('[run]\nduration = "15m"\nstart 2025\n', source="s.toml")
    assert (info.value.line, info.value.column) == (3, 7)
    assert str(info.value).startswith("s.toml:3:7: invalid TOML: ")
    assert info.value.source == "s.toml"


def test_a_syntax_error_at_the_end_of_the_file_points_there() -> None:
    with pytest.raises(ScenarioSyntaxError) as info:
        loads_scenario('[run]\nx = [1, 2', source="s.toml")
    assert (info.value.line, info.value.column) == (2, 10)


def test_every_problem_is_reported_each_on_its_own_line() -> None:
    text = MINIMAL.replace("users = 10", 'users = "ten"').replace('duration = "15m"', 'duration = "15 min"')
    with pytest.raises(ScenarioInvalidError) as info:
        loads_scenario(text, source="two.toml")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert {line.split(": ")[1] for line in lines} == {"run.duration", "fleet.users"}
    assert info.value.key == info.value.problems[0].key


def test_rules_beyond_the_schema_are_all_reported_too() -> None:
    text = MINIMAL + "arrival_soc = { min = 0.9, max = 0.1 }\ntarget_soc = { min = 1.0, max = 0.5 }\n"
    with pytest.raises(ScenarioInvalidError) as info:
        loads_scenario(text, source="two.toml")
    assert [p.key for p in info.value.problems] == ["demand.arrival_soc", "demand.target_soc"]


def test_an_unknown_key_gets_the_list_of_keys_when_nothing_is_close() -> None:
    with pytest.raises(ScenarioInvalidError) as info:
        loads_scenario(MINIMAL.replace("[fleet]", "[fleet]\nzzz = 1"), source="s.toml")
    assert info.value.problem == "unknown key; the keys allowed here are app, ev_models, users"


def test_a_maintenance_window_may_open_at_a_date_time() -> None:
    text = MINIMAL + ('\n[[maintenance.windows]]\nstation_id = "STATION002"\n'
                      'start = 2025-01-29T16:05:00Z\nduration = "5m"\n')
    window = loads_scenario(text).maintenance.windows[0]
    assert (window.start, window.duration) == (300.0, 300.0)


@pytest.mark.parametrize("stations, station_id, known", [
    (9, "STATION009", True), (9, "STATION010", False), (9, "STATION09", False), (1000, "STATION1000", True),
    (1000, "STATION999", True), (1000, "STATION0999", False), (5, "STATION000", False),
])
def test_maintenance_on_a_generated_network_names_stations_by_number(stations: int, station_id: str,
                                                                     known: bool) -> None:
    text = MINIMAL.replace("stations = 3", f"stations = {stations}") + (
        f'\n[[maintenance.windows]]\nstation_id = "{station_id}"\nstart = "1m"\nduration = "5m"\n')
    if known:
        assert loads_scenario(text).maintenance.windows[0].station_id == station_id
    else:
        with pytest.raises(ScenarioInvalidError, match="in the generated network"):
            loads_scenario(text)


def test_a_quoted_start_is_read_like_a_toml_date_time() -> None:
    quoted = loads_scenario(MINIMAL.replace("start = 2025-01-29T18:00:00+02:00", 'start = "2025-01-29T18:00:00+02:00"'))
    assert quoted == loads_scenario(MINIMAL)


def test_the_minimal_file_gets_the_config_defaults() -> None:
    scenario = loads_scenario(MINIMAL, source="m.toml")
    assert scenario.demand == cfg.DemandSpec(arrivals_per_day=500.0)
    assert scenario.faults == cfg.FaultSpec() and scenario.checks == cfg.ChecksSpec()
    assert scenario.run.speed == 60.0 and scenario.description == "" and scenario.source == "m.toml"
    assert isinstance(scenario.demand.arrivals_per_day, float)  # 500 in the file
    assert scenario.network.generate is not None and isinstance(scenario.network.generate.tariff_ac_per_kwh, float)


def test_browsing_keys_take_a_count_and_a_duration() -> None:
    app = loads_scenario(MINIMAL + '\n[fleet.app]\nbrowsing_at_peak = 10\nbrowse_duration = "2m30s"\n').fleet.app
    assert (app.browsing_at_peak, app.browse_duration) == (10, 150.0)
    assert type(app.browsing_at_peak) is int
    assert loads_scenario(MINIMAL).fleet.app == cfg.AppBehaviour()  # nobody browses by default


@pytest.mark.parametrize(("line", "key", "message"), [
    ("browsing_at_peak = -1", "browsing_at_peak", "must be at least 0, not -1"),
    ("browsing_at_peak = 2.5", "browsing_at_peak", "must be an integer, not 2.5"),
    ('browsing_at_peak = "many"', "browsing_at_peak", 'must be an integer, not "many"'),
    ("browsing_at_peak = 11", "browsing_at_peak",
     "is 11 but the fleet has only 10 users; lower it or raise fleet.users"),
    ('browse_duration = "0s"', "browse_duration", 'must be longer than 0, not "0s"'),
    ("browse_duration = 0", "browse_duration", "must be greater than 0, not 0"),
    ("browse_duration = -60", "browse_duration", "must be greater than 0, not -60"),
    ('browse_duration = "3 min"', "browse_duration", 'must be a duration such as "90s"'),
    ("browse_duration = true", "browse_duration", "must be a number or a string, not true"),
])
def test_bad_browsing_values_are_refused_naming_the_key(line: str, key: str, message: str) -> None:
    with pytest.raises(ScenarioInvalidError) as info:
        loads_scenario(MINIMAL + f"\n[fleet.app]\n{line}\n", source="b.toml")
    assert [p.key for p in info.value.problems] == [f"fleet.app.{key}"]
    assert str(info.value).startswith(f"b.toml: fleet.app.{key}: {message}")


# --- reading files and names ---------------------------------------------------------


def test_a_bundled_scenario_is_found_by_name_with_or_without_suffix() -> None:
    path = bundled_scenarios()["smoke"]
    assert load_scenario("smoke") == load_scenario("smoke.toml") == load_scenario(path)


def test_an_existing_file_wins_over_a_bundled_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "smoke.toml").write_text(MINIMAL, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario("smoke.toml")
    assert scenario.name == "minimal" and scenario.source == "smoke.toml"


def test_an_unknown_name_suggests_a_bundled_one() -> None:
    with pytest.raises(ScenarioReadError) as info:
        load_scenario("smok")
    assert str(info.value).startswith('smok: no such file, and no bundled scenario of that name; did you mean "smoke"?')
    assert "city-24h" in str(info.value)


@pytest.mark.parametrize("make, expected", [
    (lambda d: d, "is a directory, not a scenario file"),
    (lambda d: d / "missing" / "x.toml", "cannot read: No such file or directory"),
])
def test_a_path_that_is_no_file_is_an_error(tmp_path: Path, make: Any, expected: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ScenarioReadError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: {expected}"


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert load_scenario(path).name == "minimal"


# --- the schema ----------------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = schema_document()
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "https://chargetwin.example/scenario.schema.json"


def _subschemas(node: Any, path: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += _subschemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _subschemas(value, f"{path}/{index}")
    return found


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and "description" not in node:
        target: Any = schema_document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def test_every_key_of_the_format_is_described_and_every_table_is_closed() -> None:
    for path, node in _subschemas(schema_document()):
        if path.endswith("/properties") or "/if" in path:  # a mapping of keys, or a condition
            continue
        for name, prop in node.get("properties", {}).items():
            assert _resolve(prop).get("description"), f"{path}/properties/{name} has no description"
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} is not closed"


SECTIONS = {
    "#/properties/run": cfg.RunSpec,
    "#/properties/fleet": cfg.FleetSpec,
    "#/properties/demand": cfg.DemandSpec,
    "#/properties/faults": cfg.FaultSpec,
    "#/properties/maintenance": cfg.MaintenanceSpec,
    "#/properties/checks": cfg.ChecksSpec,
    "#/properties/network": cfg.NetworkSpec,
    "#/$defs/station": cfg.StationSpec,
    "#/$defs/charge_point": cfg.ChargePointSpec,
    "#/$defs/power_option": cfg.PowerOption,
    "#/$defs/network_generation": cfg.NetworkGeneration,
    "#/$defs/ev_model": cfg.EVModel,
    "#/$defs/app": cfg.AppBehaviour,
    "#/$defs/maintenance_window": cfg.MaintenanceWindow,
    "#/$defs/maintenance_generation": cfg.MaintenanceGeneration,
    "#/$defs/duration_distribution": cfg.Distribution,
    "#/$defs/soc_range": cfg.Range,
    "#/$defs/int_range": cfg.IntRange,
}
"""Each table of the format and the config dataclass it becomes (the loader maps names 1:1)."""


def _at(pointer: str) -> dict[str, Any]:
    node: Any = schema_document()
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


@pytest.mark.parametrize("pointer", SECTIONS)
def test_every_field_of_the_config_has_its_key(pointer: str) -> None:
    fields = {f.name for f in dataclasses.fields(SECTIONS[pointer])}
    assert set(_at(pointer)["properties"]) == fields


def test_the_scenario_table_holds_the_top_level_fields() -> None:
    top = {f.name for f in dataclasses.fields(cfg.Scenario)} - {"source"}
    sections = set(schema_document()["properties"]) - {"scenario"}
    assert sections | set(_at("#/properties/scenario")["properties"]) == top


def _as_config(value: Any, current: Any) -> Any:
    """A schema default in the form of the config's default ``current``."""
    if isinstance(current, cfg.Range):
        return cfg.Range(parse_duration(value["min"]) if isinstance(value["min"], str) else value["min"],
                         parse_duration(value["max"]) if isinstance(value["max"], str) else value["max"])
    if isinstance(current, cfg.Distribution):
        return cfg.Distribution(value["kind"], parse_duration(value["mean"]), parse_duration(value.get("sd", 0)))
    if isinstance(current, tuple):
        return tuple(value.items()) if isinstance(value, dict) else tuple(value)
    if isinstance(value, str) and isinstance(current, float):
        return parse_duration(value)
    return value


NO_DEFAULT = {("#/properties/network", "stations"), ("#/properties/network", "generate"),
              ("#/$defs/duration_distribution", "sd")}
"""Fields whose config default the file cannot use: a network is always given, sd only on lognormal."""


@pytest.mark.parametrize("pointer", SECTIONS)
def test_the_schema_states_the_config_defaults(pointer: str) -> None:
    properties = _at(pointer)["properties"]
    for field in dataclasses.fields(SECTIONS[pointer]):
        if (pointer, field.name) in NO_DEFAULT:
            continue
        prop = _resolve(properties[field.name]) | properties[field.name]
        if field.default is not dataclasses.MISSING and field.default is not None:
            assert "default" in prop, f"{pointer}/{field.name}: no default stated"
            assert _as_config(prop["default"], field.default) == field.default, f"{pointer}/{field.name}"
        elif field.default_factory is not dataclasses.MISSING:  # a whole table of defaults
            assert "default" not in prop


def test_the_schema_patterns_agree_with_the_code() -> None:
    defs = schema_document()["$defs"]
    assert defs["duration"]["pattern"] == defs["positive_duration"]["pattern"] == DURATION_PATTERN
    demand = schema_document()["properties"]["demand"]["properties"]
    assert demand["profile"]["pattern"] == "^(" + "|".join(cfg.PROFILES) + ")$"
    codes = schema_document()["properties"]["faults"]["properties"]["error_codes"]
    assert tuple(codes["items"]["enum"]) == OCPP_ERROR_CODES
    assert set(cfg.FaultSpec().error_codes) <= set(OCPP_ERROR_CODES)


def test_keys_are_written_as_toml_would() -> None:
    assert dotted_key(["network", "stations", 2, "charge_points", 0, "id"]) == "network.stations[2].charge_points[0].id"
    assert dotted_key(["checks", "latency_p99_ms", "rest.start"]) == 'checks.latency_p99_ms."rest.start"'


# --- durations -----------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("1h30m", 5400), ("90s", 90), ("15m", 900), ("5h", 18000), ("2d", 172800), ("1d2h3m4s", 93784),
    ("1.5h", 5400), ("0.25s", 0.25), ("0s", 0), (45, 45), (2.5, 2.5), (0, 0),
])
def test_durations_parse(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize("bad", ["", "5", "1m1h", "-5s", "5 m", "1h 30m", "1w", "h", "1.h", "PT5M", -1, True,
                                 math.nan, math.inf, None, [1]])
def test_bad_durations_fail(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**9))
def test_whole_seconds_round_trip_through_duration_strings(seconds: int) -> None:
    text = format_duration(seconds)
    assert isinstance(text, str) and parse_duration(text) == seconds


# --- round trips ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_any_well_formed_scenario_round_trips_through_toml(scenario: cfg.Scenario) -> None:
    assert loads_scenario(dumps_scenario(scenario), source=scenario.source) == scenario


# --- the documentation ---------------------------------------------------------------

DOC = Path(__file__).parents[2] / "docs" / "scenario-format.md"


def test_the_documented_example_is_a_valid_scenario() -> None:
    text = DOC.read_text(encoding="utf-8")
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    scenario = loads_scenario(example, source="docs/scenario-format.md")
    assert scenario.maintenance.windows[1].start == 2 * 3600
    assert scenario.checks.latency_p99_ms == (("rest.start", 500.0), ("gateway.push", 100.0))


def test_the_documentation_names_every_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    keys = {name for _, node in _subschemas(schema_document()) for name in node.get("properties", {})}
    forms = ("`{}`", "{} =", "[{}]", "[{}.", ".{}]")  # in the tables, or in the example
    assert {key for key in keys if not any(form.format(key) in text for form in forms)} == set()
