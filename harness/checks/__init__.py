"""The ten checks of a run, online: each is fed the observations in order and reports a violation once certain.

One module per check (``schema``, ``causality``, ``consistency``,
``isolation``, ``meters``, ``energy``, ``cost``, ``map``, ``delivery``,
``restored``), each a :class:`~._base.Check` that keeps only the state it
still needs: open sessions, live sockets, publishes waiting for their
copies, the last map state per socket and station. What it can only
decide at the end (a session that never got its ``session_started``, the
maps against the model's final state) it decides in ``settle``.

:class:`Checks` runs all ten together and keeps, per check, the count of
violations, the count per rule, and the first :data:`MAX_KEPT` in full:
memory does not grow with the run, however many violations it has.
``docs/trace-format.md`` says precisely how each check matches records.

The functions named after the checks (:func:`causality_and_latency`, ...)
and :func:`run_checks` run the same online checks over a finished list of
records: for tests and for small traces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from chargetwin.contracts import Validator

from ..pipeline import Consumer
from ..trace import TraceRecord
from ._base import Check, CheckParams, CheckResult, InvariantViolation, Settlement, StationTruth
from .causality import CausalityAndLatency
from .consistency import ConsistentAcrossHops
from .cost import CostMatchesTariff
from .delivery import NoMessageLost
from .energy import EnergyMatchesModel
from .isolation import Isolation
from .map import MapConverges
from .meters import MetersMonotonic
from .restored import ActiveSessionRestored
from .schema import SchemaAndRules

__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "MAX_KEPT",
    "Check",
    "CheckParams",
    "CheckResult",
    "Checks",
    "GroundTruth",
    "InvariantViolation",
    "Settlement",
    "StationTruth",
    "active_session_restored",
    "causality_and_latency",
    "consistent_across_hops",
    "cost_matches_tariff",
    "energy_matches_model",
    "isolation",
    "map_converges",
    "meters_monotonic",
    "no_message_lost",
    "run_checks",
    "schema_and_rules",
]

CHECK_NAMES: Final = ("schema_and_rules", "causality_and_latency", "consistent_across_hops", "isolation",
                      "meters_monotonic", "energy_matches_model", "cost_matches_tariff", "map_converges",
                      "no_message_lost", "active_session_restored")
"""Every check, in the order :class:`Checks` runs them (and reports show them)."""

CHECKS: Final[dict[str, tuple[str, str]]] = {
    "schema_and_rules": ("Every message matches its JSON Schema and the semantic and routing rules of its kind.",
                         "Overview"),
    "causality_and_latency": ("Each accepted start is followed by the user's session_started, meter values and "
                              "an end, in order and within the scenario's deadline.",
                              "5. Example 1: Start Charging Flow"),
    "consistent_across_hops": ("A session agrees on every hop: REST answer, Redis message and WebSocket push carry "
                               "the same ids, energy and status.", "3.2 Session Updates Channel"),
    "isolation": ("No socket ever receives another user's session update or notification.",
                  "3. Laravel Backend → Node.js Gateway (Redis Pub/Sub)"),
    "meters_monotonic": ("Meter readings and energy never go backwards within a session.",
                         "5. Example 2: Real-time Meter Value Updates"),
    "energy_matches_model": ("The energy the app is told matches the model's ground truth within a tolerance.",
                             "4.4 Session Update (from Redis)"),
    "cost_matches_tariff": ("cost = energy x tariff in every meter_value update.", "4.4 Session Update (from Redis)"),
    "map_converges": ("Every connected app's map ends on the true station states.",
                      "Charging Station Status Model"),
    "no_message_lost": ("Every Redis message for a user reaches each of that user's connected sockets.",
                        "Redis Channel Summary"),
    "active_session_restored": ("A reopened app is told the session its user has, and no other.",
                                "4.8 Active Session Update (Pushed from Gateway)"),
}
"""Per check: what it asserts, in words, and the section of the protocol document it comes from (for reports)."""

MAX_KEPT: Final = 1000
"""Violations kept in full per check; every one is counted."""

MAX_LISTS_KEPT: Final = 20
"""Per check, records kept with their whole charger list (150 KB for a city, megabytes parsed); violations of
other ones keep a note in its place that says where the trace has it."""

ADVANCE_SIM_S: Final = 1.0
ADVANCE_WALL_S: Final = 0.25
"""The checks are told that time passed at most this often (simulated / wall seconds): deferred decisions
wait for their time to pass, so telling them a little late only reports a little later."""


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What the model knows, as plain data, for the list functions below (a run streams it as twin records).

    ``energy_wh``: per backend session id, the model's session energy in Wh
    at simulated times, as ``(t_sim, wh)`` pairs sorted by time.
    ``stations``: per station id, its true state at the end of the run.
    ``tariffs``: per station id, the price of one kWh.
    """

    energy_wh: Mapping[int, Sequence[tuple[float, float]]] | None = None
    stations: Mapping[str, StationTruth] | None = None
    tariffs: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class _Tally:
    """One check's violations: how many, how many per rule, the first :data:`MAX_KEPT`."""

    count: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    kept: list[InvariantViolation] = field(default_factory=list)
    lists: set[int] = field(default_factory=set)  # ids of the records whose whole charger list is kept


