"""Throughput per hop and latency over simulated time, on records with known counts and latencies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chargetwin.harness.latency import (
    HISTOGRAM_EDGES_MS,
    LATENCIES,
    latencies,
    latency_histograms,
    latency_over_time,
)
from chargetwin.harness.series import MAX_POINTS, default_latency_bucket, throughput
from chargetwin.harness.trace import HOPS, TraceRecord

START = "backend:/api/charging/start"


def rec(hop: str, t_wall: float, *, t_sim: float = 0.0, direction: str = "receive", channel: str = "websocket",
        message: Any = None, user_id: int | None = None) -> TraceRecord:
    return TraceRecord(hop=hop, channel=channel, direction=direction, message=message or {}, t_sim=t_sim,
                       t_wall=t_wall, user_id=user_id)


def publish(t_wall: float, t_sim: float = 0.0) -> TraceRecord:
    return rec("redis", t_wall, t_sim=t_sim, direction="publish", channel="redis:user:5:notifications")


def start_call(t_sim: float, t_sim_done: float, ms: float, *, user: int = 5) -> list[TraceRecord]:
    """An app's start request at ``t_sim`` and its response ``ms`` wall milliseconds later at ``t_sim_done``."""
    t_wall = t_sim / 60
    return [rec("app-backend", t_wall, t_sim=t_sim, direction="request", channel=START, user_id=user),
            rec("app-backend", t_wall + ms / 1000, t_sim=t_sim_done, direction="response", channel=START,
                user_id=user)]


def _json_ready(value: dict[str, Any]) -> None:
    assert json.loads(json.dumps(value, allow_nan=False)) == value


# --- throughput -------------------------------------------------------------------------

TRAFFIC = [publish(0.1), rec("gateway-app", 0.0), publish(0.5), publish(1.2), rec("ocpp", 2.0),
           rec("gateway-app", 3.5, direction="close"), publish(3.9)]


def test_throughput_counts_messages_per_wall_second_per_hop() -> None:
    result = throughput(TRAFFIC)
    _json_ready(result)
    assert (result["bucket_s"], result["series_bucket_s"]) == (1.0, 1.0)
    hops = result["hops"]
    assert list(hops) == list(HOPS)
    assert hops["redis"] == {"total": 4, "mean": 1.0, "p50": 1.0, "p99": 2.0, "peak": 2.0, "series": [2, 1, 0, 1]}
    assert hops["ocpp"]["series"] == [0, 0, 1, 0]  # every hop spans the run
    assert hops["gateway-app"]["series"] == [1, 0, 0, 0]  # the close is not a message
    assert hops["cms-backend"] == {"total": 0, "mean": 0.0, "p50": 0.0, "p99": 0.0, "peak": 0.0,
                                   "series": [0, 0, 0, 0]}


def test_throughput_rates_are_per_second_whatever_the_bucket() -> None:
    redis = throughput(TRAFFIC, bucket_s=0.5)["hops"]["redis"]
    assert redis["series"] == [1, 1, 1, 0, 0, 0, 0, 1]
    assert redis["peak"] == 2.0 and redis["mean"] == 1.0


def test_throughput_of_a_long_run_keeps_its_series_short() -> None:
    coarse = throughput(TRAFFIC, max_points=3)
    assert coarse["series_bucket_s"] == 2.0
    assert coarse["hops"]["redis"]["series"] == [3, 1]
    assert coarse["hops"]["redis"]["peak"] == 2.0  # statistics from the 1-second buckets
    five_hours = throughput([publish(0.0), publish(5 * 3600 - 0.1)])  # a 5-hour run in real time
    series = five_hours["hops"]["redis"]["series"]
    # the series' buckets double while a run goes (its length is not known in advance): 64 s, not 45
    assert len(series) <= MAX_POINTS and sum(series) == 2 and five_hours["series_bucket_s"] == 64.0


def test_throughput_of_no_records() -> None:
    result = throughput([])
    assert result["hops"]["redis"] == {"total": 0, "mean": 0.0, "p50": 0.0, "p99": 0.0, "peak": 0.0, "series": []}
    assert list(result["hops"]) == list(HOPS)


