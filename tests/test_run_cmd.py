"""``chargetwin run``: the whole stack driven by the model, every message checked."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from report_testkit import assert_report_shows
from run_testkit import same_verdict_from_the_trace

from chargetwin.cli import main
from chargetwin.harness.run import run_scenario
from chargetwin.harness.thresholds import Thresholds, figure, judge
from chargetwin.twin.scenario import load_scenario
from chargetwin.twin.services.settings import Settings


def test_smoke_passes_and_its_trace_revalidates_to_the_same_verdict(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "smoke"
    assert main(["run", "smoke", "--out", str(out), "--speed", "120"]) == 0
    summary = capsys.readouterr().out
    assert "smoke: PASS" in summary
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["verdict"] == "pass" and results["results_format"] == 1
    assert all(check["checked"] > 0 for check in results["checks"]), results["checks"]
    metrics = results["metrics"]
    assert metrics["messages_per_hop"].keys() == {"app-backend", "backend-cms", "cms-backend", "gateway-app",
                                                  "redis", "ocpp"}
    assert metrics["cms_event_backlog"]["after_settle"] == 0
    assert sum(metrics["latency_histograms"]["counts"]["rest.start"]) == metrics["latency_ms"]["rest.start"]["count"]
    assert metrics["throughput"]["hops"]["ocpp"]["total"] == metrics["messages_per_hop"]["ocpp"]
    junit = (out / "junit.xml").read_text(encoding="utf-8")
    assert junit.count("<testcase") == len(results["checks"]) + len(results["thresholds"])
    assert [t["name"] for t in results["thresholds"]] == ["max_violations", "cms_backlog_drained", "run_complete"]
    assert results["complete"] is True and all(t["passed"] for t in results["thresholds"])
    same_verdict_from_the_trace(out, results)
    assert f"report: {out / 'report.html'}" in summary.splitlines()[-1]  # the last line: where the report is
    assert_report_shows(out / "report.html", results)  # the run wrote its HTML report
    assert main(["report", str(out / "results.json"), "-o", str(tmp_path / "again.html")]) == 0
    assert_report_shows(tmp_path / "again.html", results)


def test_a_broken_threshold_fails_the_run(tmp_path: Path) -> None:
    scenario = load_scenario("smoke")
    scenario = replace(scenario, run=replace(scenario.run, duration=300.0),
                       checks=replace(scenario.checks, max_clock_lag_p99_s=-1.0))
    settings = Settings(backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0,
                        database=str(tmp_path / "db.sqlite3"), jwt_secret="run-test-secret-" + "x" * 48)
    out = tmp_path / "out"
    results = asyncio.run(run_scenario(scenario, out=out, settings=settings, speed=120.0))
    assert results["verdict"] == "fail"
    assert results["failed_checks"] == [] and results["thresholds_failed"][0].startswith("clock lag p99")
    root = ElementTree.parse(out / "junit.xml").getroot()
    assert root.get("failures") == "1"  # the threshold's test case, and only it
    (failed,) = [case for case in root.iter("testcase") if case.find("failure") is not None]
    assert failed.get("name") == "clock_lag_p99"
    same_verdict_from_the_trace(out, results)  # a failing run: its trace fails the same way


def test_events_still_queued_after_the_settle_fail_the_run_as_saturated() -> None:
    scenario = load_scenario("smoke")
    metrics: dict[str, Any] = {
        "cms_event_backlog": {"after_settle": 120, "max": 900}, "clock_lag_s": {"p99": 0.0},
        "latency_ms": {name: {"count": 1, "p99": 1.0} for name, _ in scenario.checks.latency_p99_ms},
        "model": {"balk_share": 0.0}}
    failed = [t.message for t in judge(Thresholds.of(scenario.checks), violations=0, metrics=metrics, settle_s=2.0)
              if not t.passed]
    assert failed == ["the stack saturated: 120 CMS events still undelivered 2 s after the end (backlog peaked at "
                      "900); try a lower --speed"]
    metrics["cms_event_backlog"]["after_settle"] = 0
    assert all(t.passed for t in judge(Thresholds.of(scenario.checks), violations=0, metrics=metrics, settle_s=2.0))


@pytest.mark.parametrize(("measured", "limit", "text"), [
    (0.0026, 1e-05, "clock lag p99 0.0026 s > 1e-05 s"),  # was "0.00 s > 1e-05 s"
    (0.5004, 0.5, "clock lag p99 0.5004 s > 0.5 s"),  # as many figures as it takes to see why
    (0.25, 1.0, "clock lag p99 0.25 s <= 1 s"),
])
def test_a_threshold_prints_its_figures_at_a_precision_that_shows_why(measured: float, limit: float,
                                                                      text: str) -> None:
    (lag,) = [t for t in judge(Thresholds(max_clock_lag_p99_s=limit), violations=0, settle_s=2.0,
                               metrics={"clock_lag_s": {"p99": measured}}) if t.name == "clock_lag_p99"]
    assert lag.message == text and lag.passed is (measured <= limit)
    assert figure(626.0, 500.0) == "626" and figure(500.04, 500.0) == "500.04"


@pytest.mark.parametrize(("option", "problem"), [("--duration=soon", "--duration"), ("--duration=0", "--duration"),
                                                 ("--speed=0", "--speed")])
def test_bad_run_options_exit_2_naming_the_option(option: str, problem: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "smoke", option]) == 2
    assert problem in capsys.readouterr().err


def test_a_bad_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no-such-scenario"]) == 2
    assert "no-such-scenario" in capsys.readouterr().err


def test_out_naming_a_file_exits_2_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "results.txt"
    existing.write_text("keep me", encoding="utf-8")
    assert main(["run", "smoke", "--out", str(existing)]) == 2
    err = capsys.readouterr().err
    assert f"--out {existing}: is a file, not a folder" in err and "Traceback" not in err
    assert existing.read_text(encoding="utf-8") == "keep me"  # nothing lost
    assert main(["run", "smoke", "--out", str(existing / "inside")]) == 2
    assert "is a file, so the folder cannot be created there" in capsys.readouterr().err


def test_out_where_nothing_can_be_written_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "smoke", "--out", "/proc/chargetwin-out"]) == 2  # even root cannot write there
    err = capsys.readouterr().err
    assert "--out /proc/chargetwin-out: cannot write there" in err and "Traceback" not in err
