"""Errors raised by :mod:`chargetwin.contracts`.

Validation never raises for a message that breaks the contract: that is a
:class:`~chargetwin.contracts.violations.Violation`, returned as data. These
exceptions are for input that cannot be checked at all::

    ContractsError
    ├── ContractLoadError   a bundled schema or data file is missing or broken
    ├── RecordError         a line of captured traffic is not a valid record
    └── UnknownChannelError a channel or direction no contract covers

Every message says what was wrong, where, and what to do; the command line
prints it without a traceback.
"""

from __future__ import annotations

__all__ = ["ContractLoadError", "ContractsError", "RecordError", "UnknownChannelError"]


class ContractsError(Exception):
    """Base class of every error of the contracts package."""


class ContractLoadError(ContractsError):
    """A bundled contract file could not be read or compiled.

    This points at a broken installation or an edited schema, never at the
    traffic being checked.
    """


class RecordError(ContractsError):
    """One record of captured traffic cannot be checked.

    ``source`` names the file (``-`` for standard input) and ``line`` the
    1-based line number, so that the message leads straight to the record.
    """

    def __init__(self, problem: str, *, source: str, line: int) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        super().__init__(f"{source}:{line}: {problem}")


class UnknownChannelError(ContractsError, ValueError):
    """A channel or direction that no contract covers.

    Raised by :meth:`Validator.validate`; :mod:`~chargetwin.contracts.records`
    turns it into a :class:`RecordError` naming the line.
    """
