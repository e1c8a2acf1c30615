"""Metrics over time, read off the trace: throughput per hop, latency over the simulated day.

Pure functions over trace records (any order); their output is JSON-ready
and small, for ``results.json`` (``metrics.throughput`` and
``metrics.latency_over_time``, ``docs/results-format.md``):

- :func:`throughput`: messages per wall second on each hop of
  :data:`~.trace.HOPS`, bucketed by ``t_wall``: the series of counts and its
  mean, p50, p99 and peak.
- :func:`latency_over_time`: p50 and p99 of each latency of
  :data:`~.latency.LATENCIES` per bucket of simulated time, bucketed by the
  ``t_sim`` of the record that completed the pair
  (:func:`~.latency.latency_samples`).

Percentiles are ``chargetwin.twin.model.kpi.percentiles`` (nearest rank), the
same as :func:`~.latency.latency_summary`'s.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

from ..twin.model.kpi import percentiles
from ..twin.model.series import default_bucket
from .latency import LATENCIES, LatencySample, latency_samples
from .trace import HOPS, TraceRecord

__all__ = ["HISTOGRAM_EDGES_MS", "MAX_POINTS", "default_latency_bucket", "latency_histograms", "latency_over_time",
           "throughput"]

HISTOGRAM_EDGES_MS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000)
"""Upper edges (ms) of the latency histograms' buckets; a last bucket holds everything slower."""

MAX_POINTS: Final = 400
"""At most this many points in a throughput series: longer runs get wider series buckets."""

"""Latency over time: about this many buckets over a run (see :func:`default_latency_bucket`)."""


def _index(t: float, bucket_s: float) -> int:
    return max(0, math.floor(t / bucket_s))


def _check_bucket(bucket_s: float) -> None:
    if not bucket_s > 0:
        raise ValueError(f"bucket_s must be a positive number of seconds, not {bucket_s!r}")


# --- throughput -------------------------------------------------------------------------


def throughput(records: Iterable[TraceRecord], *, bucket_s: float = 1.0,
               max_points: int = MAX_POINTS) -> dict[str, Any]:
    """Messages per wall second on each hop, from the run's start to its last record.

    Every record but a socket's ``close`` is a message of its hop, counted in
    the bucket ``floor(t_wall / bucket_s)``. Each hop of :data:`~.trace.HOPS`
    is always present (others only when seen); all hops share the buckets
    0 .. the last record's. ``mean``, ``p50``, ``p99`` and ``peak`` are
    messages per second (count / ``bucket_s``) over every bucket, quiet ones
    included (the last bucket may be partial). ``series`` lists counts per
    ``series_bucket_s``: ``bucket_s`` times the smallest whole factor that
    keeps it within ``max_points`` points. Empty input: empty series, zeros.
    ValueError when ``bucket_s`` is not positive or ``max_points`` < 1.
    """
    _check_bucket(bucket_s)
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, not {max_points!r}")
    counts = _counts_per_hop(records, bucket_s)
    buckets = max((len(c) for c in counts.values()), default=0)
    factor = max(1, math.ceil(buckets / max_points))
    return {"bucket_s": bucket_s, "series_bucket_s": bucket_s * factor,
            "hops": {hop: _hop_throughput(c + [0] * (buckets - len(c)), bucket_s, factor)
                     for hop, c in counts.items()}}


def _counts_per_hop(records: Iterable[TraceRecord], bucket_s: float) -> dict[str, list[int]]:
    """Per hop, messages per bucket (lists as long as that hop's last bucket)."""
    counts: dict[str, list[int]] = {hop: [] for hop in HOPS}
    for r in records:
        if r.direction == "close":
            continue
        series = counts.setdefault(r.hop, [])
        i = _index(r.t_wall, bucket_s)
        if i >= len(series):
            series.extend([0] * (i + 1 - len(series)))
        series[i] += 1
    return counts


