"""``chargetwin check`` against stand-ins started as separate processes: conforming, and broken on purpose."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from standin_testkit import INTERNAL, SECRET, standin_env, standins

from chargetwin.cli import main
from chargetwin.twin.stack import free_port


def _check(target: dict[str, Any], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargetwin", "check", "--backend", target["backend"], "--gateway",
                           target["gateway"], "--out", str(out), "--wait", "30", *extra],
                          capture_output=True, text=True, env=standin_env(), timeout=180)


@pytest.fixture(scope="module")
def conforming(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("conforming")
    with standins(folder, charge_points="none") as target:  # check --ocpp brings the charge points
        done = _check(target, folder / "out", "--redis", target["redis"], "--ocpp", target["ocpp"], "--cms",
                      target["cms"])
        yield done, folder / "out"


def test_check_passes_the_reference_services_with_every_case_met(conforming: Any) -> None:
    done, out = conforming
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["verdict"] == "pass" and results["failed_cases"] == []
    phases = {case["phase"] for case in results["cases"]}
    assert phases == {"ocpp", "rest", "fuzz", "cms", "websocket", "redis"}
    assert results["metrics"]["fuzz"]["bodies"] >= 40
    assert len(results["cases"]) >= 30
    checked = {c["name"]: c["checked"] for c in results["checks"]}
    assert checked["schema_and_rules"] >= 80 and checked["isolation"] > 0
    assert checked["consistent_across_hops"] > 0  # the pushes matched to their Redis messages
    lines = (out / "trace.ndjson").read_text(encoding="utf-8").split("\n")  # not splitlines: \x1c... are in messages
    assert sum(1 for line in lines if line and json.loads(line)["hop"] == "redis")
    suite = ElementTree.parse(out / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    assert int(suite.get("tests", "0")) == len(results["cases"]) + len(results["checks"])
    assert "a server error" not in done.stdout
    assert "REST contract: 18 of 18 cases met" in done.stdout
    assert "OCPP 1.6J: 4 of 4 cases met" in done.stdout
    assert "CMS REST API: 7 of 7 cases met" in done.stdout
    frames = [r for r in results["cases"] if r["phase"] == "ocpp" and r["name"].startswith("every frame")]
    assert frames and frames[0]["passed"] and "RemoteStartTransaction" in frames[0]["message"]
    assert re.search(r"check: PASS: (\d+) of \1 cases met, 0 violations", done.stdout)


def test_the_trace_of_a_check_validates_to_the_same_verdict(conforming: Any, capsys: Any) -> None:
    _, out = conforming
    assert main(["validate", str(out / "trace.ndjson")]) == 0
    assert "check: PASS" in capsys.readouterr().out


def test_no_secret_reaches_the_output_the_trace_or_the_results(conforming: Any) -> None:
    done, out = conforming
    texts = {"output": done.stdout + done.stderr,
             **{path.name: path.read_text() for path in out.iterdir() if path.is_file()}}
    jwt = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16,}")  # a token with its signature
    assert set(texts) >= {"output", "results.json", "junit.xml", "trace.ndjson"}
    for name, text in texts.items():
        assert SECRET not in text and INTERNAL not in text, name
        assert not jwt.search(text), (name, jwt.search(text))
        assert '"password":"chargetwin"' not in text.replace(" ", ""), name
    assert '"token":"eyJ' in texts["trace.ndjson"].replace(" ", "")  # the login answers are there, redacted


@pytest.mark.parametrize(("fault", "failed"), [
    ("bare_error", "start without a token: expected HTTP 401 with the error envelope"),
    ("wrong_close_code", "no token: close 1008: expected close 1008 'Authentication required'; closed 4001"),
    ("no_connected", "connected first (user 3): expected connected first; got"),
    ("wrong_user", "violation isolation:"),
    ("server_error", "FAIL POST /api/charging/start, positive bodies: body {"),
    ("malformed_ocpp", "FAIL every frame conforms to the OCPP 1.6J schema of its action: "),
])
def test_a_broken_target_fails_naming_what_broke(fault: str, failed: str, tmp_path: Path) -> None:
    ocpp = fault == "malformed_ocpp"
    with standins(tmp_path, fault=fault, charge_points="none" if ocpp else "simulated") as target:
        done = _check(target, tmp_path / "out", *(["--ocpp", target["ocpp"], "--wait", "10"] if ocpp else []))
    assert done.returncode == 1, done.stdout + done.stderr
    assert failed in done.stdout, done.stdout
    assert "check: FAIL" in done.stdout


def test_a_redis_that_does_not_answer_fails_the_redis_phase(tmp_path: Path) -> None:
    with standins(tmp_path) as target:
        done = _check(target, tmp_path / "out", "--redis", "redis://127.0.0.1:9/0", "--max-examples", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL subscribed to the users' channels: cannot subscribe on redis://127.0.0.1:9/0" in done.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--backend", "localhost:8000", "--gateway", "ws://127.0.0.1:8080"], "--backend 'localhost:8000'"),
    (["--backend", "http://127.0.0.1:8000", "--gateway", "http://127.0.0.1:8080"], "--gateway"),
    (["--backend", "http://127.0.0.1:8000", "--gateway", "ws://x:1", "--network", "nope"], "nope"),
])
def test_bad_options_exit_2(args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", *args]) == 2
    assert says in capsys.readouterr().err


def test_nothing_listening_fails_the_cases_with_a_clear_message(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "chargetwin", "check", "--backend", "http://127.0.0.1:9",
                           "--gateway", "ws://127.0.0.1:9", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=standin_env(), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the backend did not answer: ConnectError" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_gateway_written_only_from_the_seed_passes_with_warnings(tmp_path: Path) -> None:
    """Ruling 4 (an answer to client frames) and ruling 5 (the charger list and the session on connect) are
    the twin's; a gateway that does only what the seed asks breaks no contract, and is told what differs."""
    port = free_port()
    with standins(tmp_path) as target:
        gateway = subprocess.Popen([sys.executable, str(Path(__file__).parent / "seed_gateway.py"), str(port),
                                    target["redis"]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=standin_env())
        try:
            assert gateway.stdout is not None and gateway.stdout.readline().strip() == "listening"
            done = _check({**target, "gateway": f"ws://127.0.0.1:{port}"}, tmp_path / "out", "--redis",
                          target["redis"])
            strict = _check({**target, "gateway": f"ws://127.0.0.1:{port}"}, tmp_path / "strict", "--strict")
        finally:
            gateway.kill()
            gateway.communicate()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARN a client frame gets type: error: no type: error within 10 s" in done.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["verdict"] == "pass"
    rules = results["warnings"]["rules"]
    assert rules["active_session_update_missing"] >= 2  # the seed does not ask for it on connect
    assert rules["transaction_id_null"] >= 1  # the reference backend answers a start before the charger does
    assert "push_on_connect_not_in_seed" not in rules
    assert strict.returncode == 1 and "(--strict)" in strict.stdout


def test_the_report_of_a_check_lists_its_cases_and_its_warnings_apart(conforming: Any) -> None:
    from bs4 import BeautifulSoup

    _, out = conforming
    results = json.loads((out / "results.json").read_text())
    page = BeautifulSoup((out / "report.html").read_text(encoding="utf-8"), "html.parser")
    rows = page.select("#case-table tbody tr")
    assert len(rows) == len(results["cases"])
    assert {row["data-case"] for row in rows} == {"ocpp", "rest", "fuzz", "cms", "websocket", "redis"}
    warned = {row["data-warning"] for row in page.select("#warning-table tbody tr")}
    assert warned == set(results["warnings"]["rules"]) and "transaction_id_null" in warned
    assert "cases met" in page.select_one(".counts").get_text()
    again = page.select_one("[data-command]").get_text()
    assert again.startswith("chargetwin check --backend http://127.0.0.1:") and "--ocpp ws://" in again
