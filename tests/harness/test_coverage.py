"""A run's coverage matrix: counts per spec item, invalid records counted once, unmatched records, heartbeat."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from trace_testkit import TraceKit, good_session, meter_value

from chargetwin.contracts import catalog
from chargetwin.contracts.coverage import SPEC_ITEMS
from chargetwin.harness.checks import CheckResult, schema_and_rules
from chargetwin.harness.coverage import STATES, coverage
from chargetwin.harness.trace import TraceRecord, TraceWriter, read_trace


def run(records: list[TraceRecord], **options: Any) -> dict[str, Any]:
    return coverage(records, schema_and_rules(records), **options)


def by_key(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for item in result["items"]}


def numbered(records: list[TraceRecord]) -> list[TraceRecord]:
    """The records as read from a file: lines 1, 2, ..."""
    return [replace(record, line=i) for i, record in enumerate(records, 1)]


def ocpp(direction: str, frame: list[Any], t: float = 0.0) -> TraceRecord:
    return TraceRecord("ocpp", "ocpp:CP001", direction, frame, t, t, charger_id="CP001")


def event(direction: str, message: Any, request_id: str, status: int | None = None) -> TraceRecord:
    return TraceRecord("cms-backend", catalog.CMS_EVENTS_CHANNEL, direction, message, 0.0, 0.0, status=status,
                       request_id=request_id)


def broken_meter_value() -> dict[str, Any]:
    """A meter_value update with two things wrong (two violations, one record)."""
    message = meter_value(456, 1.0)
    del message["timestamp"]
    del message["transaction_id"]
    return message


def test_a_conforming_session_is_seen_valid() -> None:
    result = run(numbered(good_session().records))
    items = by_key(result)
    assert [item["key"] for item in result["items"]] == [item.key for item in SPEC_ITEMS]
    assert items["websocket:session_update:meter_value"] == {
        "key": "websocket:session_update:meter_value", "group": "WebSocket", "label": "session_update / meter_value",
        "spec": "4.4 Session Update (from Redis)", "seen": 3, "invalid": 0, "state": "valid"}
    assert items["redis:session_updates:session_update:meter_value"]["seen"] == 3
    assert items["rest:backend:/api/charging/start:response:200"]["state"] == "valid"
    assert items["websocket:connected"]["seen"] == 1
    assert items["websocket:session_update:session_error"]["state"] == "never seen"
    assert result["unmatched"] == 0
    assert sum(item["seen"] for item in result["items"]) == len(good_session().records)


def test_the_summary_counts_every_state() -> None:
    result = run(good_session().records)
    summary = result["summary"]
    assert list(summary) == ["items", *STATES]
    assert summary["items"] == len(SPEC_ITEMS) == sum(summary[state] for state in STATES)
    assert summary["valid"] == 8  # connected, start 200, and three session_update events on Redis and socket
    assert summary["violations"] == 0
    assert summary["not observed"] == 2  # the heartbeat, counted by no one here


def test_a_record_with_several_violations_is_invalid_once() -> None:
    kit = good_session()
    kit.receive(1, 10, broken_meter_value(), 300.0)
    records = numbered(kit.records)
    schema = schema_and_rules(records)
    assert len([v for v in schema.violations if v.records[0].line == len(records)]) >= 2
    item = by_key(coverage(records, schema))["websocket:session_update:meter_value"]
    assert (item["seen"], item["invalid"], item["state"]) == (4, 1, "violations")


def test_records_without_lines_are_matched_to_their_violations_by_identity() -> None:
    kit = good_session()
    kit.receive(1, 10, broken_meter_value(), 300.0)
    item = by_key(run(kit.records))["websocket:session_update:meter_value"]
    assert (item["seen"], item["invalid"]) == (4, 1)


def test_invalid_records_are_found_by_line_in_a_trace_read_back(tmp_path: Path) -> None:
    """As the runner does: schema_and_rules on one reading of the file, coverage on another."""
    kit = good_session()
    kit.push(1, [10], broken_meter_value(), 300.0)
    path = tmp_path / "trace.ndjson"
    with TraceWriter(path) as writer:
        writer.write_many(kit.records)
    schema = schema_and_rules(read_trace(path))
    items = by_key(coverage(list(read_trace(path)), schema))
    for key in ("websocket:session_update:meter_value", "redis:session_updates:session_update:meter_value"):
        assert (items[key]["seen"], items[key]["invalid"], items[key]["state"]) == (4, 1, "violations")
    assert items["websocket:session_update:session_started"]["state"] == "valid"


def test_only_violations_of_the_record_count() -> None:
    kit = good_session()
    schema = schema_and_rules(numbered(kit.records))
    someone_else = replace(kit.records[0], line=999)
    schema = CheckResult(schema.name, schema.checked, [*schema.violations,
                                                       *schema_and_rules([replace(someone_else, message=[])])
                                                       .violations])
    result = coverage(numbered(kit.records), schema)
    assert result["summary"]["violations"] == 0


def test_unknown_records_are_unmatched_and_counted_nowhere() -> None:
    kit = good_session()
    kit.add(TraceRecord("redis", "redis:user:1:broadcast", "publish", {"type": "notification"}, 5.0, 5.0))
    kit.receive(1, 10, {"type": "session_update", "event": "paused", "session_id": 456}, 6.0)
    kit.close(1, 10, 7.0, code=4000, reason="bye")
    records = numbered(kit.records)
    result = coverage(records, schema_and_rules(records))
    assert result["unmatched"] == 3
    assert sum(item["seen"] for item in result["items"]) == len(records) - 3
    assert result["summary"]["violations"] == 0


def test_ocpp_answers_are_paired_with_their_calls() -> None:
    records = [
        ocpp("send", [2, "a1", "BootNotification", {"chargePointModel": "M", "chargePointVendor": "V"}]),
        ocpp("receive", [2, "b1", "RemoteStartTransaction", {"idTag": "RFID123"}]),
        ocpp("send", [3, "b1", {"status": "Accepted"}]),
        ocpp("receive", [3, "a1", {"status": "Accepted", "currentTime": "2025-01-29T12:00:00Z", "interval": 30}]),
        ocpp("send", [2, "a2", "Heartbeat", {}]),
        ocpp("receive", [4, "a2", "InternalError", "oops", {}]),
        ocpp("receive", [3, "zz", {}]),  # answers no CALL of the trace
        replace(ocpp("send", [2, "a1", "Heartbeat", {}]), channel="ocpp:CP002"),  # the same id elsewhere
    ]
    result = run(numbered(records))
    items = by_key(result)
    seen = {key: item["seen"] for key, item in items.items() if key.startswith("ocpp:") and item["seen"]}
    assert seen == {"ocpp:BootNotification:CALL": 1, "ocpp:BootNotification:CALLRESULT": 1,
                    "ocpp:RemoteStartTransaction:CALL": 1, "ocpp:RemoteStartTransaction:CALLRESULT": 1,
                    "ocpp:Heartbeat:CALL": 2, "ocpp:CALLERROR:receive": 1}
    assert result["unmatched"] == 1
    assert items["ocpp:Heartbeat:CALLRESULT"]["state"] == "never seen"


def test_cms_event_answers_are_paired_by_request_id() -> None:
    meter = {"event": "meter_value", "charger_id": "CP001", "transaction_id": 789,
             "data": {"energy_delivered": 1.0, "meter_value": 1000}}
    records = [
        event("request", meter, "r1"),
        event("request", {**meter, "event": "session_stopped"}, "r2"),
        event("response", None, "r1", status=202),
        event("response", {"success": False, "error": "Unauthenticated", "message": "no token"}, "r2", status=401),
        event("response", None, "r9", status=202),  # no such request
    ]
    items = by_key(run(numbered(records)))
    assert items["cms-event:meter_value:request"]["seen"] == 1
    assert items["cms-event:meter_value:response:202"]["seen"] == 1
    assert items["cms-event:session_stopped:response:401"]["seen"] == 1
    assert items["cms-event:session_stopped:response:202"]["seen"] == 0


def test_heartbeat_counts() -> None:
    records = good_session().records
    unobserved = by_key(run(records))
    assert (unobserved["heartbeat:ping"]["state"], unobserved["heartbeat:ping"]["seen"]) == ("not observed", 0)
    counted = by_key(run(records, heartbeat={"ping": 4, "pong": 3}))
    assert (counted["heartbeat:ping"]["seen"], counted["heartbeat:ping"]["state"]) == (4, "valid")
    assert counted["heartbeat:pong"]["seen"] == 3
    none = by_key(run(records, heartbeat={"ping": 0}))
    assert none["heartbeat:ping"]["state"] == none["heartbeat:pong"]["state"] == "never seen"


def test_records_may_be_a_stream() -> None:
    kit = good_session(TraceKit())
    listed = run(numbered(kit.records))
    streamed = coverage(iter(numbered(kit.records)), schema_and_rules(numbered(kit.records)))
    assert streamed == listed


def test_a_fan_out_shares_its_lookup_but_counts_every_copy() -> None:
    kit = TraceKit()
    message = meter_value(456, 1.0)
    for user in range(5):
        kit.publish(user, message, 1.0)
        kit.receive(user, 10 + user, message, 1.1)
    kit.add(TraceRecord("gateway-app", "websocket", "send", message, 2.0, 2.0, user_id=1, socket_id=11))
    items = by_key(run(numbered(kit.records)))
    assert items["redis:session_updates:session_update:meter_value"]["seen"] == 5
    assert items["websocket:session_update:meter_value"]["seen"] == 5
    assert (items["websocket:send"]["seen"], items["websocket:send"]["state"]) == (1, "violations")
