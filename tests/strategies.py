"""Hypothesis strategies for protocol messages, kept in one place."""

from __future__ import annotations

from typing import Any

from chargetwin.contracts.status import CONNECTOR_CLASS, STATUS_LABELS, count_classes, display_for, station_status
from hypothesis import strategies as st

connector_statuses = st.sampled_from(sorted(CONNECTOR_CLASS))
seconds = st.integers(min_value=0, max_value=200 * 3600)


@st.composite
def charger_status_updates(draw: st.DrawFn) -> dict[str, Any]:
    """A conforming charger_status_update: a station of several charging points.

    The message names one charging point; counts, display and status are the
    station's aggregate (DESIGN ruling 2), derived as the backend must.
    """
    station = draw(st.lists(st.lists(connector_statuses, min_size=1, max_size=4), min_size=1, max_size=5))
    maintenance = draw(st.booleans())
    if maintenance:
        station = [["Unavailable"] * len(point) for point in station]
    named = draw(st.integers(min_value=0, max_value=len(station) - 1))
    counts = count_classes(status for point in station for status in point)
    total = sum(counts.values())
    status = station_status(available=counts["available"], total=total,
                            unavailable=counts["unavailable"], under_maintenance=maintenance)
    timestamp = "2025-01-29T12:00:00Z"
    data: dict[str, Any] = {
        "total_connectors": total,
        "available_connectors": counts["available"],
        "connectors_in_use": counts["in_use"],
        "connectors_unavailable": counts["unavailable"],
        "display": display_for(status, available=counts["available"], total=total),
        "connector_status": [{"connector_id": i, "status": s} for i, s in enumerate(station[named], 1)],
        "station_status": STATUS_LABELS[status],
        "is_under_maintenance": maintenance,
        "timestamp": timestamp,
    }
    if maintenance:
        data["maintenance_reason"] = "Scheduled maintenance"
    return {"type": "charger_status_update", "station_id": "STATION001", "charger_id": f"CP{named + 1:03d}",
            "status": status, "data": data, "timestamp": timestamp}