def _hop_throughput(counts: Sequence[int], bucket_s: float, factor: int) -> dict[str, Any]:
    stats = percentiles([c / bucket_s for c in counts], digits=2)
    series = [sum(counts[i:i + factor]) for i in range(0, len(counts), factor)]
    return {"total": sum(counts), "mean": stats["mean"], "p50": stats["p50"], "p99": stats["p99"],
            "peak": stats["max"], "series": series}


# --- latency over time ------------------------------------------------------------------


def default_latency_bucket(duration_s: float) -> float:
    """The bucket for :func:`latency_over_time`: the model's city series rule
    (:func:`chargetwin.twin.model.series.default_bucket`), so that latency and
    city plots of one run share their buckets: ``duration_s`` / 60 rounded up to
    whole minutes, at least 60 s (1 minute for 15 minutes, 5 for 5 hours).
    """
    return default_bucket(duration_s)


def latency_over_time(records: Sequence[TraceRecord], *, bucket_s: float | None = None,
                      samples: Iterable[LatencySample] | None = None) -> dict[str, Any]:
    """p50 and p99 (ms) of each latency per bucket of simulated time.

    A latency (:func:`~.latency.latency_samples`) falls in the bucket
    ``floor(t_sim / bucket_s)`` of the record that completed its pair. All
    names share the buckets 0 .. the last record's (any record's, so the
    series span the run); ``t_sim`` lists each bucket's start. Per name,
    ``count``, ``p50`` and ``p99`` are lists of that length, the percentiles
    ``null`` where a bucket has no sample. ``bucket_s`` defaults to
    :func:`default_latency_bucket` of the last record's ``t_sim``; pass
    ``default_latency_bucket(scenario duration)`` to align runs of one
    scenario. ``samples``: the records' latency samples, when the caller
    already has them. ValueError when ``bucket_s`` is not positive.
    """
    t_end = max((r.t_sim for r in records), default=0.0)
    bucket = default_latency_bucket(t_end) if bucket_s is None else bucket_s
    _check_bucket(bucket)
    buckets = _index(t_end, bucket) + 1 if records else 0
    values: dict[str, list[list[float]]] = {name: [[] for _ in range(buckets)] for name in LATENCIES}
    for sample in latency_samples(records) if samples is None else samples:
        values[sample.name][_index(sample.t_sim, bucket)].append(sample.ms)
    return {"bucket_s": bucket, "t_sim": [i * bucket for i in range(buckets)],
            "series": {name: _latency_series(per_bucket) for name, per_bucket in values.items()}}


def _latency_series(per_bucket: Sequence[Sequence[float]]) -> dict[str, list[Any]]:
    stats = [percentiles(values, digits=1) if values else None for values in per_bucket]
    return {"count": [len(values) for values in per_bucket],
            "p50": [s["p50"] if s else None for s in stats],
            "p99": [s["p99"] if s else None for s in stats]}


# --- latency histograms -------------------------------------------------------------------


def latency_histograms(records: Iterable[TraceRecord], *, samples: Iterable[LatencySample] | None = None,
                       ) -> dict[str, Any]:
    """How many latencies of each name fell in each bucket of :data:`HISTOGRAM_EDGES_MS`.

    ``counts[name][i]`` counts latencies ``<= edges_ms[i]`` and above the edge
    before it; the last entry (one more than the edges) counts those above
    the last edge. Every name of :data:`~.latency.LATENCIES` is present.
    ``samples``: the records' latency samples, when the caller already has them.
    """
    counts = {name: [0] * (len(HISTOGRAM_EDGES_MS) + 1) for name in LATENCIES}
    for sample in latency_samples(records) if samples is None else samples:
        counts[sample.name][bisect.bisect_left(HISTOGRAM_EDGES_MS, sample.ms)] += 1
    return {"edges_ms": list(HISTOGRAM_EDGES_MS), "counts": counts}
