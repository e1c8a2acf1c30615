"""Proof that the checks can fail: each injected fault is caught by the check named for it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from report_testkit import assert_report_shows
from run_testkit import same_verdict_from_the_trace

from chargetwin.harness.run import run_scenario
from chargetwin.reports import write_report
from chargetwin.twin.model.config import Scenario
from chargetwin.twin.scenario import load_scenario
from chargetwin.twin.services.faults import RUN_FAULTS, check_fault
from chargetwin.twin.services.settings import Settings

CAUGHT_BY = {
    "wrong_display": "schema_and_rules",
    "missing_field": "schema_and_rules",
    "wrong_user": "isolation",
    "late_session_started": "causality_and_latency",
    "meter_backwards": "meters_monotonic",
    "dropped_message": "no_message_lost",
    "stale_active_session": "active_session_restored",
}


def test_every_fault_has_its_check() -> None:
    assert set(CAUGHT_BY) == set(RUN_FAULTS)
    with pytest.raises(ValueError, match="unknown fault 'typo'"):
        check_fault("typo")


def _smoke(fault: str) -> Scenario:
    """The smoke scenario cut to 10 minutes, with what the fault needs to show."""
    scenario = load_scenario("smoke")
    scenario = replace(scenario, run=replace(scenario.run, duration=600.0))
    if fault == "stale_active_session":
        # Half of smoke's drivers keep the app open and the others look in every 5 minutes:
        # its first reopening during a session comes after 10 minutes. When every driver
        # closes the app and looks in every minute, several reopen during their sessions.
        app = replace(scenario.fleet.app, keep_open_while_charging=0.0, reopen_interval=60.0)
        scenario = replace(scenario, fleet=replace(scenario.fleet, app=app))
    return scenario


@pytest.mark.parametrize("fault", sorted(CAUGHT_BY))
def test_an_injected_fault_is_caught_by_its_check(fault: str, tmp_path: Path) -> None:
    scenario = _smoke(fault)
    settings = Settings(backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0, inject_fault=fault,
                        database=str(tmp_path / "db.sqlite3"), jwt_secret="fault-test-secret-" + "x" * 48)
    results = asyncio.run(run_scenario(scenario, out=tmp_path / "out", settings=settings, speed=120.0))
    assert results["verdict"] == "fail"
    check = next(c for c in results["checks"] if c["name"] == CAUGHT_BY[fault])
    assert check["violations"] > 0, results["checks"]
    first = check["examples"][0]
    assert first["records"] or first.get("message"), first  # the offending message is in results.json
    # reported while the traffic flowed: before the scenario's time was up, on the records' wall clock
    reported = min(v["reported_t_wall"] for v in check["examples"])
    assert reported < results["metrics"]["scenario_ended_t_wall"], (reported, results["metrics"])
    same_verdict_from_the_trace(tmp_path / "out", results)  # validate finds the same on the run's trace
    # ... and in the HTML report: the failing verdict, every coverage cell, every violation
    soup = assert_report_shows(write_report(tmp_path / "out" / "results.json"), results)
    assert soup.select(f'tr[data-violation^="{CAUGHT_BY[fault]}:"]')
