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
every app gets one per connect: a map keeps of it only each station's
state (one of a few shared triples) and where the list was; a violation
cites the list with that station's entry alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Final

from .._access import as_int, data_of, message_dict
from ..trace import TraceRecord
from ..truth import STATION, StationTruth, station_truth
from ._base import Check, InvariantViolation, Settlement, violation

__all__ = ["MAP_KEYS", "MapConverges"]

_State = tuple[str | None, int | None, int | None]
MAP_KEYS: Final = ("station_id", "station_status", "available_connectors", "total_connectors")


class _Map:
    """One socket's map: each station's last state, and the record it came from (a list: its header alone)."""

    __slots__ = ("sources", "states")

    def __init__(self) -> None:
        self.states: dict[str, _State] = {}
        self.sources: dict[str, TraceRecord] = {}


class MapConverges(Check):
    name = "map_converges"

    def __init__(self, *, stations: Mapping[str, StationTruth] | None = None) -> None:
        super().__init__()
        self._stations: dict[str, StationTruth] | None = None if stations is None else dict(stations)
        self._maps: dict[int, _Map] = {}
        self._shared: dict[_State, _State] = {}  # a socket's thousands of entries share a few triples

    def _state(self, status: object, available: object, total: object) -> _State:
        state = (status if isinstance(status, str) else None, as_int(available), as_int(total))
        return self._shared.setdefault(state, state)

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
            self._maps.setdefault(record.socket_id, _Map())
        elif kind == "charger_status_update" and isinstance(station := message.get("station_id"), str):
            data = data_of(message)
            shown = self._maps.setdefault(record.socket_id, _Map())
            shown.states[station] = self._state(message.get("status"), data.get("available_connectors"),
                                                data.get("total_connectors"))
            shown.sources[station] = record
        elif kind == "charger_list_update":
            chargers = data_of(message).get("chargers")
            if isinstance(chargers, list):
                shown = self._maps.setdefault(record.socket_id, _Map())
                header = replace(record, message={"type": kind, "data": {"chargers": []}})
                for entry in chargers:
                    if isinstance(entry, dict) and isinstance(station := entry.get("station_id"), str):
                        shown.states[station] = self._state(entry.get("station_status"),
                                                            entry.get("available_connectors"),
                                                            entry.get("total_connectors"))
                        shown.sources[station] = header
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
                state = shown.states.get(station)
                if state is None:
                    found.append(InvariantViolation(self.name, f"socket {socket}: the map never showed station "
                                                    f"{station}", "gateway-app", (), expected, None))
                    continue
                actual = {"status": state[0], "available_connectors": state[1], "total_connectors": state[2]}
                if actual != expected:
                    found.append(violation(self.name, f"socket {socket}: the map's last state of station {station} "
                                           "is not the model's", _cited(shown.sources[station], station, state),
                                           expected=expected, actual=actual))
        return found

    def state_size(self) -> int:
        return sum(len(shown.states) for shown in self._maps.values()) + len(self._stations or ())


def _cited(source: TraceRecord, station: str, state: _State) -> TraceRecord:
    """The record a map state came from; of a list, the list with that station's entry alone (its keys of
    :data:`MAP_KEYS`): the rest of the list is in the trace at the record's line."""
    message = source.message
    if not (isinstance(message, dict) and message.get("type") == "charger_list_update"):
        return source
    entry = dict(zip(MAP_KEYS, (station, *state), strict=True))
    return replace(source, message={**message, "data": {"chargers": [entry]}})
