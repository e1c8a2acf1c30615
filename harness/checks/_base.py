"""The parts every online check shares: violations, results, the check's life cycle, and its agenda.

A check is fed the observations of a run in order (:meth:`Check.observe`),
is told when time passes without traffic (:meth:`Check.advance`), and is
settled once at the end of the run (:meth:`Check.settle`). Each call
returns the violations it became certain of; the check keeps only the state
it still needs to decide the rest.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..trace import TraceRecord
from ..truth import StationTruth

__all__ = ["Agenda", "Check", "CheckParams", "CheckResult", "InvariantViolation", "Settlement", "StationTruth",
           "violation"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class InvariantViolation:
    """One way in which a run breaks one check.

    ``message`` says in words what was wrong; ``hop`` is the hop of the
    offending record (the first of ``records``); ``expected`` and ``actual``
    are values. For ``schema_and_rules``, ``rule``, ``pointer`` and ``spec``
    are the contracts violation's rule, JSON pointer and spec section.
    ``t_wall`` is when the check became certain of it (wall seconds since
    the run's start, on the clock of the records): how early it was reported.
    """

    check: str
    message: str
    hop: str | None
    records: tuple[TraceRecord, ...] = ()
    expected: Any = None
    actual: Any = None
    rule: str | None = None
    pointer: str | None = None
    spec: str | None = None
    t_wall: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: the fields, each record as line, hop, channel, times and message."""
        return {
            "check": self.check, "message": self.message, "hop": self.hop,
            "expected": self.expected, "actual": self.actual, "rule": self.rule, "pointer": self.pointer,
            "spec": self.spec, "reported_t_wall": self.t_wall,
            "records": [{"line": r.line, "hop": r.hop, "channel": r.channel, "direction": r.direction,
                         "t_sim": r.t_sim, "t_wall": r.t_wall, "user_id": r.user_id, "socket_id": r.socket_id,
                         "message": r.message} for r in self.records],
        }


def violation(check: str, message: str, *records: TraceRecord, expected: Any = None,
              actual: Any = None) -> InvariantViolation:
    """A violation citing ``records`` (the offending one first)."""
    return InvariantViolation(check, message, records[0].hop if records else None, records, expected, actual)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check found: ``checked`` counts the things it judged (records, sessions, deliveries).

    ``violations`` holds those kept in full (a run keeps the first
    thousand); ``count`` is how many it found in all (None: all are kept)
    and ``rules`` how many per rule (the contracts' rule for
    ``schema_and_rules``, else the check's name).
    """

    name: str
    checked: int
    violations: list[InvariantViolation] = field(default_factory=list)
    count: int | None = None
    rules: dict[str, int] | None = None

    @property
    def violation_count(self) -> int:
        return len(self.violations) if self.count is None else self.count

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "checked": self.checked,
                "violation_count": self.violation_count, "violations": [v.to_dict() for v in self.violations]}


@dataclass(frozen=True, slots=True)
class CheckParams:
    """The tolerances and windows of the checks (a run writes them into its trace's ``twin:run`` record).

    ``deadline_s``: simulated seconds from a start's response to its
    ``session_started``. ``tolerance_wh``, ``lag_s``: how far the energy an
    app is told may lie from the model's, and how old its reading may be.
    ``cost_tolerance``: in the station's currency. ``grace_s``: simulated
    seconds a socket must be open after a publish to be owed it, and after
    connecting to be owed its ``active_session_update``. ``race_s``: a
    session that starts or ends this close to a connect is not judged at
    that connect. ``retention_s`` / ``retention_wall_s``: how long (both
    simulated and wall seconds must pass) a check remembers what it may
    still need for messages that arrive late: a session's owner and ids
    after its end, a publish waiting for its copies.
    """

    deadline_s: float = 120.0
    tolerance_wh: float = 10.0
    lag_s: float = 60.0
    cost_tolerance: float = 0.01
    grace_s: float = 5.0
    race_s: float = 5.0
    retention_s: float = 900.0
    retention_wall_s: float = 30.0

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckParams:
        """The parameters of ``data`` (unknown keys ignored, missing ones default); ValueError if not numbers."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        for name, value in known.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"check parameter {name} must be a number, not {value!r}")
        return cls(**{name: float(value) for name, value in known.items()})


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a check is told when the run ends: the last instant, and the model's truth if known.

    ``stations`` is None when the observations carried no station truth
    (a trace of someone else's capture): checks that need it judge nothing.
    """

    t_sim: float
    t_wall: float
    stations: Mapping[str, StationTruth] | None = None


class Check:
    """An online check: one rule, one name, fed in order; see the module's docstring for the call order.

    ``checked`` counts what it judged so far. Subclasses override
    :meth:`observe` and, when they defer decisions, :meth:`advance` and
    :meth:`settle`.
    """

    name: str = ""

    def __init__(self) -> None:
        self.checked = 0

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        return ()

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        """Time has reached ``t_sim`` / ``t_wall`` (called before each record, and on ticks)."""
        return ()

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        """The run ended: decide everything still open."""
        return ()

    def state_size(self) -> int:
        """How many items of state the check holds now (for tests and benchmarks of bounded memory)."""
        return 0


class Agenda(Generic[_T]):
    """Items due at a simulated time (and, optionally, not before a wall time), taken in due order.

    :meth:`due` yields every item whose simulated time has come and whose
    wall time, if given, has come too; an item whose wall time is still to
    come holds back those behind it (they are taken at a later call).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, float, _T]] = []
        self._order = itertools.count()

    def add(self, t_sim: float, item: _T, *, t_wall: float = float("-inf")) -> None:
        heapq.heappush(self._heap, (t_sim, next(self._order), t_wall, item))

    def due(self, t_sim: float, t_wall: float = float("inf")) -> Iterator[_T]:
        heap = self._heap
        while heap and heap[0][0] <= t_sim and heap[0][2] <= t_wall:
            yield heapq.heappop(heap)[3]

    def drain(self) -> Iterator[_T]:
        """Every item left, in due order."""
        while self._heap:
            yield heapq.heappop(self._heap)[3]

    def __len__(self) -> int:
        return len(self._heap)
