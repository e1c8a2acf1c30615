"""Throughput per hop, counted as the observations pass, and the buckets of a run's series over time.

:class:`Throughput` is the pipeline's consumer for ``metrics.throughput``
(``docs/results-format.md``): messages per wall second on each hop of
:data:`~.trace.HOPS`, bucketed by ``t_wall``, with the mean, p50, p99 and
peak of the per-second rates (exact: it keeps how many seconds had each
count, not the seconds) and a series of counts of at most
:data:`MAX_POINTS` points. Its memory does not grow with the run: the
series' buckets double in width whenever there are twice too many.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from ..twin.model.series import default_bucket
from .pipeline import Consumer, Found
from .trace import HOPS, TraceRecord

__all__ = ["MAX_POINTS", "Throughput", "default_latency_bucket", "throughput"]

MAX_POINTS: Final = 400
"""At most this many points in a throughput series: longer runs get wider series buckets."""

_NOT_MESSAGES: Final = frozenset({"close", "ping", "pong"})


def default_latency_bucket(duration_s: float) -> float:
    """The bucket for latency over time: the model's city series rule
    (:func:`chargetwin.twin.model.series.default_bucket`), so that latency and
    city plots of one run share their buckets: ``duration_s`` / 60 rounded up to
    whole minutes, at least 60 s (1 minute for 15 minutes, 5 for 5 hours).
    """
    return default_bucket(duration_s)


class _Hop:
    """One hop's counts: the bucket being filled, how many buckets had each count, the series' sums."""

    def __init__(self) -> None:
        self.current = -1
        self.count = 0
        self.rates: Counter[int] = Counter()
        self.sums: list[int] = []
        self.total = 0

    def add(self, index: int, group: int) -> None:
        self.total += 1
        if index > self.current:
            self.close(index)
            self.current = index
        self.count += 1
        position = max(index, self.current) // group
        if position >= len(self.sums):
            self.sums.extend([0] * (position + 1 - len(self.sums)))
        self.sums[position] += 1

    def close(self, until: int) -> None:
        """Close the bucket being filled and count the empty ones before ``until``."""
        if self.current >= 0:
            self.rates[self.count] += 1
        empty = until - self.current - 1
        if empty > 0:
            self.rates[0] += empty
        self.count = 0

    def coarsen(self) -> None:
        self.sums = [sum(self.sums[i:i + 2]) for i in range(0, len(self.sums), 2)]


class Throughput(Consumer):
    """Messages per wall second on each hop; every record but a socket's close or a ping is a message."""

    def __init__(self, *, bucket_s: float = 1.0, max_points: int = MAX_POINTS) -> None:
        if not bucket_s > 0:
            raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")
        if max_points < 1:
            raise ValueError(f"max_points must be at least 1, not {max_points!r}")
        self.bucket_s, self.max_points = bucket_s, max_points
        self._hops: dict[str, _Hop] = {hop: _Hop() for hop in HOPS}
        self._group = 1  # buckets per series sum
        self._last = -1

    def on_record(self, record: TraceRecord) -> Found:
        if record.direction in _NOT_MESSAGES or record.hop == "twin":
            return None
        index = max(0, math.floor(record.t_wall / self.bucket_s))
        if index > self._last:
            self._last = index
            while self._last // self._group >= 2 * self.max_points:
                self._group *= 2
                for hop in self._hops.values():
                    hop.coarsen()
        hop = self._hops.get(record.hop) or self._hops.setdefault(record.hop, _Hop())
        hop.add(index, self._group)
        return None

    def result(self) -> dict[str, Any]:
        """``metrics.throughput``: per hop total, mean, p50, p99, peak (messages/s) and the series of counts.

        Every hop of :data:`~.trace.HOPS` is present (others only when
        seen); all share the buckets from the run's start to its last
        record, quiet ones included in the statistics. The series lists
        counts per ``series_bucket_s``.
        """
        buckets = self._last + 1
        groups = math.ceil(buckets / self._group) if buckets else 0
        factor = max(1, math.ceil(groups / self.max_points))
        return {"bucket_s": self.bucket_s, "series_bucket_s": self.bucket_s * self._group * factor,
                "hops": {name: self._hop_result(hop, buckets, groups, factor) for name, hop in self._hops.items()}}

    def _hop_result(self, hop: _Hop, buckets: int, groups: int, factor: int) -> dict[str, Any]:
        rates = Counter(hop.rates)
        if hop.current >= 0:
            rates[hop.count] += 1
        quiet = buckets - sum(rates.values())
        if quiet > 0:
            rates[0] += quiet
        sums = hop.sums + [0] * (groups - len(hop.sums))
        series = [sum(sums[i:i + factor]) for i in range(0, len(sums), factor)]
        stats = _rate_stats(rates, self.bucket_s)
        return {"total": hop.total, **stats, "series": series}


def _rate_stats(rates: Counter[int], bucket_s: float) -> dict[str, float]:
    """mean, p50, p99 (nearest rank) and peak of per-second rates, from how many buckets had each count."""
    n = sum(rates.values())
    if not n:
        return {"mean": 0.0, "p50": 0.0, "p99": 0.0, "peak": 0.0}
    ordered = sorted(rates.items())

    def at(q: float) -> float:
        rank, seen = max(1, math.ceil(q * n)), 0
        for count, times in ordered:
            seen += times
            if seen >= rank:
                return round(count / bucket_s, 2)
        return round(ordered[-1][0] / bucket_s, 2)

    mean = sum(count * times for count, times in ordered) / n / bucket_s
    return {"mean": round(mean, 2), "p50": at(0.50), "p99": at(0.99), "peak": round(ordered[-1][0] / bucket_s, 2)}


def throughput(records: Iterable[TraceRecord], *, bucket_s: float = 1.0, max_points: int = MAX_POINTS,
               ) -> dict[str, Any]:
    """:class:`Throughput` over a finished list of records."""
    counter = Throughput(bucket_s=bucket_s, max_points=max_points)
    for record in records:
        counter.on_record(record)
    return counter.result()
