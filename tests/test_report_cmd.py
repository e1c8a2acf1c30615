"""``chargetwin report``: the HTML report of a results.json, from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_testkit import assert_report_shows

from chargetwin.cli import main

FIXTURES = Path(__file__).parent / "reports" / "fixtures"


def test_report_writes_beside_the_results_and_compares_with_earlier_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    shutil.copy(FIXTURES / "fail-results.json", results)
    assert main(["report", str(results), "--compare", str(FIXTURES / "smoke-results.json")]) == 0
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'report.html'}"
    soup = assert_report_shows(tmp_path / "report.html", json.loads(results.read_text(encoding="utf-8")))
    assert soup.select_one("#trends table") is not None


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "not JSON"),
    ('{"verdict": "pass"}', "results"),
])
def test_a_bad_results_file_exits_2_saying_what_is_wrong(content: str, problem: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    results.write_text(content, encoding="utf-8")
    assert main(["report", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chargetwin: ") and str(results) in err and problem in err
    assert "Traceback" not in err
    assert not (tmp_path / "report.html").exists()


def test_a_missing_results_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nowhere.json")]) == 2
    assert "nowhere.json" in capsys.readouterr().err
