"""The online checks reach the verdicts, counts and violations the batch checks reached on the same traces.

``fixtures/before/`` holds traces of the smoke run and of each injected
fault with what the checks found before they went online (its README says
how they were made). Each trace is replayed here as a run would stream it:
its records in order, with the model's truth as ``twin`` records at the
moment the model emitted them.
"""

from __future__ import annotations

import gzip
import heapq
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chargetwin.harness.checks import CHECK_NAMES, CheckParams, Checks, GroundTruth, StationTruth
from chargetwin.harness.trace import TraceRecord, read_trace_lines
from chargetwin.harness.truth import SESSION

BEFORE = Path(__file__).parent / "fixtures" / "before"
RUNS = sorted(p.name for p in BEFORE.iterdir() if p.is_dir())


def _twin_records(truth: dict[str, Any]) -> Iterator[TraceRecord]:
    for event in truth["events"]:
        message = {"session": event["session"], "t": event["t"], "energy_wh": event.get("energy_wh", 0.0)}
        if event["kind"] == "started":
            message |= {"user_id": event["user_id"], "charger_id": event["charger_id"],
                        "connector_id": event["connector_id"]}
        yield TraceRecord("twin", SESSION, event["kind"], message, event["t"], event["t_wall"])


def _stream(run: Path, truth: dict[str, Any]) -> Iterator[TraceRecord]:
    """The trace's records and the model's, in the order a run emits them (the model's first at a tie)."""
    with gzip.open(run / "trace.ndjson.gz", "rb") as lines:
        records = list(read_trace_lines(lines, source=str(run)))
    return heapq.merge(records, _twin_records(truth), key=lambda r: (r.t_wall, r.hop != "twin"))


def _violations(found: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, tuple[int, ...]]]:
    return sorted(found)


def test_every_run_is_here() -> None:
    assert RUNS == ["dropped_message", "late_session_started", "meter_backwards", "missing_field", "smoke",
                    "stale_active_session", "wrong_display", "wrong_user"]


@pytest.mark.parametrize("name", RUNS)
def test_online_checks_find_what_the_batch_checks_found(name: str) -> None:
    run = BEFORE / name
    truth = json.loads(gzip.decompress((run / "truth.json.gz").read_bytes()))
    expected = json.loads((run / "expected.json").read_text(encoding="utf-8"))
    stations = {station: StationTruth(**state) for station, state in truth["stations"].items()}
    checks = Checks(CheckParams(deadline_s=truth["deadline_s"]), tariffs=truth["tariffs"],
                    truth=GroundTruth(stations=stations))
    for record in _stream(run, truth):
        checks.observe(record)
    checks.settle()
    results = checks.results()
    assert [r.name for r in results] == [c["name"] for c in expected["checks"]] == list(CHECK_NAMES)
    for got, want in zip(results, expected["checks"], strict=True):
        assert (got.name, got.checked, got.violation_count) == (want["name"], want["checked"], want["violations"])
        assert _violations([(v.message, tuple(r.line for r in v.records)) for v in got.violations]) == \
            _violations([(v["message"], tuple(r["line"] for r in v["records"])) for v in want["examples"]]), got.name
    verdict = "fail" if any(r.violation_count for r in results) else "pass"
    assert verdict == expected["verdict"]
