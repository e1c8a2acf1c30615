"""Errors raised by :mod:`chargetwin.harness`::

    HarnessError
    └── TraceError   a trace file cannot be written or a line cannot be read as a trace record

A message that breaks a contract or an invariant is never an exception: it is
a violation, returned as data.
"""

from __future__ import annotations

__all__ = ["HarnessError", "TraceError"]


class HarnessError(Exception):
    """Base class of every error of the harness package."""


class TraceError(HarnessError):
    """A trace line is not a trace record, or the writer was used after close.

    ``source`` names the file and ``line`` the 1-based line (0 when unknown).
    """

    def __init__(self, problem: str, *, source: str = "-", line: int = 0) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        super().__init__(f"{source}:{line}: {problem}" if line else f"{source}: {problem}")