class Checks(Consumer):
    """All ten checks, fed together; each violation is returned as soon as a check is certain of it.

    Call :meth:`observe` with every record in order, :meth:`advance` when
    time passes without records (optional: records advance time too), and
    :meth:`settle` once at the end; then :meth:`results`. As a consumer of
    the pipeline it does the same from its hooks.
    """

    def __init__(self, params: CheckParams | None = None, *, tariffs: Mapping[str, float] | None = None,
                 truth: GroundTruth | None = None, validator: Validator | None = None) -> None:
        params = params or CheckParams()
        truth = truth or GroundTruth()
        windows = {"retention_s": params.retention_s, "retention_wall_s": params.retention_wall_s}
        self.checks: list[Check] = [
            SchemaAndRules(validator=validator),
            CausalityAndLatency(deadline_s=params.deadline_s, **windows),
            ConsistentAcrossHops(grace_s=params.grace_s, **windows),
            Isolation(grace_s=params.grace_s, **windows),
            MetersMonotonic(**windows),
            EnergyMatchesModel(curves=truth.energy_wh, tolerance_wh=params.tolerance_wh, lag_s=params.lag_s,
                               **windows),
            CostMatchesTariff({**truth.tariffs, **(tariffs or {})}, tolerance=params.cost_tolerance),
            MapConverges(stations=truth.stations),
            NoMessageLost(grace_s=params.grace_s),
            ActiveSessionRestored(grace_s=params.grace_s, race_s=params.race_s),
        ]
        assert tuple(c.name for c in self.checks) == CHECK_NAMES
        self._tallies = {c.name: _Tally() for c in self.checks}
        self._advanced = (float("-inf"), float("-inf"))
        self.t_sim = 0.0
        self.t_wall = 0.0

    def observe(self, record: TraceRecord) -> list[InvariantViolation]:
        found: list[InvariantViolation] = []
        if record.t_sim > self.t_sim:
            self.t_sim = record.t_sim
        if record.t_wall > self.t_wall:
            self.t_wall = record.t_wall
        if self.t_sim >= self._advanced[0] + ADVANCE_SIM_S or self.t_wall >= self._advanced[1] + ADVANCE_WALL_S:
            found.extend(self.advance(self.t_sim, self.t_wall))
        for check in self.checks:
            for v in check.observe(record):
                found.append(self._tally(v))
        return found

    def advance(self, t_sim: float, t_wall: float) -> list[InvariantViolation]:
        self.t_sim, self.t_wall = max(self.t_sim, t_sim), max(self.t_wall, t_wall)
        self._advanced = (self.t_sim, self.t_wall)
        return [self._tally(v) for check in self.checks for v in check.advance(self.t_sim, self.t_wall)]

    def settle(self, end: Settlement | None = None) -> list[InvariantViolation]:
        """Decide everything still open (``end``: the run's last instant, default the last observed)."""
        end = end or Settlement(self.t_sim, self.t_wall)
        found = self.advance(end.t_sim, end.t_wall)
        return found + [self._tally(v) for check in self.checks for v in check.settle(end)]

    def _tally(self, v: InvariantViolation) -> InvariantViolation:
        if v.t_wall is None:
            v = _reported_at(v, self.t_wall)
        tally = self._tallies[v.check]
        tally.count += 1
        tally.rules[v.rule or v.check] += 1
        if len(tally.kept) < MAX_KEPT:
            v = replace(v, records=tuple(self._kept_list(tally, r) if _is_list(r) else r for r in v.records))
            tally.kept.append(v)
        return v

    @staticmethod
    def _kept_list(tally: _Tally, record: TraceRecord) -> TraceRecord:
        """``record`` whole if its list is kept already or there is room for it, else with a note in its place."""
        if id(record) in tally.lists or len(tally.lists) < MAX_LISTS_KEPT:
            tally.lists.add(id(record))
            return record
        return _list_noted(record)

    def results(self) -> list[CheckResult]:
        """Every check's result so far, in :data:`CHECK_NAMES` order."""
        return [CheckResult(c.name, c.checked, list(self._tallies[c.name].kept), self._tallies[c.name].count,
                            dict(self._tallies[c.name].rules)) for c in self.checks]

    def state_size(self) -> int:
        """Items of state held by all checks (bounded by what is live, not by the run's length)."""
        return sum(c.state_size() for c in self.checks)

    # --- as a consumer of the pipeline --------------------------------------------------------

    def on_record(self, record: TraceRecord) -> list[InvariantViolation]:
        return self.observe(record)

    def on_tick(self, t_sim: float, t_wall: float) -> list[InvariantViolation]:
        return self.advance(t_sim, t_wall)

    def on_end(self, t_sim: float, t_wall: float) -> list[InvariantViolation]:
        return self.settle(Settlement(max(t_sim, self.t_sim), max(t_wall, self.t_wall)))

    @property
    def violation_count(self) -> int:
        return sum(tally.count for tally in self._tallies.values())