def test_throughput_refuses_a_bucket_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="bucket_s"):
        throughput(TRAFFIC, bucket_s=0)
    with pytest.raises(ValueError, match="max_points"):
        throughput(TRAFFIC, max_points=0)


# --- latency over time ------------------------------------------------------------------


def test_latency_percentiles_per_bucket_of_simulated_time() -> None:
    records = [*start_call(10, 16, 100), *start_call(55, 65, 50), *start_call(70, 75, 30), publish(4.0, 200)]
    result = latency_over_time(records, bucket_s=60)
    _json_ready(result)
    assert result["bucket_s"] == 60 and result["t_sim"] == [0, 60, 120, 180]
    # the call sent at 55 completes at 65: it counts in the second bucket
    # per bucket, percentiles have 2 significant figures (within 1 %)
    assert result["series"]["rest.start"] == {"count": [1, 2, 0, 0],
                                              "p50": [pytest.approx(100.0, rel=0.01), pytest.approx(30.0, rel=0.01),
                                                      None, None],
                                              "p99": [pytest.approx(100.0, rel=0.01), pytest.approx(50.0, rel=0.01),
                                                      None, None]}
    assert result["series"]["rest.stop"] == {"count": [0] * 4, "p50": [None] * 4, "p99": [None] * 4}
    assert list(result["series"]) == list(LATENCIES)


def test_latency_over_time_holds_every_latency_of_the_summary() -> None:
    records = [*start_call(10, 16, 100), *start_call(70, 75, 30, user=6), *start_call(300, 301, 20)]
    series = latency_over_time(records, bucket_s=120)["series"]
    assert {name: sum(s["count"]) for name, s in series.items()} == \
        {name: len(values) for name, values in latencies(records).items()}


def test_latency_over_time_of_no_records() -> None:
    result = latency_over_time([])
    assert result == {"bucket_s": 60.0, "t_sim": [],
                      "series": {name: {"count": [], "p50": [], "p99": []} for name in LATENCIES}}
    with pytest.raises(ValueError, match="bucket_s"):
        latency_over_time([], bucket_s=-1)


@pytest.mark.parametrize(("duration_s", "bucket_s"),
                         [(0, 60), (900, 60), (3600, 60), (3601, 120), (5 * 3600, 300), (86400, 1440)])
def test_default_latency_bucket_gives_about_sixty_points(duration_s: float, bucket_s: float) -> None:
    assert default_latency_bucket(duration_s) == bucket_s


def test_latency_over_a_five_hour_run_has_about_sixty_points() -> None:
    records = [*start_call(10, 16, 100), publish(300.0, 5 * 3600)]
    result = latency_over_time(records)
    assert result["bucket_s"] == 300 and len(result["t_sim"]) == 61
    assert result["series"]["rest.start"]["count"][0] == 1


def test_latency_histograms_count_each_latency_in_its_bucket() -> None:
    records = []
    for user, ms in ((1, 0.5), (2, 1.0), (3, 7.0), (4, 90_000.0)):  # rest.start latencies
        records += [TraceRecord("app-backend", "backend:/api/charging/start", "request", {}, 0.0, 0.0,
                                user_id=user),
                    TraceRecord("app-backend", "backend:/api/charging/start", "response", {}, 0.0, ms / 1000,
                                status=200, user_id=user)]
    histogram = latency_histograms(records)
    counts = histogram["counts"]["rest.start"]
    assert histogram["edges_ms"] == list(HISTOGRAM_EDGES_MS)
    assert len(counts) == len(HISTOGRAM_EDGES_MS) + 1 and sum(counts) == 4
    assert counts[0] == 2  # 0.5 and exactly 1.0 ms: at most the first edge
    assert counts[HISTOGRAM_EDGES_MS.index(10)] == 1  # 7 ms: above 5, at most 10
    assert counts[-1] == 1  # above the last edge
    assert sum(histogram["counts"]["rest.stop"]) == 0
