"""Latencies read off a trace: each pairs the two records it names."""

from __future__ import annotations

from typing import Any

import pytest

from chargetwin.harness.latency import latencies, latency_summary
from chargetwin.harness.trace import TraceRecord


def rec(hop: str, channel: str, direction: str, message: Any, t_wall: float, *, user_id: int | None = None,
        status: int | None = None) -> TraceRecord:
    return TraceRecord(hop=hop, channel=channel, direction=direction, message=message, t_sim=t_wall * 60,
                       t_wall=t_wall, user_id=user_id, status=status)


SESSION_STARTED = {"type": "session_update", "session_id": 1, "transaction_id": 7, "event": "session_started",
                   "data": {}, "timestamp": "2025-01-29T12:00:00Z"}
METER = {"type": "session_update", "session_id": 1, "transaction_id": 7, "event": "meter_value",
         "data": {"timestamp": "2025-01-29T12:01:00.000Z"}, "timestamp": "2025-01-29T12:01:00Z"}
TRACE = [
    rec("app-backend", "backend:/api/charging/start", "request", {"charger_id": "CP001"}, 1.000, user_id=5),
    rec("ocpp", "ocpp:CP001", "receive", [2, "a1", "RemoteStartTransaction", {}], 1.010),
    rec("ocpp", "ocpp:CP001", "send", [3, "a1", {"status": "Accepted"}], 1.030),
    rec("app-backend", "backend:/api/charging/start", "response", {"success": True}, 1.100, user_id=5, status=200),
    rec("redis", "redis:user:5:session_updates", "publish", SESSION_STARTED, 1.150),
    rec("gateway-app", "websocket", "receive", SESSION_STARTED, 1.160, user_id=5),
    rec("ocpp", "ocpp:CP001", "send",
        [2, "b2", "MeterValues", {"transactionId": 7, "meterValue": [{"timestamp": "2025-01-29T12:01:00.000Z"}]}],
        2.000),
    rec("redis", "redis:user:5:session_updates", "publish", METER, 2.050),
    rec("gateway-app", "websocket", "receive", METER, 2.070, user_id=5),
    rec("gateway-app", "websocket", "receive", METER, 2.090, user_id=6),  # another user's socket: not a push of U
]


def test_each_latency_pairs_its_two_records() -> None:
    found = latencies(TRACE)
    assert found["rest.start"] == pytest.approx([100.0])
    assert found["ocpp.call"] == pytest.approx([20.0])
    assert found["gateway.push"] == pytest.approx([10.0, 20.0])
    assert found["e2e.start_to_session_started"] == pytest.approx([160.0])
    assert found["e2e.meter_values_to_app"] == pytest.approx([70.0, 90.0])
    assert found["rest.stop"] == []


def test_summary_gives_percentiles_per_name() -> None:
    summary = latency_summary(TRACE)
    assert summary["rest.start"]["p99"] == pytest.approx(100.0)
    assert summary["rest.stop"]["count"] == 0


def test_a_refused_start_does_not_pair_with_the_users_next_session_started() -> None:
    refused = [
        rec("app-backend", "backend:/api/charging/start", "request", {"charger_id": "CP002"}, 0.100, user_id=5),
        rec("app-backend", "backend:/api/charging/start", "response", {"success": False}, 0.120, user_id=5,
            status=409),
    ]
    found = latencies(refused + TRACE)
    assert found["rest.start"] == pytest.approx([20.0, 100.0])
    assert found["e2e.start_to_session_started"] == pytest.approx([160.0])  # not 1,060 ms from the refused one
