"""The station status model of the seed (section 2) and DESIGN ruling 3.

Pure functions shared by the semantic rules and by the services that build
map messages, so that both sides agree by construction on what a station's
status, counts and ``display`` string are.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "CONNECTOR_CLASS",
    "STATUS_LABELS",
    "connector_class",
    "count_classes",
    "display_for",
    "station_status",
]

CONNECTOR_CLASS: dict[str, str] = {
    "Available": "available",
    "Preparing": "in_use",
    "Charging": "in_use",
    "SuspendedEVSE": "in_use",
    "SuspendedEV": "in_use",
    "Finishing": "in_use",
    "Reserved": "in_use",
    "Occupied": "in_use",
    "Unavailable": "unavailable",
    "Faulted": "unavailable",
}
"""Which count a connector in each OCPP status adds to (SPEC-NOTES N-06)."""

STATUS_LABELS: dict[str, str] = {
    "available": "Available",
    "in_use": "In Use",
    "unavailable": "Unavailable",
}
"""``status`` -> ``data.station_status`` of charger_status_update (seed 4.6)."""


def connector_class(status: str) -> str:
    """``available``, ``in_use`` or ``unavailable`` for an OCPP connector status."""
    return CONNECTOR_CLASS[status]


def station_status(*, available: int, total: int, unavailable: int,
                   under_maintenance: bool = False) -> str:
    """The station's map status (DESIGN ruling 3).

    ``unavailable`` when under maintenance or no connector can be used;
    ``available`` when at least one connector is Available; otherwise
    ``in_use``.
    """
    if under_maintenance or unavailable >= total:
        return "unavailable"
    if available > 0:
        return "available"
    return "in_use"


def display_for(status: str, *, available: int, total: int) -> str | None:
    """The ``X/Y`` string under a green icon, or None for blue and red icons."""
    return f"{available}/{total}" if status == "available" else None


def count_classes(statuses: Iterable[str]) -> dict[str, int]:
    """How many connectors of ``statuses`` fall in each class."""
    counts = {"available": 0, "in_use": 0, "unavailable": 0}
    for status in statuses:
        counts[CONNECTOR_CLASS[status]] += 1
    return counts
