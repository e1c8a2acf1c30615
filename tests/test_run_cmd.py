"""``chargetwin run``: the whole stack driven by the model, every message checked."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from report_testkit import assert_report_shows

from chargetwin.cli import main
from chargetwin.harness.run import _thresholds, run_scenario
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
    assert (out / "junit.xml").read_text(encoding="utf-8").count("<testcase") == len(results["checks"])
    assert main(["validate", "-q", str(out / "trace.ndjson")]) == 0
    assert_report_shows(out / "report.html", results)  # the run wrote its HTML report
    assert main(["report", str(out / "results.json"), "-o", str(tmp_path / "again.html")]) == 0
    assert_report_shows(tmp_path / "again.html", results)


def test_a_broken_threshold_fails_the_run(tmp_path: Path) -> None:
    scenario = load_scenario("smoke")
    scenario = replace(scenario, run=replace(scenario.run, duration=300.0),
                       checks=replace(scenario.checks, max_clock_lag_p99_s=-1.0))
    settings = Settings(backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0,
                        database=str(tmp_path / "db.sqlite3"), jwt_secret="run-test-secret-" + "x" * 48)
    results = asyncio.run(run_scenario(scenario, out=tmp_path / "out", settings=settings, speed=120.0))
    assert results["verdict"] == "fail"
    assert results["failed_checks"] == [] and results["thresholds_failed"][0].startswith("clock lag p99")


def test_events_still_queued_after_the_settle_fail_the_run_as_saturated() -> None:
    scenario = load_scenario("smoke")
    metrics = {"cms_event_backlog": {"after_settle": 120, "max": 900}, "clock_lag_s": {"p99": 0.0},
               "latency_ms": {name: {"count": 1, "p99": 1.0} for name, _ in scenario.checks.latency_p99_ms},
               "model": {"balk_share": 0.0}}
    assert _thresholds(scenario, [], metrics) == [
        "the stack saturated: 120 CMS events still undelivered 2 s after the end (backlog peaked at 900); "
        "try a lower --speed"]
    metrics["cms_event_backlog"]["after_settle"] = 0
    assert _thresholds(scenario, [], metrics) == []


@pytest.mark.parametrize(("option", "problem"), [("--duration=soon", "--duration"), ("--duration=0", "--duration"),
                                                 ("--speed=0", "--speed")])
def test_bad_run_options_exit_2_naming_the_option(option: str, problem: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "smoke", option]) == 2
    assert problem in capsys.readouterr().err


def test_a_bad_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no-such-scenario"]) == 2
    assert "no-such-scenario" in capsys.readouterr().err
