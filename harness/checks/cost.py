"""``cost_matches_tariff``: cost = energy x tariff in every ``meter_value`` update on Redis or a socket."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._access import as_number, data_of, is_session_update, session_of
from ..trace import TraceRecord
from ._base import Check, InvariantViolation, violation

__all__ = ["CostMatchesTariff"]


class CostMatchesTariff(Check):
    """``data.cost`` equals ``data.energy_consumed`` (kWh) times the tariff of ``data.station_id``.

    Rounded to 2 decimals, within ``tolerance``. Updates of a station with no
    known tariff are not judged. Each update is judged as it passes: no state.
    """

    name = "cost_matches_tariff"

    def __init__(self, tariffs: Mapping[str, float], *, tolerance: float = 0.01) -> None:
        super().__init__()
        self._tariffs = dict(tariffs)
        self._tolerance = tolerance

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if not is_session_update(record) or record.message.get("event") != "meter_value":
            return ()
        data = data_of(record.message)
        station = data.get("station_id")
        tariff = self._tariffs.get(station) if isinstance(station, str) else None
        energy, cost = as_number(data.get("energy_consumed")), as_number(data.get("cost"))
        if tariff is None or energy is None or cost is None:
            return ()
        self.checked += 1
        expected = round(energy * tariff, 2)
        if abs(cost - expected) <= self._tolerance + 1e-9:
            return ()
        return (violation(self.name, f"session {session_of(record)}: cost {cost:g} for {energy:g} kWh at "
                          f"{tariff:g} per kWh at station {station}", record, expected=expected, actual=cost),)
