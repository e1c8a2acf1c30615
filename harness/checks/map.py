"""``map_converges``: every connected app's map ends on the true station states.

A socket's map starts from the ``charger_list_update`` s it received (each
station's ``station_status``, ``available_connectors``,
``total_connectors``) and each ``charger_status_update`` (``status`` and
``data`` counts) overwrites its station, in order of observation. A
socket's map is forgotten when it closes. Judged when the run ends: every
socket that received ``connected`` (or any map message) and no ``close``,
for every station of the model's truth (``twin:station`` records, or the
``stations`` given): status and both counts must equal the truth. Without
any truth nothing is judged.

A ``charger_list_update`` holds every station (about 150 KB for a city) and
every app gets one per connect: a map keeps of it only the keys it
compares, in one trimmed record per list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Final

from .._access import as_int, data_of, message_dict
from ..trace import TraceRecord
from ..truth import STATION, StationTruth, station_truth
from ._base import Check, InvariantViolation, Settlement, violation

__all__ = ["MapConverges", "trimmed_list"]

_MapEntry = tuple[str | None, int | None, int | None, TraceRecord]
MAP_KEYS: Final = ("station_id", "station_status", "available_connectors", "total_connectors")


class MapConverges(Check):
    name = "map_converges"

    def __init__(self, *, stations: Mapping[str, StationTruth] | None = None) -> None:
        super().__init__()
        self._stations: dict[str, StationTruth] | None = None if stations is None else dict(stations)
        self._maps: dict[int, dict[str, _MapEntry]] = {}

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if record.hop == "twin":
            if record.channel == STATION and (found := station_truth(record.message)) is not None:
                self._stations = self._stations if self._stations is not None else {}
                self._stations[found[0]] = found[1]
            return ()
        if record.hop != "gateway-app" or record.socket_id is None:
            return ()
        if record.direction == "close":
            self._maps.pop(record.socket_id, None)
            return ()
        message = message_dict(record)
        kind = message.get("type")
        if kind == "connected":
            self._maps.setdefault(record.socket_id, {})
        elif kind == "charger_status_update" and isinstance(station := message.get("station_id"), str):
            data = data_of(message)
            self._maps.setdefault(record.socket_id, {})[station] = (
                message.get("status"), as_int(data.get("available_connectors")),
                as_int(data.get("total_connectors")), record)
        elif kind == "charger_list_update":
            chargers = data_of(message).get("chargers")
            if isinstance(chargers, list):
                shown = self._maps.setdefault(record.socket_id, {})
                kept = trimmed_list(record)
                for entry in chargers:
                    if isinstance(entry, dict) and isinstance(station := entry.get("station_id"), str):
                        shown[station] = (entry.get("station_status"), as_int(entry.get("available_connectors")),
                                          as_int(entry.get("total_connectors")), kept)
        return ()

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        stations = end.stations if end.stations is not None else self._stations
        found: list[InvariantViolation] = []
        if stations is None:  # no truth to judge the maps against
            return found
        for socket, shown in self._maps.items():
            for station, truth in stations.items():
                self.checked += 1
                expected = {"status": truth.status, "available_connectors": truth.available_connectors,
                            "total_connectors": truth.total_connectors}
                entry = shown.get(station)
                if entry is None:
                    found.append(InvariantViolation(self.name, f"socket {socket}: the map never showed station "
                                                    f"{station}", "gateway-app", (), expected, None))
                    continue
                actual = {"status": entry[0], "available_connectors": entry[1], "total_connectors": entry[2]}
                if actual != expected:
                    found.append(violation(self.name, f"socket {socket}: the map's last state of station {station} "
                                           "is not the model's", entry[3], expected=expected, actual=actual))
        return found

    def state_size(self) -> int:
        return sum(len(shown) for shown in self._maps.values()) + len(self._stations or ())


def trimmed_list(record: TraceRecord) -> TraceRecord:
    """``record``, a ``charger_list_update``'s stations cut down to the keys of :data:`MAP_KEYS`."""
    message = record.message
    if not (isinstance(message, dict) and isinstance(data := message.get("data"), dict)
            and isinstance(data.get("chargers"), list)):
        return record
    chargers = [{key: entry[key] for key in MAP_KEYS if key in entry} if isinstance(entry, dict) else entry
                for entry in data["chargers"]]
    return replace(record, message={**message, "data": {**data, "chargers": chargers}})
