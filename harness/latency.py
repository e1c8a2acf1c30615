"""Latencies of a run, in wall milliseconds, measured as the observations pass.

Each figure pairs two records the taps wrote (their ``t_wall``):

==================================  ===============================================================
name                                from -> to
==================================  ===============================================================
``rest.start``, ``rest.stop``       an app's REST request -> its response (per user, in order)
``ocpp.call``                       an OCPP CALL -> the CALLRESULT/CALLERROR with its uniqueId
``gateway.push``                    a Redis publish on ``user:U:*`` -> the same message on a socket of U
``e2e.start_to_session_started``    an app's start request -> the first ``session_started`` on its sockets
``e2e.meter_values_to_app``         a charge point's MeterValues -> the app's ``meter_value`` of that
                                    transaction and timestamp
==================================  ===============================================================

:data:`LATENCIES` holds those words (the report shows them, from
results.json). :class:`LatencyPairs` keeps the open first halves of pairs,
each for at most :data:`PAIR_WINDOW_S` wall seconds (a half that old is
never completed in a working run), so its memory follows the traffic in
flight. :class:`LatencyStats` is the pipeline's consumer: per name a
streaming histogram (HdrHistogram, 3 significant figures: a percentile is
within 0.1 % of the exact one) for the run's percentiles, exact counts in
the buckets of :data:`HISTOGRAM_EDGES_MS`, and a coarser histogram (2
significant figures, 1 %) per bucket of simulated time for p50 and p99
over the run. Count, mean and max are exact.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from hdrh.histogram import HdrHistogram

from ._access import fingerprint
from .pipeline import Consumer, Found
from .trace import TraceRecord

__all__ = [
    "HISTOGRAM_EDGES_MS",
    "LATENCIES",
    "PAIR_WINDOW_S",
    "Distribution",
    "Latency",
    "LatencyPairs",
    "LatencySample",
    "LatencyStats",
    "latencies",
    "latency_histograms",
    "latency_over_time",
    "latency_samples",
    "latency_summary",
]


@dataclass(frozen=True, slots=True)
class Latency:
    """What one latency measures: a hop or end to end, and from what to what, in words."""

    kind: str  # "hop" | "end to end"
    description: str


LATENCIES: Final[dict[str, Latency]] = {
    "rest.start": Latency("hop", "an app's POST /api/charging/start to its response"),
    "rest.stop": Latency("hop", "an app's POST /api/charging/stop to its response"),
    "ocpp.call": Latency("hop", "an OCPP CALL to its CALLRESULT or CALLERROR"),
    "gateway.push": Latency("hop", "a Redis publish to the same message on each of the user's sockets"),
    "e2e.start_to_session_started": Latency("end to end",
                                            "an app's start request to session_started on its sockets"),
    "e2e.meter_values_to_app": Latency("end to end", "a charge point's MeterValues to the app's meter_value"),
}
"""Every latency, by name, in the order reports show them."""

HISTOGRAM_EDGES_MS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000)
"""Upper edges (ms) of the latency histograms' buckets; a last bucket holds everything slower."""

PAIR_WINDOW_S: Final = 120.0
"""Wall seconds a first half (a request, a CALL, a publish, a MeterValues) waits for its second."""

_REST = {"backend:/api/charging/start": "rest.start", "backend:/api/charging/stop": "rest.stop"}
_HIGHEST_US: Final = 3_600_000_000  # one hour: slower pairs are counted at it


class LatencySample(NamedTuple):
    """One measured latency: its name (of :data:`LATENCIES`), when it completed (``t_sim``), how long (ms)."""

    name: str
    t_sim: float
    ms: float


class _Window(dict[Any, float]):
    """First halves by key, in the order they came; :meth:`forget` drops those older than the window."""

    def forget(self, t_wall: float) -> None:
        horizon = t_wall - PAIR_WINDOW_S
        while self:
            key = next(iter(self))
            if self[key] >= horizon:
                return
            del self[key]


