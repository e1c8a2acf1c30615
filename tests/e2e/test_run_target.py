"""``chargetwin run SCENARIO --target FILE``: the twin drives services it did not start, over the wire."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from standin_testkit import standin_env, standins

from chargetwin.cli import main


def test_smoke_against_stand_ins_started_separately_passes_through_their_ocpp_endpoint(tmp_path: Path) -> None:
    with standins(tmp_path, charge_points="none") as target:  # the run's charge points connect to that CMS
        (tmp_path / "target.toml").write_text(
            f'[target]\nbackend = "{target["backend"]}"\ngateway = "{target["gateway"]}"\n'
            f'ocpp = "{target["ocpp"]}"\nredis = "STANDIN_REDIS"\n\n[tokens]\nkind = "login"\n')
        env = standin_env() | {"STANDIN_REDIS": target["redis"]}
        done = subprocess.run([sys.executable, "-m", "chargetwin", "run", "smoke", "--target",
                               str(tmp_path / "target.toml"), "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["verdict"] == "pass"
    checked = {c["name"]: c["checked"] for c in results["checks"]}
    assert checked["energy_matches_model"] > 0 and checked["no_message_lost"] > 0  # ground truth and Redis
    hops = results["metrics"]["messages_per_hop"]
    assert hops["ocpp"] > 0 and hops["redis"] > 0 and hops["gateway-app"] > 0
    assert "backend-cms" not in hops  # not ours to tap: nothing from inside their services


@pytest.mark.parametrize(("text", "says"), [
    ("", "no [target] table"),
    ('[target]\nbackend = "localhost"\ngateway = "ws://h:1"\nocpp = "ws://h:2"\n', "target.backend = 'localhost'"),
    ('[target]\nbackend = "http://h:1"\ngateway = "ws://h:1"\nocpp = "ws://h:2"\nredis = "NOT_SET_ANYWHERE"\n',
     "names the variable NOT_SET_ANYWHERE, which is not set"),
    ('[target]\nbackend = "http://h:1"\ngateway = "ws://h:1"\nocpp = "ws://h:2"\n[tokens]\nkind = "magic"\n',
     "tokens.kind = 'magic'"),
    ('[target]\nbackend = "http://h:1"\ngateway = "ws://h:1"\nocpp = "ws://h:2"\n[ids]\nCP001 = "X"\n',
     "[ids]"),
    ("[target\n", "not TOML"),
])
def test_a_bad_target_file_exits_2_naming_the_key(text: str, says: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "target.toml"
    path.write_text(text)
    assert main(["run", "smoke", "--target", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and says in err, err


def test_a_target_whose_charge_points_cannot_connect_exits_2(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "target.toml"
    path.write_text('[target]\nbackend = "http://127.0.0.1:9"\ngateway = "ws://127.0.0.1:9"\n'
                    'ocpp = "ws://127.0.0.1:9"\nboot_timeout_s = 2\n')
    code = main(["run", "smoke", "--target", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2
    assert "did not connect to ws://127.0.0.1:9 and boot" in capsys.readouterr().err


def test_tokens_from_a_command_and_its_failure_named(tmp_path: Path) -> None:
    import asyncio

    from chargetwin.twin.scenario import load_scenario
    from chargetwin.twin.target import TargetError, TargetStack, load_target

    path = tmp_path / "target.toml"
    printer = "import sys; print('tok-' + sys.argv[1])"
    path.write_text('[target]\nbackend = "http://h:1"\ngateway = "ws://h:1"\nocpp = "ws://h:2"\n[tokens]\n'
                    f'kind = "command"\ncommand = ["{sys.executable}", "-c", "{printer}", "{{user_id}}"]\n')
    stack = TargetStack(load_scenario("smoke"), load_target(path), speed=60)
    assert asyncio.run(stack.token(3)) == "tok-3"  # type: ignore[arg-type]
    assert stack.token(3) == "tok-3"  # kept for the run
    failing = TargetStack(load_scenario("smoke"), load_target(path), speed=60)
    failing.target = replace(failing.target, command=(sys.executable, "-c", "raise SystemExit(3)"))
    with pytest.raises(TargetError, match="exited 3 without a token"):
        asyncio.run(failing.token(4))  # type: ignore[arg-type]
