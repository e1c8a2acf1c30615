"""A :class:`Scenario` back to scenario TOML: ``loads_scenario(dumps_scenario(s))`` equals ``s``.

Every field is written, defaults included, so that the text shows the
scenario exactly as the model sees it (``chargetwin model --show``, golden
files). Whole seconds are written as duration strings (``"1h30m"``), other
durations as numbers of seconds; ``Scenario.source`` is not written.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from typing import Any

from ..model.config import (
    ChecksSpec,
    DemandSpec,
    Distribution,
    FaultSpec,
    FleetSpec,
    MaintenanceSpec,
    NetworkSpec,
    RunSpec,
    Scenario,
)
from .durations import format_duration

__all__ = ["dumps_scenario"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dumps_scenario(scenario: Scenario) -> str:
    """The TOML text of ``scenario``."""
    document: dict[str, Any] = {
        "scenario": {"name": scenario.name, "description": scenario.description},
        "run": _run(scenario.run),
        "network": _network(scenario.network),
        "fleet": _fleet(scenario.fleet),
        "demand": _demand(scenario.demand),
        "faults": _faults(scenario.faults),
        "maintenance": _maintenance(scenario.maintenance),
        "checks": _checks(scenario.checks),
    }
    lines: list[str] = []
    _table(document, (), lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _plain(obj: Any, **durations_or_values: Any) -> dict[str, Any]:
    """The fields of a config object as a TOML table, with some fields replaced."""
    table = {}
    for f in fields(obj):
        value = durations_or_values.get(f.name, getattr(obj, f.name))
        if value is not None and value != ():
            table[f.name] = list(value) if isinstance(value, tuple) else value
    return table


def _distribution(d: Distribution) -> dict[str, Any]:
    table: dict[str, Any] = {"kind": d.kind, "mean": format_duration(d.mean)}
    if d.kind == "lognormal":
        table["sd"] = format_duration(d.sd)
    return table


def _run(run: RunSpec) -> dict[str, Any]:
    return _plain(run, duration=format_duration(run.duration), speed="max" if run.speed is None else run.speed,
                  meter_interval=format_duration(run.meter_interval), warmup=format_duration(run.warmup))


def _network(network: NetworkSpec) -> dict[str, Any]:
    if network.generate is not None:
        gen = network.generate
        return {"generate": _plain(
            gen, charge_points_per_station=_plain(gen.charge_points_per_station),
            connectors_per_charge_point=_plain(gen.connectors_per_charge_point),
            power_options=[_plain(o) for o in gen.power_options])}
    return {"stations": [_plain(s, charge_points=[_plain(cp) for cp in s.charge_points])
                         for s in network.stations]}


def _fleet(fleet: FleetSpec) -> dict[str, Any]:
    return _plain(fleet, ev_models=[_plain(m) for m in fleet.ev_models],
                  app=_plain(fleet.app, reopen_interval=format_duration(fleet.app.reopen_interval),
                             browse_duration=format_duration(fleet.app.browse_duration)))


def _demand(demand: DemandSpec) -> dict[str, Any]:
    return _plain(demand, arrival_soc=_plain(demand.arrival_soc), target_soc=_plain(demand.target_soc),
                  dc_target_soc=_plain(demand.dc_target_soc),
                  ac_dwell=_distribution(demand.ac_dwell), patience=format_duration(demand.patience))


def _faults(faults: FaultSpec) -> dict[str, Any]:
    return _plain(faults, mtbf=_distribution(faults.mtbf), mttr=_distribution(faults.mttr))


def _maintenance(maintenance: MaintenanceSpec) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if maintenance.windows:
        table["windows"] = [_plain(w, start=format_duration(w.start), duration=format_duration(w.duration))
                            for w in maintenance.windows]
    if maintenance.generate is not None:
        gen = maintenance.generate
        within = {"min": format_duration(gen.within.min), "max": format_duration(gen.within.max)}
        table["generate"] = _plain(gen, duration=format_duration(gen.duration), within=within)
    return table


def _checks(checks: ChecksSpec) -> dict[str, Any]:
    return _plain(checks, latency_p99_ms=dict(checks.latency_p99_ms) or None)


# --- a small TOML writer: tables, arrays of tables, scalars and arrays of scalars ------------


def _table(table: dict[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    nested = {k: v for k, v in table.items() if isinstance(v, dict) or _is_table_array(v)}
    for key, value in table.items():
        if key not in nested:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in nested.items():
        here = (*path, key)
        if isinstance(value, dict):
            if not value or any(not (isinstance(v, dict) or _is_table_array(v)) for v in value.values()):
                lines.extend(["", f"[{'.'.join(map(_key, here))}]"])  # not for a table of tables only
            _table(value, here, lines)
        else:
            for item in value:
                lines.extend(["", f"[[{'.'.join(map(_key, here))}]]"])
                _table(item, here, lines)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    # JSON escapes are TOML escapes, except that TOML also forbids a raw DEL
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"a scenario has no place for {value}")
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    raise TypeError(f"cannot write {type(value).__name__} as TOML")
