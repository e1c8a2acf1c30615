"""Trends: each figure of a run against an earlier run, told in words as well as arrows and colours."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup

from chargetwin.reports import render_report, write_report
from chargetwin.reports.trends import Change, compare, figures

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def no_plots(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "chargetwin.reports.plots", types.ModuleType("chargetwin.reports.plots"))
    yield


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}-results.json").read_text(encoding="utf-8"))


def by_key(changes: tuple[Change, ...]) -> dict[str, Change]:
    return {c.figure.key: c for c in changes}


def test_the_figures_of_a_run() -> None:
    found = {figure.key: value for figure, value in figures(load("smoke"))}
    assert found["verdict"] == "pass"
    assert found["violations.schema_and_rules"] == 0 and found["thresholds_failed"] == 0
    assert found["latency.e2e.start_to_session_started.p99"] == 39.7
    assert found["coverage.never seen"] == 68
    assert found["capacity.messages_per_second"] == 65.2
    assert found["capacity.clock_lag_s.p99"] == pytest.approx(2.4)  # shown in ms
    assert found["model.sessions.started"] == 8


def test_a_failing_run_against_a_passing_one() -> None:
    changes = by_key(compare(load("fail"), load("smoke")).changes)
    verdict = changes["verdict"]
    assert (verdict.direction, verdict.assessment, verdict.words) == ("changed", "worse", "was pass, now fail, worse")
    violations = changes["violations.schema_and_rules"]
    assert (violations.delta, violations.relative, violations.words) == (12, None, "up 12, worse")
    latency = changes["latency.rest.start.p99"]
    assert latency.direction == "down" and latency.assessment == "better"
    assert latency.words == "down 7.7 (-21.5 %), better"
    throughput = changes["capacity.messages_per_second"]
    assert throughput.words == "up 17.6 (+27.0 %), better"
    assert changes["coverage.never seen"].assessment == "worse"
    sessions = changes["model.sessions.started"]
    assert sessions.assessment == "neutral" and sessions.words == "down 3 (-37.5 %)"  # the model's KPIs: not judged
    assert changes["violations.isolation"].words == "unchanged"


def test_figures_in_only_one_run_are_new_or_gone() -> None:
    changes = by_key(compare(load("missing-field"), load("smoke")).changes)
    gone = changes["coverage.valid"]
    assert (gone.direction, gone.now, gone.words) == ("gone", None, "not in this run")
    new = by_key(compare(load("smoke"), load("missing-field")).changes)["coverage.valid"]
    assert (new.direction, new.before, new.words) == ("new", None, "not in the earlier run")


def test_a_different_set_up_is_pointed_out() -> None:
    comparison = compare(load("fail"), load("smoke"))
    assert comparison.differs == ("speed: 60.0 then, 120.0 now", "duration_s: 900.0 then, 600.0 now")
    assert comparison.label == "smoke, seed 42, speed 60x, chargetwin 0.1.0"


def test_the_trend_table_tells_each_change_in_words() -> None:
    html = render_report(load("fail"), compare=[load("smoke")], compare_sources=["last-week/results.json"])
    soup = BeautifulSoup(html, "html.parser")
    heading = soup.select_one("section.trend h3")
    assert heading is not None
    assert heading.get_text() == "Against smoke, seed 42, speed 60x, chargetwin 0.1.0 (last-week/results.json)"
    row = soup.select_one('tr[data-figure="violations.schema_and_rules"]')
    assert row is not None and row["data-change"] == "worse"
    cells = [c.get_text() for c in row.find_all(["th", "td"])]
    assert cells == ["schema_and_rules", "0", "12", "▲ up 12, worse"]
    arrow = row.select_one("td span")
    assert arrow is not None and arrow["aria-hidden"] == "true"
    assert "chg-worse" in row.select("td")[-1]["class"]
    better = soup.select_one('tr[data-figure="capacity.messages_per_second"]')
    assert better is not None and better["data-change"] == "better"
    caveat = soup.select_one("section.trend .caveat")
    assert caveat is not None and "speed: 60.0 then, 120.0 now" in caveat.get_text()


def test_without_earlier_results_the_section_says_how_to_get_them() -> None:
    soup = BeautifulSoup(render_report(load("smoke")), "html.parser")
    trends = soup.select_one("#trends")
    assert trends is not None and "--compare" in trends.get_text() and not trends.select("table")


def test_write_report_compares_with_earlier_files(tmp_path: Path) -> None:
    now, before = tmp_path / "now", tmp_path / "before"
    for folder, name in ((now, "fail"), (before, "smoke")):
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(load(name)), encoding="utf-8")
    report = write_report(now / "results.json", compare=[before, before / "results.json"])
    soup = BeautifulSoup(report.read_text(encoding="utf-8"), "html.parser")
    headings = [h.get_text() for h in soup.select("section.trend h3")]
    assert len(headings) == 2 and all(h.endswith(f"({before / 'results.json'})") for h in headings)
