"""The twin's own records: what the model knows, written into the stream beside what was tapped.

Checks such as ``energy_matches_model`` and ``map_converges`` judge the
messages against the model's ground truth. So that the same checks reach
the same verdict from a trace file (``chargetwin validate``) as during the
run, the truth travels in the stream as records of hop ``twin``
(docs/trace-format.md), which are never judged against the contracts:

==================  ==========  ===============================================================
channel             direction   message
==================  ==========  ===============================================================
``twin:run``        ``start``   the run: scenario, check parameters, thresholds, tariffs
``twin:session``    ``started`` a model transaction began: ``session`` (the model's id),
                                ``user_id``, ``charger_id``, ``connector_id``, ``t``, ``energy_wh``
``twin:session``    ``sample``  its energy so far at model time ``t`` (a meter sample)
``twin:session``    ``stopped`` its final energy at ``t``
``twin:station``    ``state``   a station's true state once the run settled
``twin:end``        ``end``     the run ended: complete or not (why), and the run's own figures
                                the thresholds need (clock lag, CMS backlog, balk share)
==================  ==========  ===============================================================

:class:`ModelTap` turns the world's events into these records as the model
runs; :func:`station_records` writes the stations' truth at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..twin.model import events as ev

__all__ = ["RUN", "SESSION", "STATION", "TWIN_END", "ModelTap", "StationTruth", "station_messages",
           "station_truth", "twin_message"]

RUN: Final = "twin:run"
SESSION: Final = "twin:session"
STATION: Final = "twin:station"
TWIN_END: Final = "twin:end"



@dataclass(frozen=True, slots=True)
class StationTruth:
    """The model's state of one station once the last status change settled."""

    status: str  # "available" | "in_use" | "unavailable" (contracts.status, ruling 3)
    available_connectors: int
    total_connectors: int


Emit = Callable[[str, str, dict[str, Any]], None]
"""``emit(channel, direction, message)``: hand one twin record to the stream."""


class ModelTap:
    """A world sink: each model transaction's start, meter samples and stop as ``twin:session`` records."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.TransactionStarted):
            self._emit(SESSION, "started", {"session": event.session_id, "user_id": event.user_id,
                                            "charger_id": event.charge_point_id, "connector_id": event.connector_id,
                                            "t": round(event.t, 3), "energy_wh": 0.0})
        elif isinstance(event, ev.MeterSample):
            self._emit(SESSION, "sample", {"session": event.session_id, "t": round(event.t, 3),
                                           "energy_wh": float(event.energy_wh)})
        elif isinstance(event, ev.TransactionStopped):
            self._emit(SESSION, "stopped", {"session": event.session_id, "t": round(event.t, 3),
                                            "energy_wh": float(event.energy_wh)})


def station_messages(stations: Mapping[str, StationTruth]) -> Iterator[dict[str, Any]]:
    """The ``twin:station`` message of each station."""
    for station_id, truth in stations.items():
        yield {"station_id": station_id, "status": truth.status, "available_connectors": truth.available_connectors,
               "total_connectors": truth.total_connectors}


def station_truth(message: Any) -> tuple[str, StationTruth] | None:
    """The station and its truth of a ``twin:station`` message; None when it is not one."""
    if not isinstance(message, dict):
        return None
    station, status = message.get("station_id"), message.get("status")
    available, total = message.get("available_connectors"), message.get("total_connectors")
    if not (isinstance(station, str) and isinstance(status, str) and type(available) is int and type(total) is int):
        return None
    return station, StationTruth(status, available, total)


def twin_message(message: Any, *keys: str) -> dict[str, Any] | None:
    """``message`` when it is an object with every one of ``keys``, else None (the twin's records are trusted
    but may come from a file someone edited)."""
    if isinstance(message, dict) and all(key in message for key in keys):
        return message
    return None
