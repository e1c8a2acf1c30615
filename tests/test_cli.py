"""``chargetwin`` on the command line: validate, help, exit codes, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, read_ndjson

from chargetwin.cli import main

GOOD = read_ndjson(EXAMPLES / "seed.ndjson")
BAD = read_ndjson(EXAMPLES / "counter.ndjson")


def _write(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_mixed_file_reports_exactly_the_bad_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # good, bad, good, bad, ...: the bad ones sit on the even lines
    bad = BAD[:12]
    records = [r for pair in zip(GOOD[:12], bad, strict=True) for r in pair]
    code = main(["validate", str(_write(tmp_path / "mixed.ndjson", records))])
    out = capsys.readouterr().out
    assert code == 1
    reported = [int(line.split(":")[1]) for line in out.splitlines() if line.startswith(str(tmp_path))]
    assert reported == list(range(2, 25, 2))
    for record in bad:
        for expected in record["expect"]:
            assert f"{expected['rule']} at {expected['pointer'] or '(whole message)'}:" in out
    violations = sum(len(r["expect"]) for r in bad)
    assert f"checked 24 records: 12 conform, 12 with violations ({violations} violations)" in out


def test_json_output_names_line_pointer_and_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "t.ndjson", [GOOD[0], BAD[0]])
    assert main(["validate", "--format", "json", str(path)]) == 1
    captured = capsys.readouterr()
    [violation] = [json.loads(line) for line in captured.out.splitlines()]
    assert (violation["line"], violation["rule"], violation["pointer"]) == (2, "schema.required", "/charger_id")
    assert "checked 2 records" in captured.err


def test_conforming_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(_write(tmp_path / "good.ndjson", GOOD))]) == 0
    assert "checked 34 records: 34 conform, 0 with violations" in capsys.readouterr().out


@pytest.mark.parametrize(("line", "problem"), [
    ("{not json\n", "not valid JSON"),
    ("[1, 2]\n", "a record must be a JSON object"),
    ('{"channel": "websocket", "message": {}}\n', "the record has no 'direction'"),
    ('{"channel": "mqtt", "direction": "receive", "message": {}}\n', "unknown channel 'mqtt'"),
    ('{"channel": "websocket", "direction": "publish", "message": {}}\n', "direction 'publish' is not known"),
    ('{"channel": "backend:/api/charging/start", "direction": "response", "status": "ok", "message": {}}\n',
     "'status' must be an HTTP status code"),
    (b"\xff\xfe{}\n", "not UTF-8"),
    ('{"channel": "websocket", "direction": "receive", "message": {"code": NaN}}\n', "not valid JSON: NaN is not"),
    ("[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
])
def test_unreadable_record_exits_2_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   line: str | bytes, problem: str) -> None:
    path = tmp_path / "broken.ndjson"
    good = (json.dumps(GOOD[0]) + "\n").encode()
    path.write_bytes(good + b"\n" + (line if isinstance(line, bytes) else line.encode()) + good)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"{path}:3: {problem}" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert "checked 2 records: 2 conform" in captured.out


def test_progress_bar_goes_to_stderr_and_keeps_stdout_clean(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path / "mixed.ndjson", [GOOD[0], BAD[0]])
    assert main(["validate", "--progress", str(path)]) == 1
    captured = capsys.readouterr()
    assert "validating" in captured.err
    assert "validating" not in captured.out
    assert f"{path}:2: backend:/api/charging/start request" in captured.out


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.ndjson")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_stdin_through_the_installed_command() -> None:
    text = "".join(json.dumps(r) + "\n" for r in (GOOD[5], BAD[3]))
    command = Path(sys.executable).with_name("chargetwin")  # the console script of this environment
    result = subprocess.run([str(command), "validate", "-"], input=text, capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr
    assert "-:2: backend:/api/charging/stop request" in result.stdout


def test_help_and_module_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "chargetwin", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "validate" in result.stdout


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: chargetwin" in capsys.readouterr().err
