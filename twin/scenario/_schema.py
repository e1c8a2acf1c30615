"""The format's JSON Schema: loaded and compiled once; its errors turned into :class:`Problem` s.

Call order: :func:`schema_problems` with the document as tomllib parsed it.
It first makes the document JSON-like (TOML date-times become RFC 3339 text;
non-finite floats are problems of their own), then validates it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from collections.abc import Iterator, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema_rs

from .durations import DURATION_PATTERN
from .exceptions import Problem, ScenarioSchemaError

__all__ = ["SCHEMA_NAME", "dotted_key", "schema_document", "schema_problems", "to_json"]

SCHEMA_NAME = "scenario.schema.json"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

_TYPE_NAMES = {"number": "a number", "integer": "an integer", "string": "a string", "object": "a table",
               "array": "an array", "boolean": "true or false", "null": "nothing"}

_PATTERN_HINTS = {
    "^max$": '"max" or a number greater than 0 (simulated seconds per wall second)',
    "^(workplace|residential|city|flat)$": 'one of "workplace", "residential", "city", "flat", '
                                           "or an array of 24 hourly weights",
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$": 'an id of letters, digits, "_", "." and "-", starting with a letter or digit',
    "^[A-Z]{3}$": 'a three-letter ISO 4217 currency code such as "EGP"',
}
"""What a value must look like, by the schema pattern it failed (durations and date-times: :func:`_pattern_hints`)."""

_COMBINATORS = {"OneOfNotValid", "OneOfMultipleValid", "AnyOf", "Not"}
"""Errors whose message comes from the ``x-error`` annotation of their subschema (jsonschema_rs's own otherwise)."""

_DURATION_HINT = ('a duration such as "90s", "15m", "5h", "1h30m" or "2d" (units d, h, m, s, largest first) '
                  "or a number of seconds")
_DATETIME_HINT = "an offset date-time such as 2025-01-29T16:00:00+02:00 (the UTC offset, or Z, is required)"


def dotted_key(path: Sequence[str | int]) -> str:
    """``network.stations[2].charge_points[0].id`` from an instance path; odd keys are quoted."""
    key = ""
    for part in path:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            name = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            key += f".{name}" if key else name
    return key


@cache
def schema_document() -> dict[str, Any]:
    """The bundled JSON Schema, parsed (raises :class:`ScenarioSchemaError` if it cannot be read)."""
    resource = files(__package__) / SCHEMA_NAME
    try:
        document = json.loads(resource.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ScenarioSchemaError.single(f"cannot read the scenario schema: {error}; reinstall chargetwin",
                                         source=str(resource)) from error
    if not isinstance(document, dict):
        raise ScenarioSchemaError.single("the scenario schema is not a JSON object; reinstall chargetwin",
                                         source=str(resource))
    return document


@cache
def _validator() -> Any:
    try:
        return jsonschema_rs.validator_for(schema_document())
    except (ValueError, jsonschema_rs.ValidationError) as error:
        raise ScenarioSchemaError.single(f"the scenario schema does not compile: {error}; reinstall chargetwin",
                                         source=SCHEMA_NAME) from error


def to_json(value: Any, path: tuple[str | int, ...], problems: list[Problem]) -> Any:
    """``value`` with TOML date-times as RFC 3339 text; a non-finite float becomes a problem (and 0)."""
    if isinstance(value, dict):
        return {k: to_json(v, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v, (*path, i), problems) for i, v in enumerate(value)]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(Problem(dotted_key(path), f"must be a finite number, not {value}"))
        return 0
    return value


def schema_problems(document: dict[str, Any]) -> list[Problem]:
    """Every way ``document`` (as tomllib parsed it) breaks the schema, in the validator's order."""
    problems: list[Problem] = []
    instance = to_json(document, (), problems)
    seen = set(problems)
    for error in _validator().iter_errors(instance):
        for problem in _problems_of(error):
            if problem not in seen:
                seen.add(problem)
                problems.append(problem)
    return problems


def _problems_of(error: Any) -> Iterator[Problem]:
    path = list(error.instance_path)
    kind = type(error.kind).__name__
    details = error.kind.as_dict()
    schema = _parent_schema(list(error.schema_path))
    if kind == "AdditionalProperties":
        known = sorted(schema.get("properties", {}))
        for name in details["unexpected"]:
            yield Problem(dotted_key([*path, name]), _unknown_key(name, known))
    elif kind == "Required":
        yield Problem(dotted_key([*path, details["property"]]), schema.get("x-error", "is required"))
    elif kind == "PropertyNames":  # the only one: latency hop names must not be empty
        yield Problem(dotted_key([*path, str(details["error"].instance)]), "an empty key is not allowed here")
    elif kind in _COMBINATORS:
        yield Problem(dotted_key(path), schema.get("x-error") or str(error.message))
    else:
        yield Problem(dotted_key(path), _message(kind, details, error))


def _unknown_key(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {json.dumps(close[0])}?"
    return "unknown key; the keys allowed here are " + ", ".join(known) if known else "unknown key"


def _message(kind: str, details: dict[str, Any], error: Any) -> str:
    value = error.instance
    if kind == "Type":
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in details["types"])
        return f"must be {wanted}, not {_describe(value)}"
    if kind == "Pattern":
        return f"must be {_pattern_hint(details['pattern'])}, not {_describe(value)}"
    if kind == "Enum":
        options = ", ".join(json.dumps(o) for o in details["options"])
        return f"must be one of {options}, not {_describe(value)}"
    if kind in _LIMITS:
        limit = details.get("limit")
        count = len(value) if isinstance(value, list | str) else value
        return _LIMITS[kind].format(limit=limit, value=value, count=count,
                                    entries="entry" if limit == 1 else "entries")
    return str(error.message)


_LIMITS = {
    "Minimum": "must be at least {limit}, not {value}",
    "ExclusiveMinimum": "must be greater than {limit}, not {value}",
    "Maximum": "must be at most {limit}, not {value}",
    "ExclusiveMaximum": "must be less than {limit}, not {value}",
    "MinItems": "needs at least {limit} {entries}, not {count}",
    "MaxItems": "takes at most {limit} {entries}, not {count}",
    "MinLength": "must not be empty",
    "UniqueItems": "must not list the same value twice",
}
"""Messages of the limit keywords (every ``minLength`` of the schema is 1)."""


def _pattern_hint(pattern: str) -> str:
    return _pattern_hints().get(pattern, f"text matching {pattern}")


@cache
def _pattern_hints() -> dict[str, str]:
    defs = schema_document()["$defs"]
    return {
        **_PATTERN_HINTS,
        DURATION_PATTERN: _DURATION_HINT,
        defs["offset_datetime"]["pattern"]: _DATETIME_HINT,
        defs["maintenance_window"]["properties"]["start"]["pattern"]:
            f"{_DURATION_HINT} after run.start, or {_DATETIME_HINT}",
    }


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else str(value)


def _parent_schema(schema_path: list[str | int]) -> dict[str, Any]:
    """The subschema holding the keyword that failed (following a ``$ref`` on the way)."""
    node: Any = schema_document()
    for part in schema_path[:-1]:
        node = _target(str(node["$ref"])) if part == "$ref" and isinstance(node, dict) else _child(node, part)
    return node if isinstance(node, dict) else {}


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _target(ref: str) -> Any:
    node: Any = schema_document()
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node
