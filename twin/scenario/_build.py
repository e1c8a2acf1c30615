"""A schema-valid document to a :class:`Scenario`, with the checks the schema cannot express.

Call only with a document that passed :func:`~._schema.schema_problems`: the
shapes and types are trusted here. Values are converted (durations to
seconds, date-times to offsets of the run, arrays to tuples, integers to
floats where the field is a float); every rule broken is collected as a
:class:`Problem`, so that one pass reports them all.

TOML names map 1:1 to the fields of :mod:`chargetwin.twin.model.config`
except: ``[scenario]`` holds ``Scenario.name`` and ``description``;
``checks.latency_p99_ms`` is a table (a tuple of pairs in the config);
``run.speed = "max"`` is ``None``; ``maintenance.windows[].start`` may be a
date-time; ``Scenario.source`` is set by the loader, not the file.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from ..model.config import (
    AppBehaviour,
    ChargePointSpec,
    ChecksSpec,
    DemandSpec,
    Distribution,
    EVModel,
    FaultSpec,
    FleetSpec,
    IntRange,
    MaintenanceGeneration,
    MaintenanceSpec,
    MaintenanceWindow,
    NetworkGeneration,
    NetworkSpec,
    PowerOption,
    Range,
    RunSpec,
    Scenario,
    StationSpec,
)
from .durations import format_duration, parse_duration
from .exceptions import Problem

__all__ = ["build_scenario", "generated_station_id"]

T = TypeVar("T")
Table = Mapping[str, Any]
Convert = Callable[[Any, str], Any]

_GENERATED_ID = re.compile(r"STATION([0-9]+)")


def generated_station_id(number: int) -> str:
    """Id of the ``number`` -th generated station: ``STATION`` and at least three digits."""
    return f"STATION{number:03d}"


def build_scenario(document: Table, *, source: str) -> tuple[Scenario | None, list[Problem]]:
    """The scenario of ``document``, or None and the problems found."""
    builder = _Builder()
    scenario = builder.scenario(document, source)
    return (None, builder.problems) if builder.problems else (scenario, [])


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a config dataclass (its annotations are strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _is_float(hint: Any) -> bool:
    if hint is float:
        return True
    return get_origin(hint) in (Union, types.UnionType) and float in get_args(hint)


class _Builder:
    """Builds the config objects section by section, collecting problems instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, key: str, text: str) -> None:
        self.problems.append(Problem(key, text))

    # --- values ----------------------------------------------------------------------

    def make(self, cls: type[T], table: Table, key: str, **convert: Convert) -> T:
        """``cls`` from ``table``: keys are field names; ``convert`` turns the listed ones."""
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for name, value in table.items():
            if name in convert:
                kwargs[name] = convert[name](value, f"{key}.{name}")
            elif isinstance(value, list):
                kwargs[name] = tuple(value)
            elif _is_float(hints[name]) and isinstance(value, int) and not isinstance(value, bool):
                kwargs[name] = float(value)
            elif hints[name] is int and isinstance(value, float):
                kwargs[name] = int(value)
            else:
                kwargs[name] = value
        return cls(**kwargs)

    def duration(self, value: Any, key: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as error:
            self.problem(key, str(error))
            return 0.0

    def positive(self, value: Any, key: str) -> float:
        """A duration that must be longer than 0 (the schema checks numbers, this checks strings)."""
        seconds = self.duration(value, key)
        if isinstance(value, str) and seconds == 0:
            self.problem(key, f"must be longer than 0, not {_q(value)}")
        return seconds

    def datetime(self, value: Any, key: str) -> dt.datetime | None:
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                self.problem(key, f"{_q(value)} is not a valid date-time")
                return None
        if not isinstance(value, dt.datetime) or value.utcoffset() is None:
            self.problem(key, "must carry a UTC offset, e.g. 2025-01-29T16:00:00+02:00")
            return None
        return value

    def ordered(self, table: Table, key: str, low: float, high: float) -> None:
        if low > high:
            self.problem(key, f"min ({_show(table['min'])}) is greater than max ({_show(table['max'])})")

    def soc_range(self, table: Table, key: str) -> Range:
        self.ordered(table, key, table["min"], table["max"])
        return Range(float(table["min"]), float(table["max"]))

    def int_range(self, table: Table, key: str) -> IntRange:
        self.ordered(table, key, table["min"], table["max"])
        return IntRange(int(table["min"]), int(table["max"]))

    def time_range(self, table: Table, key: str) -> Range:
        low, high = self.duration(table["min"], f"{key}.min"), self.duration(table["max"], f"{key}.max")
        self.ordered(table, key, low, high)
        return Range(low, high)

    def distribution(self, table: Table, key: str) -> Distribution:
        if "sd" in table and table["kind"] != "lognormal":
            self.problem(f"{key}.sd", f'applies to kind "lognormal" only, not {_q(table["kind"])}; remove it')
        return self.make(Distribution, table, key, mean=self.positive, sd=self.duration)

    # --- sections --------------------------------------------------------------------

    def scenario(self, doc: Table, source: str) -> Scenario:
        run = self.run(doc["run"])
        network = self.network(doc["network"])
        fleet = self.fleet(doc["fleet"])
        demand = self.demand(doc["demand"])
        self.serviceable(network, fleet, demand)
        sections: dict[str, Any] = {}
        if "faults" in doc:
            sections["faults"] = self.faults(doc["faults"])
        if "maintenance" in doc:
            sections["maintenance"] = self.maintenance(doc["maintenance"], run, network)
        if "checks" in doc:
            sections["checks"] = self.checks(doc["checks"])
        return Scenario(name=doc["scenario"]["name"], description=doc["scenario"].get("description", ""),
                        run=run, network=network, fleet=fleet, demand=demand, source=source, **sections)

    def run(self, table: Table) -> RunSpec:
        start = self.datetime(table["start"], "run.start") or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        run = self.make(RunSpec, table, "run", start=lambda v, k: start, duration=self.positive,
                        speed=lambda v, k: None if v == "max" else float(v),
                        meter_interval=self.positive, warmup=self.duration)
        if run.warmup >= run.duration > 0:
            self.problem("run.warmup", f"must be shorter than run.duration ({_show(table['duration'])}), "
                                       f"not {_show(table['warmup'])}")
        return run

    def network(self, table: Table) -> NetworkSpec:
        if "generate" in table:
            gen = table["generate"]
            return NetworkSpec(generate=self.make(
                NetworkGeneration, gen, "network.generate",
                charge_points_per_station=self.int_range, connectors_per_charge_point=self.int_range,
                power_options=lambda v, k: tuple(self.make(PowerOption, o, f"{k}[{i}]") for i, o in enumerate(v))))
        stations = tuple(self.station(s, f"network.stations[{i}]") for i, s in enumerate(table["stations"]))
        self.unique([s.id for s in stations], "network.stations[{}].id", "station id")
        self.unique([cp.id for s in stations for cp in s.charge_points],
                    [f"network.stations[{i}].charge_points[{j}].id"
                     for i, s in enumerate(stations) for j in range(len(s.charge_points))],
                    "charge point id")
        return NetworkSpec(stations=stations)

    def station(self, table: Table, key: str) -> StationSpec:
        return self.make(StationSpec, table, key, charge_points=lambda v, k: tuple(
            self.make(ChargePointSpec, cp, f"{k}[{i}]") for i, cp in enumerate(v)))

    def unique(self, ids: Sequence[str], keys: str | Sequence[str], what: str) -> None:
        """A problem at each repeat of an id, naming where it first appeared."""
        first: dict[str, int] = {}
        for index, value in enumerate(ids):
            key = keys.format(index) if isinstance(keys, str) else keys[index]
            if value in first:
                where = keys.format(first[value]) if isinstance(keys, str) else keys[first[value]]
                self.problem(key, f"duplicate {what} {_q(value)} (first at {where})")
            else:
                first[value] = index

    def fleet(self, table: Table) -> FleetSpec:
        models = tuple(self.ev_model(m, f"fleet.ev_models[{i}]") for i, m in enumerate(table["ev_models"]))
        self.unique([m.name for m in models], "fleet.ev_models[{}].name", "EV model name")
        fleet = self.make(FleetSpec, table, "fleet", ev_models=lambda v, k: models, app=self.app)
        if fleet.app.browsing_at_peak > fleet.users:
            self.problem("fleet.app.browsing_at_peak",
                         f"is {fleet.app.browsing_at_peak} but the fleet has only {fleet.users} "
                         f"user{'s' if fleet.users > 1 else ''}; lower it or raise fleet.users")
        return fleet

    def app(self, table: Table, key: str) -> AppBehaviour:
        return self.make(AppBehaviour, table, key, reopen_interval=self.positive, browse_duration=self.positive)

    def ev_model(self, table: Table, key: str) -> EVModel:
        model = self.make(EVModel, table, key)
        if model.dc_voltage_min > model.dc_voltage_max:
            self.problem(f"{key}.dc_voltage_min", f"must not exceed dc_voltage_max ({model.dc_voltage_max:g}), "
                                                  f"not {model.dc_voltage_min:g}")
        return model

    def demand(self, table: Table) -> DemandSpec:
        return self.make(DemandSpec, table, "demand", profile=self.profile, arrival_soc=self.soc_range,
                         target_soc=self.soc_range, dc_target_soc=self.soc_range, ac_dwell=self.distribution,
                         patience=self.duration)

    def profile(self, value: Any, key: str) -> str | tuple[float, ...]:
        if isinstance(value, str):
            return value
        if sum(value) <= 0:
            self.problem(key, "the 24 hourly weights must not all be 0")
        return tuple(float(w) for w in value)

    def serviceable(self, network: NetworkSpec, fleet: FleetSpec, demand: DemandSpec) -> None:
        """Drivers of each kind the demand asks for must have cars and charge points to use."""
        kinds = ({o.kind for o in network.generate.power_options} if network.generate else
                 {cp.kind for s in network.stations for cp in s.charge_points})
        if demand.dc_share > 0 and "DC" not in kinds:
            self.problem("demand.dc_share", f"is {demand.dc_share:g} but the network has no DC charge point; "
                                            "add one or set dc_share = 0")
        if demand.dc_share > 0 and not any(m.max_dc_kw > 0 for m in fleet.ev_models):
            self.problem("demand.dc_share", f"is {demand.dc_share:g} but no EV model can charge on DC "
                                            "(max_dc_kw > 0); add one or set dc_share = 0")
        if demand.dc_share < 1 and "AC" not in kinds:
            self.problem("demand.dc_share", f"is {demand.dc_share:g} (some drivers want AC) but the network has "
                                            "no AC charge point; add one or set dc_share = 1")

    def faults(self, table: Table) -> FaultSpec:
        return self.make(FaultSpec, table, "faults", mtbf=self.distribution, mttr=self.distribution)

    def checks(self, table: Table) -> ChecksSpec:
        return self.make(ChecksSpec, table, "checks", latency_p99_ms=lambda v, k: tuple(
            (hop, float(ms)) for hop, ms in v.items()))

    # --- maintenance -----------------------------------------------------------------

    def maintenance(self, table: Table, run: RunSpec, network: NetworkSpec) -> MaintenanceSpec:
        windows = tuple(self.window(w, f"maintenance.windows[{i}]", run, network)
                        for i, w in enumerate(table.get("windows", ())))
        self.no_overlap(windows)
        generate = None
        if "generate" in table:
            generate = self.maintenance_generation(table["generate"], run, network)
        return MaintenanceSpec(windows=windows, generate=generate)

    def window(self, table: Table, key: str, run: RunSpec, network: NetworkSpec) -> MaintenanceWindow:
        window = self.make(MaintenanceWindow, table, key, start=lambda v, k: self.offset(v, k, run),
                           duration=self.positive)
        self.known_station(window.station_id, f"{key}.station_id", network)
        if window.start + window.duration > run.duration:
            self.problem(key, f"ends {_span(window.start + window.duration)} after run.start, after the run's end "
                              f"({_span(run.duration)}); move or shorten it, or lengthen run.duration")
        return window

    def offset(self, value: Any, key: str, run: RunSpec) -> float:
        """Seconds after ``run.start`` of a duration or a date-time."""
        if isinstance(value, dt.datetime) or (isinstance(value, str) and ":" in value):
            when = self.datetime(value, key)
            if when is None:
                return 0.0
            seconds = (when - run.start).total_seconds()
            if seconds < 0:
                self.problem(key, f"{when.isoformat()} is before run.start ({run.start.isoformat()})")
            return max(seconds, 0.0)
        return self.duration(value, key)

    def known_station(self, station_id: str, key: str, network: NetworkSpec) -> None:
        if network.generate is None:
            ids = [s.id for s in network.stations]
            if station_id not in ids:
                self.problem(key, f"no station {_q(station_id)} in [[network.stations]]" + _suggest(station_id, ids))
            return
        count = network.generate.stations
        match = _GENERATED_ID.fullmatch(station_id)
        if not match or generated_station_id(int(match[1])) != station_id or not 1 <= int(match[1]) <= count:
            self.problem(key, f"no station {_q(station_id)} in the generated network: its ids run from "
                              f"{generated_station_id(1)} to {generated_station_id(count)}")

    def no_overlap(self, windows: Sequence[MaintenanceWindow]) -> None:
        for i, window in enumerate(windows):
            for j, other in enumerate(windows[:i]):
                if (other.station_id == window.station_id and window.start < other.start + other.duration
                        and other.start < window.start + window.duration):
                    self.problem(f"maintenance.windows[{i}]", f"overlaps maintenance.windows[{j}] of the same "
                                                              f"station {_q(window.station_id)}; merge them")

    def maintenance_generation(self, table: Table, run: RunSpec, network: NetworkSpec) -> MaintenanceGeneration:
        key = "maintenance.generate"
        gen = self.make(MaintenanceGeneration, table, key, duration=self.positive,
                        within=self.time_range)
        count = network.generate.stations if network.generate else len(network.stations)
        if gen.stations > count:
            self.problem(f"{key}.stations", f"is {gen.stations} but the network has only {count} "
                                            f"station{'s' if count > 1 else ''}")
        if gen.within.max + gen.duration > run.duration:
            self.problem(key, f"a window opening at within.max ({_span(gen.within.max)}) would end "
                              f"{_span(gen.within.max + gen.duration)} after run.start, after the run's end "
                              f"({_span(run.duration)})")
        return gen


def _q(text: str) -> str:
    """``text`` quoted as TOML writes it."""
    return json.dumps(text, ensure_ascii=False)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return _q(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _span(seconds: float) -> str:
    text = format_duration(seconds)
    return text if isinstance(text, str) else f"{seconds:g}s"


def _suggest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {_q(close[0])}?" if close else ""
