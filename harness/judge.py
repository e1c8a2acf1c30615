"""The standard consumers of one run's stream, and the results they add up to.

:class:`Judge` subscribes the checks, coverage, latency, throughput, the
per-hop counts and the twin's records to a :class:`~.pipeline.Pipeline`
(plus whatever the caller adds: the trace writer, the live display), and at
the end turns what they gathered into the results document
(``results.json``) and the thresholds. ``chargetwin run`` feeds it a live
stack; ``chargetwin validate`` feeds it a trace file; both describe the run
with the same :class:`RunHeader` (for a trace, its ``twin:run`` record), so
both reach the same verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .checks import CHECKS, CheckParams, Checks
from .coverage import Coverage
from .latency import LatencyStats
from .pipeline import Consumer, Found, Pipeline
from .results import results_document
from .series import Throughput, default_latency_bucket
from .thresholds import Threshold, Thresholds, judge
from .trace import TraceRecord
from .truth import RUN, TWIN_END

__all__ = ["SETTLE_S", "Judge", "RunEnd", "RunHeader"]

SETTLE_S = 2.0
"""Wall seconds between freezing the model and judging: messages in flight arrive."""


@dataclass(frozen=True, slots=True)
class RunHeader:
    """What a run is, as its ``twin:run`` record carries it: the scenario, the checks' parameters and limits.

    ``scenario``: name, source, seed, speed, duration_s (simulated seconds)
    and start (ISO), as results.json shows them. ``tariffs``: price per kWh
    by station. ``taps``: what the run could observe (``"heartbeat"``: the
    apps' pings and pongs). ``trace``: what its trace keeps (``full``, or
    ``violations``: only the records of each violation and their context,
    which a replay cannot judge as the run did).
    """

    scenario: Mapping[str, Any] = field(default_factory=dict)
    params: CheckParams = field(default_factory=CheckParams)
    thresholds: Thresholds = field(default_factory=Thresholds)
    tariffs: Mapping[str, float] = field(default_factory=dict)
    taps: tuple[str, ...] = ()
    trace: str = "full"

    def to_message(self) -> dict[str, Any]:
        return {"scenario": dict(self.scenario), "checks": self.params.to_dict(),
                "thresholds": self.thresholds.to_dict(), "tariffs": dict(self.tariffs), "taps": list(self.taps),
                "trace": self.trace}

    @classmethod
    def from_message(cls, message: Any) -> RunHeader:
        """The header of a ``twin:run`` message; ValueError saying which key is not what it must be."""
        if not isinstance(message, dict):
            raise ValueError("the twin:run record's message must be an object")
        parts = {key: message.get(key, {}) for key in ("scenario", "checks", "thresholds", "tariffs")}
        for key, value in parts.items():
            if not isinstance(value, dict):
                raise ValueError(f"the twin:run record's {key} must be an object, not {value!r}")
        tariffs = parts["tariffs"]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in tariffs.values()):
            raise ValueError("the twin:run record's tariffs must map station ids to prices")
        taps = message.get("taps", [])
        return cls(parts["scenario"], CheckParams.from_dict(parts["checks"]), Thresholds.from_dict(parts["thresholds"]),
                   {str(k): float(v) for k, v in tariffs.items()},
                   tuple(str(t) for t in taps) if isinstance(taps, list) else (), str(message.get("trace", "full")))


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ended, as its ``twin:end`` record carries it.

    ``complete``: it ran its whole duration (``stopped`` says why not).
    ``wall_seconds``: how long it ran. ``metrics``: what the runner measured
    that no record shows (clock lag, the CMS's backlog, the apps and the
    gateway, the model's KPIs and the city over time).
    """

    complete: bool = True
    stopped: str | None = None
    wall_seconds: float | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return {"complete": self.complete, "stopped": self.stopped, "wall_seconds": self.wall_seconds,
                "metrics": dict(self.metrics)}

    @classmethod
    def from_message(cls, message: Any) -> RunEnd:
        if not isinstance(message, dict) or not isinstance(message.get("metrics", {}), dict):
            raise ValueError("the twin:end record's message must be an object with an object of metrics")
        wall = message.get("wall_seconds")
        return cls(message.get("complete") is not False, message.get("stopped"),
                   float(wall) if isinstance(wall, int | float) and not isinstance(wall, bool) else None,
                   message.get("metrics", {}))


