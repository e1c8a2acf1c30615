"""``chargetwin run``: the whole stack driven by the model, every message checked."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from chargetwin.cli import main
from chargetwin.harness.run import run_scenario
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
    assert results["metrics"]["messages_per_hop"].keys() >= {"app-backend", "gateway-app", "redis", "ocpp"}
    assert (out / "junit.xml").read_text(encoding="utf-8").count("<testcase") == len(results["checks"])
    assert main(["validate", "-q", str(out / "trace.ndjson")]) == 0


def test_a_broken_threshold_fails_the_run(tmp_path: Path) -> None:
    scenario = load_scenario("smoke")
    scenario = replace(scenario, run=replace(scenario.run, duration=300.0),
                       checks=replace(scenario.checks, max_clock_lag_p99_s=-1.0))
    settings = Settings(backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0,
                        database=str(tmp_path / "db.sqlite3"), jwt_secret="run-test-secret-" + "x" * 48)
    results = asyncio.run(run_scenario(scenario, out=tmp_path / "out", settings=settings, speed=120.0))
    assert results["verdict"] == "fail"
    assert results["failed_checks"] == [] and results["thresholds_failed"][0].startswith("clock lag p99")


def test_a_bad_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no-such-scenario"]) == 2
    assert "no-such-scenario" in capsys.readouterr().err