class LatencyPairs:
    """The open halves of every pair; :meth:`feed` takes records in order and returns completed pairs."""

    def __init__(self) -> None:
        self.rest: dict[tuple[int | None, str], deque[float]] = defaultdict(deque)
        self.calls = _Window()
        self.published = _Window()
        self.starts: dict[int | None, deque[float]] = defaultdict(deque)
        self.meters = _Window()
        self._swept = 0.0

    def feed(self, r: TraceRecord) -> list[tuple[str, float]]:
        """(name, ms) of each pair ``r`` completes, and note ``r`` as the first half of later ones."""
        if r.t_wall >= self._swept + 1.0:
            self._sweep(r.t_wall)
        message = r.message
        if r.hop == "app-backend":
            return self._rest(r)
        if r.hop == "ocpp" and isinstance(message, list) and len(message) >= 3:
            return self._ocpp(r, message)
        if r.hop == "redis" and r.channel.startswith("redis:user:"):
            user = r.channel.split(":")[2]
            self.published.setdefault((user, fingerprint(message)), r.t_wall)
        elif r.hop == "gateway-app" and r.direction == "receive" and isinstance(message, dict):
            sent = self.published.get((str(r.user_id), fingerprint(message)))
            pushed = [] if sent is None else [("gateway.push", (r.t_wall - sent) * 1000)]
            return pushed + self._app_message(r, message)
        return []

    def _sweep(self, t_wall: float) -> None:
        self._swept = t_wall
        for window in (self.calls, self.published, self.meters):
            window.forget(t_wall)
        horizon = t_wall - PAIR_WINDOW_S
        for waiting in (*self.rest.values(), *self.starts.values()):
            while waiting and waiting[0] < horizon:
                waiting.popleft()

    def _rest(self, r: TraceRecord) -> list[tuple[str, float]]:
        name = _REST.get(r.channel)
        if name is None:
            return []
        pending = self.rest[r.user_id, name]
        if r.direction == "request":
            pending.append(r.t_wall)
            if name == "rest.start":
                self.starts[r.user_id].append(r.t_wall)
            return []
        if not pending:
            return []
        requested = pending.popleft()
        if name == "rest.start" and r.status != 200:
            # A refused start leads to no session_started: it must not pair with the user's next one.
            with suppress(ValueError):
                self.starts[r.user_id].remove(requested)
        return [(name, (r.t_wall - requested) * 1000)]

    def _ocpp(self, r: TraceRecord, frame: list[Any]) -> list[tuple[str, float]]:
        kind, unique = frame[0], str(frame[1])
        if kind == 2:
            self.calls[r.channel, unique] = r.t_wall
            if frame[2] == "MeterValues" and len(frame) > 3 and isinstance(frame[3], dict):
                payload = frame[3]
                for sample in payload.get("meterValue", []):
                    if isinstance(sample, dict):
                        self.meters.setdefault((payload.get("transactionId"), sample.get("timestamp")), r.t_wall)
        elif kind in (3, 4) and (r.channel, unique) in self.calls:
            return [("ocpp.call", (r.t_wall - self.calls.pop((r.channel, unique))) * 1000)]
        return []

    def _app_message(self, r: TraceRecord, message: dict[str, Any]) -> list[tuple[str, float]]:
        event = message.get("event")
        if event == "session_started" and self.starts[r.user_id]:
            return [("e2e.start_to_session_started", (r.t_wall - self.starts[r.user_id].popleft()) * 1000)]
        if event == "meter_value":
            data = message.get("data") or {}
            sampled = self.meters.get((message.get("transaction_id"), data.get("timestamp")))
            if sampled is not None:
                return [("e2e.meter_values_to_app", (r.t_wall - sampled) * 1000)]
        return []