class _Counts(Consumer):
    """Records per hop, and the twin's header and end records as they pass."""

    def __init__(self) -> None:
        self.per_hop: Counter[str] = Counter()
        self.header: RunHeader | None = None
        self.end: RunEnd | None = None
        self.problems: list[str] = []

    def on_record(self, record: TraceRecord) -> Found:
        if record.hop != "twin":
            self.per_hop[record.hop] += 1
        elif record.channel == RUN and self.header is None:
            try:
                self.header = RunHeader.from_message(record.message)
            except ValueError as error:
                self.problems.append(f"line {record.line}: {error}")
        elif record.channel == TWIN_END:
            try:
                self.end = RunEnd.from_message(record.message)
            except ValueError as error:
                self.problems.append(f"line {record.line}: {error}")
        return None


class Judge:
    """The checks and figures of one run, subscribed to :attr:`pipeline`; :meth:`results` at the end.

    ``extra``: consumers to subscribe after the standard ones (the trace
    writer, the live display): they see every record after the checks and
    every violation.
    """

    def __init__(self, header: RunHeader, *, extra: Sequence[Consumer | None] = ()) -> None:
        self.header = header
        self.checks = Checks(header.params, tariffs=header.tariffs)
        self.coverage = Coverage(heartbeat_observed="heartbeat" in header.taps)
        duration = header.scenario.get("duration_s")
        bucket = default_latency_bucket(duration) if isinstance(duration, int | float) and duration > 0 else None
        self.latency = LatencyStats(bucket_s=bucket)
        self.throughput = Throughput()
        self.counts = _Counts()
        consumers: list[Consumer] = [self.checks, self.coverage, self.latency, self.throughput, self.counts]
        self.pipeline = Pipeline([*consumers, *(c for c in extra if c is not None)])

    def metrics(self, end: RunEnd) -> dict[str, Any]:
        """results.json's ``metrics``: the run's own figures (``end``) with what the consumers measured."""
        checked = self.checks.checks[0].checked
        wall = end.wall_seconds if end.wall_seconds is not None else self.pipeline.t_wall
        found: dict[str, Any] = {"wall_seconds": round(wall, 2), "messages_checked": checked,
                                 "messages_per_second": round(checked / wall, 1) if wall > 0 else 0.0,
                                 "messages_per_hop": dict(self.counts.per_hop)}
        found.update(end.metrics)
        found["throughput"] = self.throughput.result()
        found["latency_ms"] = self.latency.summary()
        found["latency_histograms"] = self.latency.histograms()
        found["latency_over_time"] = self.latency.over_time()
        found["latency_descriptions"] = self.latency.descriptions()
        return found

    def results(self, *, versions: Mapping[str, str], end: RunEnd | None = None,
                ) -> tuple[dict[str, Any], list[Threshold]]:
        """The results document and the judged thresholds; call after :meth:`Pipeline.end`.

        ``end``: how the run ended, when the caller knows (else the stream's
        ``twin:end`` record, else "complete, nothing more known").
        """
        end = end or self.counts.end or RunEnd()
        checks = self.checks.results()
        metrics = self.metrics(end)
        thresholds = judge(self.header.thresholds, violations=self.checks.violation_count, metrics=metrics,
                           settle_s=SETTLE_S, complete=end.complete, stopped=end.stopped)
        document = results_document(checks, scenario=self.header.scenario, metrics=metrics, versions=versions,
                                    thresholds=thresholds, descriptions=CHECKS, coverage=self.coverage.result(),
                                    complete=end.complete, stopped=end.stopped)
        return document, thresholds
