"""Errors raised by :mod:`chargetwin.reports`::

    ReportError
    ├── ResultsError                a results.json cannot be used
    │   ├── ResultsNotFoundError    no file at the path
    │   ├── ResultsSyntaxError      the file is not JSON (``line`` and ``column`` say where)
    │   ├── NotAResultsError        JSON, but not what ``chargetwin run`` writes (``pointer`` says where)
    │   └── UnsupportedFormatError  a ``results_format`` this version cannot read
    └── ReportWriteError            the HTML file cannot be written

Every message names the file, says what was wrong and what to do; the
command line prints it without a traceback. A results file whose *contents*
show a failing run is never an error: that is what the report is for.
"""

from __future__ import annotations

__all__ = [
    "NotAResultsError",
    "ReportError",
    "ReportWriteError",
    "ResultsError",
    "ResultsNotFoundError",
    "ResultsSyntaxError",
    "UnsupportedFormatError",
]


class ReportError(Exception):
    """Base class of every error of the reports package."""


class ResultsError(ReportError):
    """A results file cannot be read as a run's results.

    ``source`` names the file (or the label a caller gave an in-memory
    document) and ``problem`` says what was wrong and what to do.
    """

    def __init__(self, problem: str, *, source: str, where: str | None = None) -> None:
        self.problem = problem
        self.source = source
        super().__init__(f"{where or source}: {problem}")


class ResultsNotFoundError(ResultsError):
    """There is no file (or no ``results.json`` in the folder) at the path given."""


class ResultsSyntaxError(ResultsError):
    """The file is not JSON; ``line`` and ``column`` (1-based) say where it stopped being JSON."""

    def __init__(self, problem: str, *, source: str, line: int, column: int) -> None:
        self.line = line
        self.column = column
        super().__init__(problem, source=source, where=f"{source}:{line}:{column}")


class NotAResultsError(ResultsError):
    """The JSON is not a results document; ``pointer`` (RFC 6901) is where it went wrong."""

    def __init__(self, problem: str, *, source: str, pointer: str = "") -> None:
        self.pointer = pointer
        super().__init__(f"at {pointer}: {problem}" if pointer else problem, source=source)


class UnsupportedFormatError(ResultsError):
    """``results_format`` names a format this version of chargetwin does not read."""


class ReportWriteError(ReportError):
    """The report could not be written (the folder is missing or read-only, the disk is full)."""
