"""A client nobody here wrote: Node.js's ``ws`` package against ``chargetwin serve``, through a session.

Runs where Node.js and the ``ws`` package are installed (``nox -s tests``
installs ``ws`` with npm into tests/e2e/node); says plainly why it skips
elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chargetwin.contracts import default_validator

NODE_DIR = Path(__file__).parent / "node"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the test with Node's ws client cannot run here")
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        pytest.skip(f"the ws package is not installed: run `npm ci --prefix {NODE_DIR}` (nox -s tests does)")
    return node


def _start_serve(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    command = [sys.executable, "-m", "chargetwin", "serve", "smoke", "--speed", "60", "--show-users", "1",
               "--backend-port", "0", "--cms-port", "0", "--ocpp-port", "0", "--gateway-port", "0",
               "--state", str(tmp_path / "state")]
    env = dict(os.environ, CHARGETWIN_JWT_SECRET="node-client-test-secret-longer-than-thirty-two-bytes")
    serve = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert serve.stdout is not None
    found: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "token" not in found:
        line = serve.stdout.readline()
        if not line:
            break
        if match := re.match(r"\s+(backend|gateway)\s+(\S+)", line):
            found[match.group(1)] = match.group(2).removesuffix("/?token=TOKEN")
        elif match := re.match(r"\s+token (\S+)", line):
            found["token"] = match.group(1)
    if "token" not in found:
        serve.kill()
        pytest.fail(f"chargetwin serve did not print its URLs and a token: {found}")
    return serve, found


def test_node_ws_client_sees_a_whole_session(tmp_path: Path) -> None:
    node = _node()
    serve, urls = _start_serve(tmp_path)
    try:
        client = subprocess.Popen([node, str(NODE_DIR / "client.js"), f"{urls['gateway']}/?token={urls['token']}",
                                   "12"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        headers = {"Authorization": f"Bearer {urls['token']}"}
        with httpx.Client(base_url=urls["backend"], headers=headers, timeout=10) as http:
            time.sleep(1.5)  # the app opens first, then the user starts charging
            started = http.post("/api/charging/start", json={"charger_id": "CP001", "connector_id": 1})
            assert started.status_code == 200, started.text
            time.sleep(5)  # five simulated minutes at 60x: meter values every minute
            stopped = http.post("/api/charging/stop", json={})
            assert stopped.status_code == 200, stopped.text
        out, err = client.communicate(timeout=30)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # no process left behind; what it said is the clue
            serve.kill()
            said, _ = serve.communicate()
            pytest.fail(f"chargetwin serve did not stop within 30 s of Ctrl-C; it said:\n{said}")
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0] == {"kind": "open"}, (events[:3], err)
    messages = [e["data"] for e in events if e["kind"] == "message"]
    assert [m["type"] for m in messages[:3]] == ["connected", "charger_list_update", "active_session_update"]
    seen = [(m["type"], m.get("event")) for m in messages]
    for expected in [("session_update", "session_started"), ("session_update", "meter_value"),
                     ("session_update", "session_stopped"), ("charger_status_update", None)]:
        assert expected in seen, seen
    assert events[-1]["kind"] == "close" and events[-1]["code"] == 1000
    validator = default_validator()
    assert [v for m in messages for v in validator.validate(m, channel="websocket", direction="receive")] == []
    assert serve.returncode == 0
