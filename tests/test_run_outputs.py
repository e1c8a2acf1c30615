"""What a run shows while it goes and what it leaves: violations as found, status lines, the trace modes, Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from report_testkit import assert_report_shows
from rich.console import Console

from chargetwin.cli import main
from chargetwin.harness.checks import InvariantViolation
from chargetwin.harness.live import LiveDisplay, Status
from chargetwin.harness.trace import TraceRecord, read_trace


def test_a_failing_run_prints_the_first_violations_of_each_rule_and_keeps_them_in_a_violations_trace(
        tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGETWIN_INJECT_FAULT", "wrong_display")
    out = tmp_path / "out"
    assert main(["run", "smoke", "--duration", "5m", "--speed", "120", "--out", str(out),
                 "--trace", "violations"]) == 1
    captured = capfd.readouterr()  # the harness's worker prints them, on the same standard error
    printed = [line for line in captured.err.splitlines()
               if "violation schema_and_rules/display_matches_status" in line]
    assert len(printed) == 3  # the first three, as they were found ...
    assert "further display_matches_status violations are counted, not printed" in captured.err  # ... then counted
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    schema = results["checks"][0]
    assert schema["violations"] > 3 and schema["rules"] == {"display_matches_status": schema["violations"]}
    kept = list(read_trace(out / "trace.ndjson"))
    seqs = {r.line for r in kept}
    assert {v["records"][0]["line"] for v in schema["examples"]} <= seqs  # every offending record is in the trace
    assert kept[0].channel == "twin:run" and kept[-1].channel == "twin:end"
    assert len(seqs) == len(kept) < results["metrics"]["messages_checked"]  # only the violations and their context
    first = min(v["records"][0]["line"] for v in schema["examples"])
    assert {first - 1, first + 1} <= seqs  # with records around each
    assert captured.out.splitlines()[-1].startswith(f"report: {out / 'report.html'}")


def test_trace_none_writes_no_trace_and_the_run_still_judges(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["run", "smoke", "--duration", "5m", "--speed", "120", "--out", str(out), "--trace", "none",
                 "--no-progress"]) == 0
    assert not (out / "trace.ndjson").exists()
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["verdict"] == "pass" and results["checks"][0]["checked"] > 100
    assert "trace.ndjson" not in capsys.readouterr().out


def _status() -> Status:
    return Status(done_s=450.0, total_s=900.0, clock="18:07", sessions=4, messages=600, violations=0, backlog=0)


def test_without_a_terminal_a_status_line_goes_out_every_ten_seconds() -> None:
    now = [0.0]
    text = io.StringIO()
    display = LiveDisplay(Console(file=text, force_terminal=False, width=200), name="smoke", status=_status,
                          mode="lines", monotonic=lambda: now[0])
    with display:
        for second in range(1, 36):  # a tick every second for 35 seconds
            now[0] = float(second)
            display.on_tick(second * 60.0, float(second))
    lines = text.getvalue().splitlines()
    assert len(lines) == 3  # at 10, 20 and 30 s
    assert lines[0] == "smoke:  50% simulated 18:07  sessions 4  messages 600  violations 0  CMS backlog 0"


def test_quiet_shows_violations_only() -> None:
    text = io.StringIO()
    display = LiveDisplay(Console(file=text, force_terminal=False, width=200), name="smoke", status=_status,
                          mode="quiet", per_rule=1)
    record = TraceRecord("redis", "redis:user:1:notifications", "publish", {}, 12.0, 0.2, line=7)
    with display:
        display.on_tick(60.0, 1.0)
        for _ in range(3):
            display.on_violation(InvariantViolation("isolation", "socket 3 of user 1 received notification of user 2",
                                                    "redis", (record,)))
    assert text.getvalue().splitlines() == [
        "  violation isolation: socket 3 of user 1 received notification of user 2 "
        "[redis redis:user:1:notifications, line 7, t_sim 12]",
        "  ... further isolation violations are counted, not printed"]


def test_ctrl_c_stops_the_run_and_still_writes_what_it_saw(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "chargetwin", "run", "smoke", "--speed", "30", "--out", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert run.stderr is not None
    first = run.stderr.readline()  # the first status line, 10 s into the run: traffic flows
    assert first.startswith("smoke: "), first
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 130, stderr
    assert "interrupted; writing the results of what ran" in stderr and "Traceback" not in stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["complete"] is False and results["stopped"].startswith("interrupted at ")
    assert results["verdict"] == "fail" and results["thresholds_failed"][-1].startswith("the run stopped early")
    assert results["checks"][0]["checked"] > 0
    assert "INCOMPLETE" in stdout and "run_complete" in (out / "junit.xml").read_text(encoding="utf-8")
    soup = assert_report_shows(out / "report.html", results)
    assert "INCOMPLETE RUN" in soup.get_text()


def test_a_run_whose_redis_dies_stops_and_still_writes_what_it_saw(tmp_path: Path) -> None:
    """Without its Redis tap the checks would go on blind to every publish: the run stops, marked incomplete."""
    from chargetwin.harness.run import run_scenario
    from chargetwin.twin.scenario import load_scenario
    from chargetwin.twin.services.redis_server import start_redis
    from chargetwin.twin.services.settings import Settings

    redis = start_redis()  # the stack's Redis, ours to stop mid-run
    settings = Settings(backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0, redis_url=redis.url,
                        database=str(tmp_path / "db.sqlite3"), jwt_secret="redis-dies-secret-" + "x" * 48)

    async def run() -> dict[str, object]:
        asyncio.get_running_loop().call_later(8.0, redis.stop)
        return await run_scenario(load_scenario("smoke"), out=tmp_path / "out", settings=settings, speed=60.0)

    try:
        results = asyncio.run(run())
    finally:
        redis.stop()
    assert results["complete"] is False and str(results["stopped"]).startswith("the Redis tap stopped: ")
    written = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert written["verdict"] == "fail" and written["checks"][0]["checked"] > 0
