"""Errors raised by :mod:`chargetwin.twin.scenario`.

Every error names the file (``source``), the key (a dotted path such as
``demand.scale`` or ``network.stations[2].charge_points[0].max_power_kw``)
and the problem, and says what to do. A file with several problems reports
them all, one per line. The command line prints them without a traceback::

    ScenarioError               a scenario cannot be used
    ├── ScenarioReadError       the file cannot be read: missing, a directory, not UTF-8,
    │                           or a name that is neither a file nor a bundled scenario
    ├── ScenarioSyntaxError     not TOML; ``line`` and ``column`` say where
    ├── ScenarioInvalidError    TOML that breaks the format (the JSON Schema) or a rule
    │                           beyond it (ranges, unique ids, maintenance inside the run...)
    └── ScenarioSchemaError     the bundled JSON Schema cannot be loaded: a broken installation
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

__all__ = [
    "Problem",
    "ScenarioError",
    "ScenarioInvalidError",
    "ScenarioReadError",
    "ScenarioSchemaError",
    "ScenarioSyntaxError",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario: where (``key``, empty for the whole file) and what."""

    key: str
    problem: str

    def located(self, source: str) -> str:
        """``source: key: problem`` (``source: problem`` without a key)."""
        return f"{source}: {self.key}: {self.problem}" if self.key else f"{source}: {self.problem}"


class ScenarioError(Exception):
    """Base class of every error of the scenario package.

    ``problems`` holds every problem found, in file order where it is known;
    ``key`` and ``problem`` are those of the first. ``str()`` gives one line
    per problem, each ``source: key: problem``.
    """

    def __init__(self, problems: Sequence[Problem], *, source: str) -> None:
        if not problems:
            raise ValueError("a ScenarioError needs at least one problem")
        self.source = source
        self.problems = tuple(problems)
        self.key = self.problems[0].key
        self.problem = self.problems[0].problem
        super().__init__("\n".join(p.located(source) for p in self.problems))

    @classmethod
    def single(cls, problem: str, *, source: str, key: str = "") -> Self:
        """An error of one problem."""
        return cls([Problem(key, problem)], source=source)


class ScenarioReadError(ScenarioError):
    """The scenario file cannot be read, or the name given is no file and no bundled scenario."""


class ScenarioSyntaxError(ScenarioError):
    """The file is not valid TOML.

    ``line`` and ``column`` (1-based) come from the TOML parser when it gives
    them (None otherwise); ``str()`` then reads ``source:line:column: problem``
    so that editors can jump to the place.
    """

    def __init__(self, problem: str, *, source: str, line: int | None = None, column: int | None = None) -> None:
        self.line = line
        self.column = column
        where = source if line is None else f"{source}:{line}:{column}"
        super().__init__([Problem("", problem)], source=where)
        self.source = source


class ScenarioInvalidError(ScenarioError):
    """Valid TOML that is not a valid scenario: every problem found, schema problems first."""


class ScenarioSchemaError(ScenarioError):
    """The bundled JSON Schema of the format is missing or broken: reinstall chargetwin."""
