"""The one result type of every check: :class:`Violation`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Violation"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One way in which one message breaks the contract.

    ``rule`` names what was broken: ``schema.<keyword>`` for a JSON Schema
    keyword (``schema.required``, ``schema.type``, ...), or the name of a
    semantic rule or routing check (``display_matches_status``,
    ``type_allowed_on_channel``, ...). ``pointer`` is the RFC 6901 JSON
    pointer into the message ("" for the whole message). ``spec`` names the
    section of the protocol document the rule comes from.
    """

    rule: str
    pointer: str
    message: str
    expected: Any = None
    actual: Any = None
    schema: str | None = None
    spec: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field."""
        return asdict(self)
