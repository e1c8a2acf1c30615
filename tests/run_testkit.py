"""Helpers for the tests of whole runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargetwin.cli import main
from chargetwin.harness.replay import replay


def same_verdict_from_the_trace(out: Path, results: dict[str, Any]) -> None:
    """``chargetwin validate``'s pipeline, fed the run's trace, finds what the run found: every check's counts."""
    with (out / "trace.ndjson").open("rb") as lines:
        replayed = replay(lines, source=str(out / "trace.ndjson"))
    again, _ = replayed.judge.results(versions={})
    assert replayed.header_found
    assert again["verdict"] == results["verdict"]
    assert [(c["name"], c["checked"], c["violations"]) for c in again["checks"]] == \
        [(c["name"], c["checked"], c["violations"]) for c in results["checks"]]
    assert [sorted(v["message"] for v in c["examples"]) for c in again["checks"]] == \
        [sorted(v["message"] for v in c["examples"]) for c in results["checks"]]
    assert again["thresholds_failed"] == results["thresholds_failed"]
    assert _verdict_of(main(["validate", "-q", str(out / "trace.ndjson")])) == results["verdict"]


def _verdict_of(exit_code: int) -> str:
    return {0: "pass", 1: "fail"}.get(exit_code, f"exit {exit_code}")
