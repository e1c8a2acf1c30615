"""The trace format: writer and reader round trip, and every trace re-validates with ``chargetwin validate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trace_testkit import TraceKit, good_session, meter_value

from chargetwin.cli import main
from chargetwin.contracts import parse_record
from chargetwin.harness.checks import schema_and_rules
from chargetwin.harness.exceptions import TraceError
from chargetwin.harness.trace import TRACE_FORMAT, TraceRecord, TraceWriter, parse_trace_line, read_trace

OCPP_CALL = TraceRecord("ocpp", "ocpp:CP001", "send", [2, "19223201", "Heartbeat", {}], 1.5, 0.025,
                        charger_id="CP001", request_id="19223201")


def _write(path: Path, records: list[TraceRecord]) -> None:
    with TraceWriter(path, buffer_bytes=64) as writer:
        writer.write_many(records)


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    records = [*good_session().records, OCPP_CALL]
    _write(tmp_path / "trace.ndjson", records)
    back = list(read_trace(tmp_path / "trace.ndjson"))
    assert [r.line for r in back] == list(range(1, len(records) + 1))
    assert [(r.__class__(**{**_fields(r), "line": 0})) for r in back] == records


def _fields(record: TraceRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in TraceRecord.__dataclass_fields__}


def test_close_flushes_everything_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "trace.ndjson"
    writer = TraceWriter(path)
    for i in range(1000):
        writer.write(TraceRecord("ocpp", "ocpp:CP001", "send", [2, str(i), "Heartbeat", {}], i, i))
    writer.close()
    writer.close()  # idempotent
    with TraceWriter(path) as again:
        again.write(OCPP_CALL)
    assert len(list(read_trace(path))) == 1001
    with pytest.raises(TraceError, match="closed"):
        writer.write(OCPP_CALL)


def test_each_line_is_a_traffic_record_with_the_trace_keys(tmp_path: Path) -> None:
    _write(tmp_path / "t.ndjson", [OCPP_CALL])
    line = (tmp_path / "t.ndjson").read_text(encoding="utf-8")
    assert json.loads(line)["trace_format"] == TRACE_FORMAT
    record = parse_record(line)
    assert (record.channel, record.direction) == ("ocpp:CP001", "send")
    assert record.message == [2, "19223201", "Heartbeat", {}]
    assert record.extra["hop"] == "ocpp" and record.extra["request_id"] == "19223201"


@pytest.mark.parametrize(("line", "problem"), [
    ('{"channel": "websocket", "direction": "receive", "message": {}}', "trace_format"),
    ('{"trace_format": 1, "hop": "mqtt", "t_sim": 0, "t_wall": 0, "channel": "websocket", '
     '"direction": "receive", "message": {}}', "hop"),
    ('{"trace_format": 1, "hop": "redis", "t_sim": "soon", "t_wall": 0, "channel": "websocket", '
     '"direction": "receive", "message": {}}', "t_sim"),
    ('{"trace_format": 1, "hop": "redis", "t_sim": 0, "t_wall": 0, "user_id": "7", "channel": "websocket", '
     '"direction": "receive", "message": {}}', "user_id"),
    ('{"trace_format": 1, "hop": "redis"', "not valid JSON"),
])
def test_a_bad_line_says_what_is_wrong(line: str, problem: str) -> None:
    with pytest.raises(TraceError, match=problem):
        parse_trace_line(line, source="t.ndjson", line=3)


def test_writer_refuses_unknown_hops_and_nan(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "t.ndjson") as writer:
        with pytest.raises(TraceError, match="hop"):
            writer.write(TraceRecord("carrier-pigeon", "websocket", "receive", {}, 0, 0))
        with pytest.raises(TraceError, match="not JSON"):
            writer.write(TraceRecord("redis", "websocket", "receive", {"x": float("nan")}, 0, 0))


@pytest.mark.parametrize("broken", [False, True], ids=["conforming", "with-violation"])
def test_a_trace_revalidates_with_the_same_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   broken: bool) -> None:
    kit = good_session()
    kit.add(OCPP_CALL)
    kit.add(TraceRecord("ocpp", "ocpp:CP001", "receive", [3, "19223201", {"currentTime": "2025-01-29T12:00:00Z"}],
                        1.6, 0.03))
    if broken:
        bad = meter_value(456, 4.0)
        bad["data"]["meter_value"] = 1  # far from 4.0 kWh: meter_value_matches_energy
        kit.receive(1, 10, bad, 300)
    path = tmp_path / "trace.ndjson"
    _write(path, kit.records)
    ours = schema_and_rules(list(read_trace(path)))
    code = main(["validate", "--quiet", str(path)])
    capsys.readouterr()
    assert code == (1 if broken else 0)
    assert ours.passed is (not broken)
    assert ours.checked == len(kit.records)


def test_an_unknown_channel_fails_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kit = TraceKit()
    kit.add(TraceRecord("redis", "redis:broadcast", "publish", {"type": "error"}, 0, 0))
    path = tmp_path / "trace.ndjson"
    _write(path, kit.records)
    assert main(["validate", "--quiet", str(path)]) == 1  # a trace: the run's verdict, which the violation fails
    capsys.readouterr()
    (violation,) = schema_and_rules(kit.records).violations
    assert violation.rule == "unknown_channel" and violation.hop == "redis"


def test_a_fan_outs_copies_are_read_into_one_message(tmp_path: Path) -> None:
    update = {"type": "charger_status_update", "station_id": "STATION001", "data": {"display": "3/4"}}
    copies = [TraceRecord("redis", f"redis:user:{user}:charger_updates", "publish", dict(update), 1.0, 0.01)
              for user in (1, 2, 3)]
    _write(tmp_path / "t.ndjson", [*copies, OCPP_CALL])
    back = list(read_trace(tmp_path / "t.ndjson"))
    assert [r.channel for r in back[:3]] == [c.channel for c in copies]
    assert back[0].message == update and back[0].message is back[1].message is back[2].message
    assert back[3].message == OCPP_CALL.message


@pytest.mark.parametrize(("line", "problem"), [
    # written by someone else: the message is not the last key
    ('{"trace_format":1,"hop":"redis","t_sim":0,"t_wall":0,"channel":"websocket","direction":"receive",'
     '"message":{"type":"connected"},"user_id":7}', None),
    ('{"trace_format":1,"hop":"redis","t_sim":0,"t_wall":0,"channel":"websocket","direction":"receive",'
     '"message":{"value":NaN}}', "NaN"),
    ('{"trace_format":1,"hop":"redis","t_sim":0,"t_wall":0,"channel":"websocket","direction":"receive",'
     '"message":{"type":"conn', "not valid JSON"),
])
def test_lines_off_the_writers_pattern_are_read_in_full(tmp_path: Path, line: str, problem: str | None) -> None:
    path = tmp_path / "t.ndjson"
    path.write_text(line + "\n", encoding="utf-8")
    if problem is None:
        (record,) = read_trace(path)
        assert record.message == {"type": "connected"} and record.user_id == 7
    else:
        with pytest.raises(TraceError, match=problem):
            list(read_trace(path))


def test_a_message_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    path.write_bytes(b'{"trace_format":1,"hop":"redis","t_sim":0,"t_wall":0,"channel":"websocket",'
                     b'"direction":"receive","message":{"t":"\xff"}}\n')
    with pytest.raises(TraceError, match="UTF-8"):
        list(read_trace(path))
