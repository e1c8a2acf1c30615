"""One stream of typed observations, and the consumers that subscribe to it.

Every tap of a run (app <-> backend REST, backend <-> CMS REST, the CMS's
events, every Redis message, every WebSocket message, close frame and ping
an app sees, every OCPP frame) and the twin's own records of what the model
knows (:mod:`.truth`) emit one :class:`~.trace.TraceRecord` into a
:class:`Pipeline`. Consumers subscribe to it: the checks (the contracts'
validator among them), latency, throughput, coverage, the trace writer, the
live display; the results and JUnit files are written from what they
gathered. The source does not know who listens: ``run`` taps a live stack,
``validate`` reads a trace file, and both feed the same pipeline.

Call order: :meth:`Pipeline.emit` every observation in the order it was
seen, :meth:`Pipeline.tick` now and then when traffic may pause (a live
run), :meth:`Pipeline.end` once. A consumer's hooks may return violations;
the pipeline hands each to every consumer's :meth:`Consumer.on_violation`
right after all consumers have seen the observation that led to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

from .trace import TraceRecord

if TYPE_CHECKING:  # the checks are consumers themselves: they import this module
    from collections.abc import Iterable

    from .checks import InvariantViolation

__all__ = ["Consumer", "Found", "Pipeline"]

Found: TypeAlias = "Iterable[InvariantViolation] | None"
"""What a hook returns: the violations it became certain of, or None."""


class Consumer:
    """A subscriber of the pipeline; every hook does nothing unless overridden."""

    def on_record(self, record: TraceRecord) -> Found:
        """One observation, in order."""
        return None

    def on_violation(self, violation: InvariantViolation) -> None:
        """A violation a consumer (a check) reported, as soon as it was certain."""

    def on_tick(self, t_sim: float, t_wall: float) -> Found:
        """Time passed (simulated and wall seconds since the run's start), with or without traffic."""
        return None

    def on_end(self, t_sim: float, t_wall: float) -> Found:
        """The stream ended at this instant: decide what is still open."""
        return None


class Pipeline:
    """Hands each observation to every consumer, then the violations it led to."""

    def __init__(self, consumers: Sequence[Consumer] = ()) -> None:
        self.consumers: list[Consumer] = list(consumers)
        self.t_sim = 0.0
        self.t_wall = 0.0
        self.observations = 0
        self.violations = 0
        self.ended = False

    def subscribe(self, consumer: Consumer) -> None:
        self.consumers.append(consumer)

    def emit(self, record: TraceRecord) -> None:
        self.observations += 1
        if record.t_sim > self.t_sim:
            self.t_sim = record.t_sim
        if record.t_wall > self.t_wall:
            self.t_wall = record.t_wall
        self._dispatch([consumer.on_record(record) for consumer in self.consumers])

    def tick(self, t_sim: float, t_wall: float) -> None:
        self.t_sim, self.t_wall = max(self.t_sim, t_sim), max(self.t_wall, t_wall)
        self._dispatch([consumer.on_tick(self.t_sim, self.t_wall) for consumer in self.consumers])

    def end(self) -> None:
        """The stream is over (at the last instant seen); call once."""
        if self.ended:
            return
        self.ended = True
        self._dispatch([consumer.on_end(self.t_sim, self.t_wall) for consumer in self.consumers])

    def _dispatch(self, found: list[Found]) -> None:
        for violations in found:
            if not violations:
                continue
            for violation in violations:
                self.violations += 1
                for consumer in self.consumers:
                    consumer.on_violation(violation)
