"""Reading results.json, and writing the report: every bad input is a ReportError that says what to do."""

from __future__ import annotations

import json
import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chargetwin.reports import (
    NotAResultsError,
    ReportError,
    ReportWriteError,
    ResultsError,
    ResultsNotFoundError,
    ResultsSyntaxError,
    UnsupportedFormatError,
    read_results,
    write_report,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def no_plots(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Plots are not what these tests are about (and matplotlib is slow to import)."""
    monkeypatch.setitem(sys.modules, "chargetwin.reports.plots", types.ModuleType("chargetwin.reports.plots"))
    yield


def results(name: str = "smoke") -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}-results.json").read_text(encoding="utf-8"))


def write(tmp_path: Path, content: str | bytes, name: str = "results.json") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def problem(path: Path) -> ResultsError:
    with pytest.raises(ResultsError) as caught:
        read_results(path)
    assert isinstance(caught.value, ReportError)
    assert "Traceback" not in str(caught.value)
    return caught.value


def test_a_results_file_or_its_folder_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(results()))
    assert read_results(path)["verdict"] == "pass"
    assert read_results(tmp_path)["verdict"] == "pass"


def test_a_missing_file_says_where_and_what_to_do(tmp_path: Path) -> None:
    error = problem(tmp_path / "nope" / "results.json")
    assert isinstance(error, ResultsNotFoundError)
    assert str(error).startswith(f"{tmp_path / 'nope' / 'results.json'}: no such file")
    assert "chargetwin run" in str(error)
    folder = problem(tmp_path)
    assert str(folder).startswith(f"{tmp_path / 'results.json'}: the folder has no results.json")
    assert str(problem(tmp_path / "results-old.json")).startswith(f"{tmp_path / 'results-old.json'}: no such file;")


def test_a_file_that_is_not_json_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "results_format": 1,\n  "verdict": pass\n}\n')
    error = problem(path)
    assert isinstance(error, ResultsSyntaxError)
    assert (error.line, error.column) == (3, 14)
    assert str(error).startswith(f"{path}:3:14: not JSON (Expecting value)")
    assert "cut short or edited" in str(error)


def test_ndjson_is_recognised_as_probably_a_trace(tmp_path: Path) -> None:
    error = problem(write(tmp_path, '{"trace_format": 1}\n{"trace_format": 1}\n', "trace.ndjson"))
    assert isinstance(error, ResultsSyntaxError) and "NDJSON" in str(error) and ":2:1:" in str(error)


@pytest.mark.parametrize(("content", "words"), [
    ("", "the file is empty"),
    ("  \n", "the file is empty"),
    (b"\xff\xfe{}", "not UTF-8 text (byte 0"),
    ("[1, 2]", "holds an array (JSON), not an object"),
    ('"results"', "holds the string 'results' (JSON), not an object"),
    ('{"trace_format": 1, "hop": "redis"}', "this is a trace record, not a run's results"),
    ('{"verdict": "pass", "checks": []}', "no results_format key (keys found: checks, verdict)"),
    ('{"results_format": "1"}', "at /results_format: results_format must be a whole number"),
])
def test_files_that_are_not_results_are_refused_in_words(tmp_path: Path, content: str | bytes, words: str) -> None:
    assert words in str(problem(write(tmp_path, content)))


def test_an_unsupported_format_names_both_versions(tmp_path: Path) -> None:
    document = results()
    document["results_format"] = 2
    document["versions"]["chargetwin"] = "9.0.0"
    error = problem(write(tmp_path, json.dumps(document)))
    assert isinstance(error, UnsupportedFormatError)
    assert "results_format 2 is not supported: this chargetwin reads format 1" in str(error)
    assert "chargetwin 9.0.0" in str(error)


@pytest.mark.parametrize(("change", "pointer", "words"), [
    (lambda d: d.update(verdict="maybe"), "/verdict", "verdict must be \"pass\" or \"fail\", found the string 'maybe'"),
    (lambda d: d.pop("checks"), "/checks", "expected an array, found null"),
    (lambda d: d.update(checks={}), "/checks", "expected an array, found an object"),
    (lambda d: d["checks"][2].update(violations=None), "/checks/2/violations", "must be a whole number"),
    (lambda d: d["checks"][0].update(examples=[{}, 3]), "/checks/0/examples/1", "expected an object, found the number"),
    (lambda d: d["checks"][0].pop("name"), "/checks/0/name", "expected a string"),
    (lambda d: d.update(metrics=[]), "/metrics", "expected an object, found an array"),
    (lambda d: d["metrics"].update(city=1), "/metrics/city", "expected an object, found the number 1"),
    (lambda d: d["coverage"]["items"][4].pop("state"), "/coverage/items/4/state", "expected a string"),
])
def test_a_broken_results_document_says_where(tmp_path: Path, change: Any, pointer: str, words: str) -> None:
    document = results()
    change(document)
    error = problem(write(tmp_path, json.dumps(document)))
    assert isinstance(error, NotAResultsError)
    assert error.pointer == pointer
    assert f"at {pointer}: {words}" in str(error)


def test_optional_parts_may_be_missing(tmp_path: Path) -> None:
    document = results("missing-field")
    for key in ("failed_checks", "thresholds_failed", "metrics", "scenario", "versions"):
        del document[key]
    assert read_results(write(tmp_path, json.dumps(document)))["verdict"] == "fail"


def test_the_report_is_written_beside_the_results(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(results()))
    report = write_report(path)
    assert report == tmp_path / "report.html"
    html = report.read_text(encoding="utf-8")
    assert 'data-verdict="pass"' in html and str(path) in html
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".report-")]


def test_the_report_goes_where_it_is_told(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(results()))
    elsewhere = tmp_path / "site"
    elsewhere.mkdir()
    assert write_report(path, elsewhere) == elsewhere / "report.html"
    assert write_report(tmp_path, elsewhere / "run.html") == elsewhere / "run.html"


def test_a_report_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(results()))
    with pytest.raises(ReportWriteError, match=r"cannot write the report .*folder exists and is writable"):
        write_report(path, tmp_path / "missing" / "report.html")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_a_write_error(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(results()))
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(ReportWriteError):
            write_report(path)
    finally:
        tmp_path.chmod(0o700)


def test_a_bad_earlier_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(results()))
    earlier = write(tmp_path, "{", "earlier.json")
    with pytest.raises(ResultsSyntaxError, match="^" + re.escape(f"{earlier}:1:2: not JSON")):
        write_report(path, compare=[earlier])
    assert not (tmp_path / "report.html").exists()
