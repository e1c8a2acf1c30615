"""Errors of the world model::

    ModelError
    └── UnknownTargetError   a command names a charging point or connector the network lacks

Commands the model can refuse (a RemoteStart with no car plugged in, a stop
with no transaction) return a refusal instead of raising.
"""

from __future__ import annotations

__all__ = ["ModelError", "UnknownTargetError"]


class ModelError(Exception):
    """Base class of the model's errors."""


class UnknownTargetError(ModelError, KeyError):
    """A command named a charging point or connector that does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown charging point or connector"
