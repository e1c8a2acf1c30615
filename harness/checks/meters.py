"""``meters_monotonic``: meter readings and energy never go backwards within a session, on any one stream.

A stream is the Redis publishes of a session, or what one socket received
of it (``(hop, socket_id, session)``), in order of observation: each
``meter_value`` update's ``data.meter_value``, ``data.energy_consumed`` and
``data.energy_delivered`` is at least the stream's previous one. Across
hops the order of arrival may legitimately interleave, so streams are not
mixed. Decided as each update arrives; a stream is forgotten once quiet
for the retention window.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .._access import as_number, data_of, describe, is_session_update, session_of
from ..trace import TraceRecord
from ._base import Check, InvariantViolation, violation
from ._recent import Recent

__all__ = ["MetersMonotonic"]

_MONOTONIC_FIELDS: Final = ("meter_value", "energy_consumed", "energy_delivered")
_Stream = tuple[str, int | None, int]


class MetersMonotonic(Check):
    name = "meters_monotonic"

    def __init__(self, *, retention_s: float = 900.0, retention_wall_s: float = 30.0) -> None:
        super().__init__()
        self._last: Recent[_Stream, tuple[dict[str, float], TraceRecord]] = Recent(retention_s, retention_wall_s)

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if not is_session_update(record) or record.message.get("event") != "meter_value":
            return ()
        session = session_of(record)
        if session is None:
            return ()
        self.checked += 1
        data = data_of(record.message)
        values = {f: v for f in _MONOTONIC_FIELDS if (v := as_number(data.get(f))) is not None}
        stream = (record.hop, record.socket_id, session)
        previous = self._last.get(stream)
        found: list[InvariantViolation] = []
        if previous is not None:
            for key, value in values.items():
                before = previous[0].get(key)
                if before is not None and value < before:
                    found.append(violation(self.name, f"session {session}: {key} went back from {before:g} to "
                                           f"{value:g} ({describe(record)})", record, previous[1],
                                           expected=f">= {before:g}", actual=value))
            values = {**previous[0], **values}
        self._last.touch(stream, (values, record), record.t_sim, record.t_wall)
        return found

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        self._last.forget(t_sim, t_wall)
        return ()

    def state_size(self) -> int:
        return len(self._last)
