"""The harness's worker: a run's pipeline fed on standard input, as ``chargetwin run`` feeds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from trace_testkit import good_session

from chargetwin.harness.exceptions import TraceError
from chargetwin.harness.judge import RunEnd, RunHeader
from chargetwin.harness.trace import TraceRecord, encode_record
from chargetwin.harness.truth import RUN, TWIN_END
from chargetwin.harness.worker import work

HEADER = RunHeader(scenario={"name": "unit", "duration_s": 600.0}, tariffs={"STATION001": 7.5})


def _lines(*, end: bool = True, ticks: bool = True) -> list[bytes]:
    records = [TraceRecord("twin", RUN, "start", HEADER.to_message(), 0.0, 0.0), *good_session().records]
    lines = []
    for record in records:
        lines.append(encode_record(record).encode())
        if ticks:
            lines.append(json.dumps({"tick": [record.t_sim, record.t_wall], "status": {"clock": "18:00"}}).encode()
                         + b"\n")
    if end:
        lines.append(encode_record(TraceRecord("twin", TWIN_END, "end", RunEnd(wall_seconds=4.0).to_message(),
                                               300.0, 300.0)).encode())
    return lines


def test_the_worker_judges_the_stream_copies_its_records_and_writes_the_results(tmp_path: Path) -> None:
    lines = _lines()
    document = work(lines, out=tmp_path, trace="full", console=None)
    assert document["verdict"] == "pass" and document["complete"] is True
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8")) == document
    records = [line for line in lines if line.startswith(b'{"trace_format"')]
    assert (tmp_path / "trace.ndjson").read_bytes() == b"".join(records)  # the control lines are not records
    checks = {c["name"]: c["checked"] for c in document["checks"]}
    assert checks["schema_and_rules"] == len(records) - 2 and checks["causality_and_latency"] == 1
    assert document["metrics"]["harness_peak_rss_mb"] > 0 and document["metrics"]["wall_seconds"] == 4.0


def test_a_stream_that_stops_without_its_end_is_an_incomplete_run(tmp_path: Path) -> None:
    document = work(_lines(end=False, ticks=False), out=tmp_path, trace="none", console=None)
    assert document["complete"] is False and "without telling how" in document["stopped"]
    assert document["verdict"] == "fail" and not (tmp_path / "trace.ndjson").exists()


def test_a_stream_without_its_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="twin:run header"):
        work(_lines()[2:], out=tmp_path, trace="none", console=None)
    with pytest.raises(TraceError, match="sent no record"):
        work([], out=tmp_path, trace="none", console=None)


def test_the_worker_as_a_process_says_what_went_wrong_and_exits_2(tmp_path: Path) -> None:
    bad = b"{\"trace_format\":2,\"hop\":\"redis\"}\n"
    done = subprocess.run([sys.executable, "-m", "chargetwin.harness.worker", "--out", str(tmp_path)], input=bad,
                          capture_output=True, timeout=60)
    assert done.returncode == 2
    assert b"the harness could not judge the run" in done.stderr and b"Traceback" not in done.stderr
