"""``energy_matches_model``: the energy the app is told matches the model's ground truth within a tolerance.

Judged: every ``session_update`` a socket received (``gateway-app``) with a
number in ``data.energy_consumed`` (else ``data.energy_delivered``), in
kWh, of a session the model knows. The reading was taken at most ``lag_s``
simulated seconds before the app got it, and energy never decreases, so it
must lie between the model's energy at ``t_sim - lag_s`` and at ``t_sim``
(linear between the model's points), widened by ``tolerance_wh`` on both
sides.

The model's energy comes as ``twin:session`` records (:mod:`..truth`), by
the model's own transaction ids. A backend session is the model transaction
of its user on its charge point and connector that began last, at most 60
simulated seconds after the app's start response (the start the call
caused; if none began by then, the next one that does). An update is
judged once that link is final and the model's curve is known past the
update's time (its next point, or its end); until then it waits.

For tests and for traces without the twin's records, ``curves`` gives the
model's energy directly, keyed by the backend's session ids.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._access import as_int, as_number, data_of, is_session_update, is_ws_receive, session_of, successful_start
from ..trace import TraceRecord
from ..truth import SESSION, twin_message
from ._base import Agenda, Check, InvariantViolation, Settlement, violation
from ._recent import Recent

__all__ = ["EnergyMatchesModel"]

LINK_WINDOW_S = 60.0
"""A backend session is the model transaction that began at most this long after the app's start response."""

_Key = tuple[int, Any, Any]


@dataclass(slots=True)
class _Curve:
    """A model transaction's energy (Wh) at model times, and whether it ended."""

    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    ended: bool = False

    def known_past(self, t: float) -> bool:
        return self.ended or (bool(self.times) and self.times[-1] > t)

    def at(self, t: float) -> float:
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return self.values[0]
        if i == len(self.times):
            return self.values[-1]
        t0, t1, v0, v1 = self.times[i - 1], self.times[i], self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1


@dataclass(slots=True)
class _Link:
    """A backend session's start response and, once known, the model transaction it caused."""

    key: _Key
    t_response: float
    model_session: int | None = None
    final: bool = False
    waiting: list[TraceRecord] = field(default_factory=list)