def _is_list(record: TraceRecord) -> bool:
    message = record.message
    return (isinstance(message, dict) and isinstance(data := message.get("data"), dict)
            and isinstance(chargers := data.get("chargers"), list) and len(chargers) > 50)


def _list_noted(record: TraceRecord) -> TraceRecord:
    """``record`` with its charger list replaced by a note of where the trace has it."""
    chargers = record.message["data"]["chargers"]
    note = (f"a list of {len(chargers)} chargers, not kept here (too many violations hold one): "
            f"the trace has it at line {record.line}")
    return replace(record, message={**record.message, "data": {"chargers_not_kept": note}})


def _reported_at(v: InvariantViolation, t_wall: float) -> InvariantViolation:
    return replace(v, t_wall=t_wall)


# --- the checks over a finished list of records ---------------------------------------------


def _over(check: Check, records: Iterable[TraceRecord], end: Settlement | None = None) -> CheckResult:
    found: list[InvariantViolation] = []
    last = (0.0, 0.0)
    advanced = (float("-inf"), float("-inf"))
    for record in records:
        last = (max(last[0], record.t_sim), max(last[1], record.t_wall))
        if last[0] >= advanced[0] + ADVANCE_SIM_S or last[1] >= advanced[1] + ADVANCE_WALL_S:
            found.extend(check.advance(*last))
            advanced = last
        found.extend(check.observe(record))
    end = end or Settlement(*last)
    found.extend(check.advance(end.t_sim, end.t_wall))
    found.extend(check.settle(end))
    return CheckResult(check.name, check.checked, found)


def schema_and_rules(records: Iterable[TraceRecord], *, validator: Validator | None = None) -> CheckResult:
    """Every record against the contracts (:mod:`.schema`); ``records`` is read once (a stream will do)."""
    return _over(SchemaAndRules(validator=validator), records)


def causality_and_latency(records: Iterable[TraceRecord], *, deadline_s: float) -> CheckResult:
    return _over(CausalityAndLatency(deadline_s=deadline_s), records)


def consistent_across_hops(records: Iterable[TraceRecord]) -> CheckResult:
    return _over(ConsistentAcrossHops(), records)


def isolation(records: Iterable[TraceRecord]) -> CheckResult:
    return _over(Isolation(), records)


def meters_monotonic(records: Iterable[TraceRecord]) -> CheckResult:
    return _over(MetersMonotonic(), records)


def energy_matches_model(records: Iterable[TraceRecord], energy_wh: Mapping[int, Sequence[tuple[float, float]]], *,
                         tolerance_wh: float = 10.0, lag_s: float = 60.0) -> CheckResult:
    return _over(EnergyMatchesModel(curves=energy_wh, tolerance_wh=tolerance_wh, lag_s=lag_s), records)


def cost_matches_tariff(records: Iterable[TraceRecord], tariffs: Mapping[str, float], *,
                        tolerance: float = 0.01) -> CheckResult:
    return _over(CostMatchesTariff(tariffs, tolerance=tolerance), records)


def map_converges(records: Iterable[TraceRecord], stations: Mapping[str, StationTruth]) -> CheckResult:
    return _over(MapConverges(stations=stations), records)


def no_message_lost(records: Iterable[TraceRecord], *, grace_s: float = 5.0) -> CheckResult:
    return _over(NoMessageLost(grace_s=grace_s), records)


def active_session_restored(records: Iterable[TraceRecord], *, grace_s: float = 5.0,
                            race_s: float = 5.0) -> CheckResult:
    return _over(ActiveSessionRestored(grace_s=grace_s, race_s=race_s), records)


def run_checks(records: Iterable[TraceRecord], truth: GroundTruth, *, deadline_s: float,
               tolerance_wh: float = 10.0, lag_s: float = 60.0, cost_tolerance: float = 0.01,
               grace_s: float = 5.0, race_s: float = 5.0, validator: Validator | None = None) -> list[CheckResult]:
    """Every check of :data:`CHECK_NAMES`, in that order, over one finished list of records."""
    params = CheckParams(deadline_s=deadline_s, tolerance_wh=tolerance_wh, lag_s=lag_s, cost_tolerance=cost_tolerance,
                         grace_s=grace_s, race_s=race_s)
    checks = Checks(params, truth=truth, validator=validator)
    for record in records:
        checks.observe(record)
    checks.settle()
    return checks.results()
