"""Read a scenario file: TOML syntax, then the JSON Schema, then the rules beyond it.

:func:`load_scenario` takes a path, or the name of a bundled scenario
(``"smoke"`` or ``"smoke.toml"``) when no such file exists.
:func:`loads_scenario` takes the text. Both return a checked
:class:`~chargetwin.twin.model.config.Scenario` or raise a
:class:`~.exceptions.ScenarioError` that names the file, the key and the
problem; never anything else for bad input.

Validation runs in three stages, each only if the one before passed:

1. ``tomllib``: syntax errors carry the line and column;
2. the JSON Schema ``scenario.schema.json`` (jsonschema-rs, compiled once):
   every error, with the closest known key for a misspelt one;
3. the rules the schema cannot express (``_build``): min <= max, unique ids,
   maintenance windows on existing stations and inside the run, ...
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..model.config import Scenario
from ._build import build_scenario
from ._schema import schema_problems
from .exceptions import ScenarioInvalidError, ScenarioReadError, ScenarioSyntaxError

__all__ = ["BUNDLED_PACKAGE", "bundled_scenarios", "load_scenario", "loads_scenario"]

BUNDLED_PACKAGE = "chargetwin.scenarios"
"""The package whose ``*.toml`` files are the bundled scenarios."""

_SUFFIX = ".toml"
_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")


def bundled_scenarios() -> dict[str, Path]:
    """The bundled scenarios by name (file name without ``.toml``), sorted by name."""
    root = files(BUNDLED_PACKAGE)
    if not isinstance(root, Path):  # a zipped install: not supported, the files must be on disk
        raise ScenarioReadError.single(f"the bundled scenarios are not files on disk ({root}); "
                                       "install chargetwin unzipped", source=BUNDLED_PACKAGE)
    return {path.name.removesuffix(_SUFFIX): path for path in sorted(root.glob("*" + _SUFFIX))}


def load_scenario(path_or_name: str | os.PathLike[str]) -> Scenario:
    """The scenario of a file, or of a bundled scenario named like ``"smoke"``.

    A path that exists is always read as a file; otherwise a bare name (no
    directory part) is looked up among :func:`bundled_scenarios`.
    """
    given = Path(path_or_name)
    path = _resolve(given)
    source = os.fspath(path_or_name) if path == given else str(path)
    return loads_scenario(_read(path, source), source=source)


def loads_scenario(text: str, *, source: str = "<string>") -> Scenario:
    """The scenario of TOML ``text``; ``source`` names it in errors and in ``Scenario.source``."""
    document = _parse(text, source)
    problems = schema_problems(document)
    if problems:
        raise ScenarioInvalidError(problems, source=source)
    scenario, problems = build_scenario(document, source=source)
    if scenario is None:
        raise ScenarioInvalidError(problems, source=source)
    return scenario


def _resolve(path: Path) -> Path:
    if path.exists() or len(path.parts) != 1 or path.name in ("", ".", ".."):
        return path
    name = path.name.removesuffix(_SUFFIX)
    bundled = bundled_scenarios()
    if name in bundled:
        return bundled[name]
    close = difflib.get_close_matches(name, list(bundled), n=1)
    hint = f"did you mean \"{close[0]}\"? " if close else ""
    raise ScenarioReadError.single(
        f"no such file, and no bundled scenario of that name; {hint}bundled: {', '.join(bundled)}",
        source=str(path))


def _read(path: Path, source: str) -> str:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ScenarioReadError.single("is a directory, not a scenario file", source=source) from None
    except OSError as error:
        raise ScenarioReadError.single(f"cannot read: {error.strerror or error}", source=source) from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise ScenarioReadError.single(
            f"is not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); save it as UTF-8",
            source=source) from None


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        line, column = _where(message, text)
        message = _WHERE.sub("", message)
        raise ScenarioSyntaxError(f"invalid TOML: {message}", source=source, line=line, column=column) from None


def _where(message: str, text: str) -> tuple[int | None, int | None]:
    """Line and column of a tomllib message (Python 3.11's TOMLDecodeError has no attributes for them)."""
    match = _WHERE.search(message)
    if match is None:
        return None, None
    if match[1] is not None:
        return int(match[1]), int(match[2])
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1