class EnergyMatchesModel(Check):
    name = "energy_matches_model"

    def __init__(self, *, curves: Mapping[int, Sequence[tuple[float, float]]] | None = None,
                 tolerance_wh: float = 10.0, lag_s: float = 60.0, retention_s: float = 900.0,
                 retention_wall_s: float = 30.0) -> None:
        super().__init__()
        self._tolerance, self._lag = tolerance_wh, lag_s
        self._static = None if curves is None else {
            session: _Curve([t for t, _ in points], [wh for _, wh in points], ended=True)
            for session, points in curves.items() if points}
        self._starts: dict[_Key, list[tuple[float, int]]] = {}
        self._curves: Recent[int, _Curve] = Recent(retention_s, retention_wall_s, keep=lambda c: not c.ended)
        self._links: Recent[int, _Link] = Recent(retention_s, retention_wall_s, keep=self._keep_link)
        self._finalise: Agenda[int] = Agenda()
        self._by_model: dict[int, list[int]] = {}  # model transaction -> the backend sessions linked to it
        self._awaiting: dict[_Key, list[int]] = {}  # links whose window closed before their start began
        self._retention = retention_s
        self._next_sweep = 0.0

    # --- what is observed -------------------------------------------------------------------

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if record.hop == "twin":
            return self._model(record) if self._static is None and record.channel == SESSION else ()
        if self._static is None and (session := successful_start(record)) is not None:
            self._link(record, session)
            return ()
        if not (is_ws_receive(record) and is_session_update(record)):
            return ()
        session = session_of(record)
        if session is None or _told_kwh(record) is None:
            return ()
        if self._static is not None:
            curve = self._static.get(session)
            return () if curve is None else self._judge(record, session, curve)
        link = self._links.get(session)
        if link is None:
            return ()
        self._links.touch(session, link, record.t_sim, record.t_wall)
        link.waiting.append(record)
        return self._ready(session, link)

    def _keep_link(self, link: _Link) -> bool:
        """A link is kept while it may still judge: not final, or linked with updates waiting or its transaction
        still open. One whose window closed with no model transaction to take is kept for the retention window
        only (the model may never have started one: a capture without the twin's records)."""
        if not link.final:
            return True
        if link.model_session is None:
            return False
        curve = self._curves.get(link.model_session)
        return curve is not None and (bool(link.waiting) or not curve.ended)

    def _model(self, record: TraceRecord) -> Iterator[InvariantViolation]:
        message = twin_message(record.message, "session", "t", "energy_wh")
        if message is None or as_int(message["session"]) is None or as_number(message["t"]) is None:
            return
        model_session, t = message["session"], float(message["t"])
        curve = self._curves.get(model_session) or _Curve()
        self._curves.touch(model_session, curve, record.t_sim, record.t_wall)
        curve.times.append(t)
        curve.values.append(float(as_number(message["energy_wh"]) or 0.0))
        curve.ended = curve.ended or record.direction == "stopped"
        if record.direction == "started":
            key = _start_key(message)
            starts = self._starts.setdefault(key, [])
            starts.append((t, model_session))
            del starts[:-8]  # a link takes the last start before its window closes: a few suffice
            for session in self._awaiting.pop(key, ()):
                self._linked(session, model_session)
        for session in list(self._by_model.get(model_session, ())):
            link = self._links.get(session)
            if link is not None:
                yield from self._ready(session, link)

    def _link(self, record: TraceRecord, session: int) -> None:
        data = data_of(record.message)
        key = (record.user_id or 0, data.get("charger_id"), data.get("connector_id"))
        self._links.touch(session, _Link(key, record.t_sim), record.t_sim, record.t_wall)
        self._finalise.add(record.t_sim + LINK_WINDOW_S, session)

    # --- deciding ---------------------------------------------------------------------------

    def _settle_link(self, session: int, link: _Link) -> None:
        """Final: the last model start of the key at most the window after the response, else the next one."""
        starts = self._starts.get(link.key, [])
        index = bisect.bisect_right([t for t, _ in starts], link.t_response + LINK_WINDOW_S) - 1
        link.final = True
        if index >= 0:
            self._linked(session, starts[index][1])
        else:
            self._awaiting.setdefault(link.key, []).append(session)

    def _linked(self, session: int, model_session: int) -> None:
        link = self._links.get(session)
        if link is not None:
            link.model_session = model_session
            self._by_model.setdefault(model_session, []).append(session)

    def _ready(self, session: int, link: _Link) -> Iterator[InvariantViolation]:
        if not link.final or link.model_session is None:
            return
        curve = self._curves.get(link.model_session)
        if curve is None:
            link.waiting.clear()
            return
        ready = [r for r in link.waiting if curve.known_past(r.t_sim)]
        if ready:
            link.waiting = [r for r in link.waiting if not curve.known_past(r.t_sim)]
            for record in ready:
                yield from self._judge(record, session, curve)

    def _judge(self, record: TraceRecord, session: int, curve: _Curve) -> Iterator[InvariantViolation]:
        kwh = _told_kwh(record)
        assert kwh is not None
        self.checked += 1
        low = curve.at(record.t_sim - self._lag) - self._tolerance
        high = curve.at(record.t_sim) + self._tolerance
        told = kwh * 1000
        if not low <= told <= high:
            yield violation(self.name, f"session {session}: the app was told {told:g} Wh; the model had "
                            f"{low + self._tolerance:g}..{high - self._tolerance:g} Wh "
                            f"(within {self._lag:g} s before t_sim={record.t_sim:g}, "
                            f"tolerance {self._tolerance:g} Wh)", record,
                            expected=[round(low, 3), round(high, 3)], actual=told)

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        found: list[InvariantViolation] = []
        for session in list(self._finalise.due(t_sim)):
            link = self._links.get(session)
            if link is not None and not link.final:
                self._settle_link(session, link)
                found.extend(self._ready(session, link))
        for session, link in self._links.expire(t_sim, t_wall):
            if link.model_session is None and link.key in self._awaiting:
                self._awaiting[link.key].remove(session)
                if not self._awaiting[link.key]:
                    del self._awaiting[link.key]
        for model_session, _ in self._curves.expire(t_sim, t_wall):
            self._by_model.pop(model_session, None)
        if t_sim >= self._next_sweep:  # model starts no link can take any more
            self._next_sweep = t_sim + self._retention / 4
            for key in [k for k, starts in self._starts.items() if starts[-1][0] < t_sim - self._retention]:
                del self._starts[key]
        return found

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        found: list[InvariantViolation] = []
        for session, link in list(self._links.items()):
            if not link.final:
                self._settle_link(session, link)
            if link.model_session is None:
                continue
            curve = self._curves.get(link.model_session)
            if curve is not None:
                curve.ended = True  # the run is over: the curve is all there will be
            found.extend(self._ready(session, link))
        return found

    def state_size(self) -> int:
        return (len(self._curves) + len(self._links) + len(self._starts) + len(self._finalise) + len(self._by_model)
                + sum(len(sessions) for sessions in self._awaiting.values()))


def _start_key(message: Mapping[str, Any]) -> _Key:
    return (as_int(message.get("user_id")) or 0, message.get("charger_id"), message.get("connector_id"))


def _told_kwh(record: TraceRecord) -> float | None:
    data = data_of(record.message)
    kwh = as_number(data.get("energy_consumed"))
    return kwh if kwh is not None else as_number(data.get("energy_delivered"))