class Distribution:
    """A streaming distribution: an HdrHistogram of ``value * scale`` as whole numbers, and exact count, sum, max.

    ``figures`` significant figures (3: percentiles within 0.1 %); values
    below 0 count as 0, above 3.6e9 / ``scale`` (an hour of microseconds)
    as that.
    """

    def __init__(self, figures: int = 3, *, scale: float = 1000.0) -> None:
        # 4-byte counts: 4 billion samples per histogram are enough, at half the memory
        self.hdr = HdrHistogram(1, _HIGHEST_US, figures, word_size=4)
        self.scale = scale
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        self.hdr.record_value(min(_HIGHEST_US, max(0, round(value * self.scale))))
        self.count += 1
        self.total += value
        self.max = max(self.max, value)

    def merge(self, other: Distribution) -> None:
        self.hdr.add(other.hdr)
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def at(self, percent: float) -> float:
        return float(self.hdr.get_value_at_percentile(percent)) / self.scale

    def summary(self, digits: int = 1) -> dict[str, float | int]:
        """count, mean, p10, p50, p90, p95, p99 and max (zeros when empty), as ``kpi.percentiles`` gives them."""
        if not self.count:
            return {"count": 0, "mean": 0.0, "p10": 0.0, "p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
        found: dict[str, float | int] = {"count": self.count, "mean": _round(self.total / self.count, digits)}
        for name, percent in (("p10", 10), ("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
            found[name] = _round(min(self.at(percent), self.max), digits)
        found["max"] = _round(self.max, digits)
        return found


def _round(value: float, digits: int) -> float | int:
    return round(value) if digits == 0 else round(value, digits)


class LatencyStats(Consumer):
    """The pipeline's latency consumer: every pair as it completes, into streaming histograms.

    ``bucket_s``: simulated seconds per bucket of the series over time
    (``default_latency_bucket`` of the scenario's duration); None picks 60 s
    and doubles it whenever the run outgrows :data:`MAX_BUCKETS` buckets.
    """

    MAX_BUCKETS: Final = 120

    def __init__(self, *, bucket_s: float | None = None) -> None:
        if bucket_s is not None and not bucket_s > 0:
            raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")
        self.pairs = LatencyPairs()
        self.whole = {name: Distribution(3) for name in LATENCIES}
        self.edges = {name: [0] * (len(HISTOGRAM_EDGES_MS) + 1) for name in LATENCIES}
        self._fixed = bucket_s is not None
        self.bucket_s = bucket_s or 60.0
        self._buckets: dict[int, dict[str, Distribution]] = {}
        self.t_end = 0.0
        self.seen = False

    def on_record(self, record: TraceRecord) -> Found:
        self.seen = True
        if record.t_sim > self.t_end:
            self.t_end = record.t_sim
        for name, ms in self.pairs.feed(record):
            self.add(LatencySample(name, record.t_sim, ms))
        return None

    def add(self, sample: LatencySample) -> None:
        name, ms = sample.name, sample.ms
        self.whole[name].add(ms)
        self.edges[name][bisect.bisect_left(HISTOGRAM_EDGES_MS, ms)] += 1
        index = max(0, math.floor(sample.t_sim / self.bucket_s))
        while not self._fixed and index >= self.MAX_BUCKETS:
            self._coarsen()
            index = max(0, math.floor(sample.t_sim / self.bucket_s))
        per_name = self._buckets.setdefault(index, {})
        if name not in per_name:
            per_name[name] = Distribution(2)
        per_name[name].add(ms)

    def _coarsen(self) -> None:
        """Double the bucket: merge each pair of buckets."""
        self.bucket_s *= 2
        merged: dict[int, dict[str, Distribution]] = {}
        for index, per_name in self._buckets.items():
            into = merged.setdefault(index // 2, {})
            for name, histogram in per_name.items():
                if name in into:
                    into[name].merge(histogram)
                else:
                    into[name] = histogram
        self._buckets = merged

    # --- results ------------------------------------------------------------------------------

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Percentiles (ms) of every latency of :data:`LATENCIES` (``metrics.latency_ms``)."""
        return {name: histogram.summary() for name, histogram in self.whole.items()}

    def histograms(self) -> dict[str, Any]:
        """``metrics.latency_histograms``: counts per bucket of :data:`HISTOGRAM_EDGES_MS` (the last: slower)."""
        return {"edges_ms": list(HISTOGRAM_EDGES_MS), "counts": {name: list(c) for name, c in self.edges.items()}}

    def over_time(self) -> dict[str, Any]:
        """``metrics.latency_over_time``: p50 and p99 per bucket of simulated time, ``None`` where none."""
        buckets = math.floor(self.t_end / self.bucket_s) + 1 if self.seen else 0
        series: dict[str, dict[str, list[Any]]] = {}
        for name in LATENCIES:
            found = [self._buckets.get(i, {}).get(name) for i in range(buckets)]
            stats = [h.summary() if h is not None else None for h in found]
            series[name] = {"count": [s["count"] if s else 0 for s in stats],
                            "p50": [s["p50"] if s else None for s in stats],
                            "p99": [s["p99"] if s else None for s in stats]}
        return {"bucket_s": self.bucket_s, "t_sim": [i * self.bucket_s for i in range(buckets)], "series": series}

    @staticmethod
    def descriptions() -> dict[str, dict[str, str]]:
        """``metrics.latency_descriptions``: each latency's kind and what it measures, for the report."""
        return {name: {"kind": latency.kind, "description": latency.description} for name, latency in LATENCIES.items()}


# --- over a finished list of records ---------------------------------------------------------


def latency_samples(records: Iterable[TraceRecord]) -> Iterator[LatencySample]:
    """Every measured latency, in order of the record that completes its pair (whose ``t_sim`` it has)."""
    pairs = LatencyPairs()
    for r in records:
        for name, ms in pairs.feed(r):
            yield LatencySample(name, r.t_sim, ms)


def latencies(records: Iterable[TraceRecord]) -> dict[str, list[float]]:
    """Every measured latency (ms) by name, in order."""
    found: dict[str, list[float]] = {name: [] for name in LATENCIES}
    for sample in latency_samples(records):
        found[sample.name].append(sample.ms)
    return found


def _stats(records: Iterable[TraceRecord], bucket_s: float | None = None) -> LatencyStats:
    stats = LatencyStats(bucket_s=bucket_s)
    for record in records:
        stats.on_record(record)
    return stats


def latency_summary(records: Iterable[TraceRecord]) -> Mapping[str, dict[str, float | int]]:
    """Percentiles (ms) of every latency of :data:`LATENCIES`, as :class:`LatencyStats` gives them."""
    return _stats(records).summary()


def latency_histograms(records: Iterable[TraceRecord]) -> dict[str, Any]:
    """:meth:`LatencyStats.histograms` of ``records``."""
    return _stats(records).histograms()


def latency_over_time(records: Sequence[TraceRecord], *, bucket_s: float | None = None) -> dict[str, Any]:
    """:meth:`LatencyStats.over_time` of ``records``; ``bucket_s`` defaults to the latency bucket of the last
    record's ``t_sim`` (``series.default_latency_bucket``). ValueError when ``bucket_s`` is not positive."""
    from .series import default_latency_bucket

    if bucket_s is None:
        bucket_s = default_latency_bucket(max((r.t_sim for r in records), default=0.0))
    return _stats(records, bucket_s).over_time()
