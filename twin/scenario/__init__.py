"""Scenario files: TOML in, a checked :class:`~chargetwin.twin.model.config.Scenario` out.

>>> scenario = load_scenario("smoke")          # a bundled scenario, by name
>>> scenario.run.duration
900.0

The format is documented by ``scenario.schema.json`` (beside this module)
and ``docs/scenario-format.md``. Bad files raise :class:`ScenarioError`
naming the file, the key and the problem.
"""

from __future__ import annotations

from .dump import dumps_scenario
from .durations import format_duration, parse_duration
from .exceptions import (
    Problem,
    ScenarioError,
    ScenarioInvalidError,
    ScenarioReadError,
    ScenarioSchemaError,
    ScenarioSyntaxError,
)
from .loader import bundled_scenarios, load_scenario, loads_scenario

__all__ = [
    "Problem",
    "ScenarioError",
    "ScenarioInvalidError",
    "ScenarioReadError",
    "ScenarioSchemaError",
    "ScenarioSyntaxError",
    "bundled_scenarios",
    "dumps_scenario",
    "format_duration",
    "load_scenario",
    "loads_scenario",
    "parse_duration",
]
