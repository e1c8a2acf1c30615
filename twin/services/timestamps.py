"""Timestamps on the wire: RFC 3339 in UTC with a ``Z``, as the seed writes them.

The OCPP messages of the simulated charge points and the CMS -> backend
events use the same form (``defs.schema.json#/$defs/timestamp``), to the
millisecond: ``2025-01-29T12:00:00.000Z``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_timestamp", "parse_timestamp", "utc_text"]


def format_timestamp(moment: datetime) -> str:
    """``moment`` in UTC, milliseconds, ``Z``; a naive ``moment`` is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_timestamp(text: str) -> datetime:
    """The moment an OCPP timestamp names (naive means UTC). Raises ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def utc_text(text: str) -> str:
    """An RFC 3339 timestamp with an offset as the same moment in UTC with a ``Z``; text already in ``Z`` as it is.

    For times that arrive as text (a charge point's, a CMS's) and are passed on:
    every timestamp the twin writes ends in ``Z`` (SPEC-NOTES N-20; the seed's form).
    Raises ValueError if ``text`` is not a timestamp.
    """
    return text if text.endswith("Z") else format_timestamp(parse_timestamp(text))
