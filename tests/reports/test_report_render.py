"""The HTML report: everything results.json holds appears in it, marked so that a test can find it.

The fixtures are real runs (``fixtures/README.md``): a passing smoke run, a
failing one (wrong ``display``) and one missing a field, written before
results.json had ``coverage`` and ``metrics.city``. Plots are stubbed here
(one test draws them for real): the report must stand without them.
"""

from __future__ import annotations

import copy
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import Tag
from report_testkit import assert_coverage_complete, assert_violations_complete, parse, verdict_of

from chargetwin.reports import NotAResultsError, render_report
from chargetwin.reports._violations import EXAMPLES_PER_RULE, MESSAGE_BUDGET

FIXTURES = Path(__file__).parent / "fixtures"
PLOTS = ("latency_over_time", "latency_histograms", "throughput", "city_sessions", "city_status_mix", "city_queue",
         "city_energy", "city_timeline")
MAX_BYTES = 5 * 1024 * 1024


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}-results.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def stub_plots(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """A plots module whose every plot is a tiny SVG naming it (tests marked ``real_plots`` keep the real one)."""
    if "real_plots" in request.fixturenames:
        yield
        return
    module = types.ModuleType("chargetwin.reports.plots")
    for name in PLOTS:
        setattr(module, name, lambda data, name=name, **options: f'<svg role="img"><title>{name}</title></svg>')
    monkeypatch.setitem(sys.modules, "chargetwin.reports.plots", module)
    yield


@pytest.fixture
def real_plots() -> None:
    pytest.importorskip("chargetwin.reports.plots")


# --- the markers: verdict, coverage cells, violations ------------------------------------


@pytest.mark.parametrize("name", ["smoke", "fail", "missing-field"])
def test_the_verdict_every_coverage_cell_and_every_violation_appear(name: str) -> None:
    results = load(name)
    soup = parse(render_report(results))
    assert verdict_of(soup) == results["verdict"]
    if "coverage" in results:
        assert_coverage_complete(soup, results)
    assert_violations_complete(soup, results)


def test_a_missing_violation_or_cell_or_a_wrong_verdict_is_caught() -> None:
    results = load("fail")
    soup = parse(render_report(results))
    soup.select("tr[data-violation]")[-1].decompose()
    with pytest.raises(AssertionError):
        assert_violations_complete(soup, results)
    soup.select("[data-coverage-key]")[0]["data-state"] = "valid" if results["coverage"]["items"][0]["state"] != \
        "valid" else "never seen"
    with pytest.raises(AssertionError):
        assert_coverage_complete(soup, results)
    assert verdict_of(parse(render_report(results))) != "pass"


def test_the_verdict_says_why_in_words_and_colour() -> None:
    fail = parse(render_report(load("fail")))
    verdict = fail.select_one("[data-verdict]")
    assert verdict is not None and "verdict-fail" in verdict["class"]
    assert verdict.get_text().strip().startswith("✘ FAIL") and "schema_and_rules" in verdict.get_text()
    counts = fail.select_one("ul.counts")
    assert counts is not None
    assert "1 of 10 checks failed" in counts.get_text() and "12 violations" in counts.get_text()
    passing = parse(render_report(load("smoke"))).select_one("[data-verdict]")
    assert passing is not None and "verdict-pass" in passing["class"] and "PASS" in passing.get_text()


def test_the_header_tells_what_ran_and_how_to_run_it_again() -> None:
    soup = parse(render_report(load("smoke")))
    command = soup.select_one("[data-command]")
    assert command is not None
    assert command.get_text() == "chargetwin run scenarios/smoke.toml --seed 42 --speed 60 --duration 900"
    facts = soup.select_one("dl.facts")
    assert facts is not None
    text = facts.get_text(" ")
    assert "chargetwin 0.1.0" in text and "15 min" in text and "smoke" in text


def test_a_scenario_path_with_spaces_is_quoted_in_the_command() -> None:
    results = load("smoke")
    results["scenario"]["source"] = "my scenarios/peak hour.toml"
    command = parse(render_report(results)).select_one("[data-command]")
    assert command is not None and "'my scenarios/peak hour.toml'" in command.get_text()


def test_items_the_run_never_exercised_are_said_so_not_counted_as_a_pass() -> None:
    results = load("smoke")
    soup = parse(render_report(results))
    never = soup.select('[data-coverage-key][data-state="never seen"]')
    assert never and all(cell.get_text().strip() == "never seen" for cell in never)
    assert all("st-never" in cell["class"] for cell in never)
    unobserved = soup.select('[data-state="not observed"]')
    assert unobserved and all("not observed" in cell.get_text() for cell in unobserved)
    caveat = soup.select_one("header .caveat")
    assert caveat is not None
    summary = results["coverage"]["summary"]
    assert f"{summary['valid']} of {summary['items']} spec items seen and valid" in caveat.get_text()
    assert "did not exercise" in caveat.get_text()


def test_the_matrix_counts_items_per_group_and_state() -> None:
    results = load("fail")
    matrix = parse(render_report(results)).select_one("#coverage-matrix")
    assert matrix is not None
    footer = [td.get_text() for td in matrix.select("tfoot td")]
    states = ("valid", "violations", "never seen", "not observed")
    items = results["coverage"]["items"]
    assert footer == [str(sum(1 for i in items if i["state"] == s)) for s in states] + [str(len(items))]
    assert footer[1] == "2"  # the wrong display broke two kinds of message


def test_without_coverage_and_city_the_report_says_they_are_not_in_the_file() -> None:
    soup = parse(render_report(load("missing-field")))
    assert {str(m["data-missing"]) for m in soup.select("[data-missing]")} == {"coverage", "metrics.city"}
    caveat = soup.select_one("header .caveat")
    assert caveat is not None and "not in this results file" in caveat.get_text()


# --- violations --------------------------------------------------------------------------


def test_violations_are_grouped_by_rule_most_frequent_first() -> None:
    results = load("smoke")
    examples = results["checks"][0]["examples"]
    base = {"check": "schema_and_rules", "hop": "redis", "expected": 1, "actual": 2, "pointer": "/status",
            "spec": "2. Charging Station Status Model", "records": []}
    examples += [{**base, "rule": "counts_add_up", "message": "counts"}]
    examples += [{**base, "rule": "status_follows_counts", "message": f"status {i}"} for i in range(3)]
    results["checks"][3]["examples"] = [{**base, "check": "isolation", "rule": None, "message": "leak",
                                         "spec": None}] * 2
    for check in results["checks"]:
        check["violations"] = len(check["examples"])
    soup = parse(render_report(results))
    groups = [(str(g["data-filter"]).strip(), len(g.select("tr[data-violation]")))
              for g in soup.select("section.rule-group")]
    assert groups == [("schema_and_rules status_follows_counts", 3), ("isolation", 2),
                      ("schema_and_rules counts_add_up", 1)]
    words = soup.select("section.rule-group h3")
    assert words[0].get_text() == "The station status follows from the connector counts and maintenance (ruling 3)."
    assert words[1].get_text() == "No socket ever receives another user's session update or notification."
    isolation = soup.select("section.rule-group")[1]
    assert isolation.select_one('a[href="#spec-3-laravel-backend--nodejs-gateway-redis-pubsub"]') is not None


def test_the_first_few_of_a_rule_are_shown_in_full_with_the_field_marked() -> None:
    results = load("fail")
    soup = parse(render_report(results))
    examples = soup.select("article.example")
    assert len(examples) == EXAMPLES_PER_RULE
    first = examples[0]
    marks = first.select("pre.json mark")
    assert [m.get_text() for m in marks] == ['"9/9"']
    assert marks[0].parent is not None and '"display": ' in str(first.select_one("pre.json"))
    text = first.get_text(" ")
    assert "/data/display" in text and '"2/3"' in text and '"9/9"' in text
    assert "trace line 90" in text and "hop redis" in text


def test_a_missing_field_is_marked_where_it_should_be() -> None:
    soup = parse(render_report(load("missing-field")))
    mark = soup.select_one("pre.json mark.missing")
    assert mark is not None and mark.get_text() == '"station_name": missing here'


def test_every_violation_links_to_the_spec_section_its_rule_comes_from() -> None:
    soup = parse(render_report(load("fail")))
    group = soup.select_one("section.rule-group")
    assert group is not None
    link = group.select_one('a[href^="#spec-"]')
    assert link is not None and link.get_text() == "2. Charging Station Status Model"
    anchors = {str(a["href"])[1:] for a in soup.select('a[href^="#"]')}
    ids = {str(t["id"]) for t in soup.select("[id]")}
    assert anchors <= ids, f"links to nowhere: {sorted(anchors - ids)}"
    target = soup.find(id=str(link["href"])[1:])
    assert isinstance(target, Tag)
    cited = target.find_next_sibling("dd")
    assert cited is not None and "display_matches_status (schema_and_rules): 12 violations" in cited.get_text()


def test_a_spec_url_adds_an_outbound_link_to_each_section() -> None:
    html = render_report(load("fail"), spec_url="https://docs.example.com/protocol.html")
    links = {str(a["href"]) for a in parse(html).select('a[rel~="external"]')}
    assert "https://docs.example.com/protocol.html#2-charging-station-status-model" in links


def test_a_cut_message_says_where_the_whole_is() -> None:
    results = load("fail")
    record = results["checks"][0]["examples"][0]["records"][0]
    record["message"]["data"]["connector_status"] = [{"connector_id": i, "status": "Available"} for i in range(4000)]
    soup = parse(render_report(results, source="out/results.json"))
    example = soup.select_one("article.example")
    assert example is not None
    pre = example.select_one("pre.json")
    assert pre is not None and len(pre.get_text()) < MESSAGE_BUDGET * 1.2
    assert [m.get_text() for m in pre.select("mark")] == ['"9/9"']
    assert "items left out" in pre.get_text()
    assert "whole message is on line 90 of the run's trace (out/trace.ndjson)" in example.get_text(" ")


def test_every_value_from_the_results_is_escaped() -> None:
    results = load("fail")
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    example = results["checks"][0]["examples"][0]
    example["message"] = evil
    example["actual"] = evil
    example["pointer"] = "/data/<b>"
    example["records"][0]["message"]["station_id"] = evil
    results["scenario"]["name"] = evil
    results["coverage"]["items"][0]["label"] = evil
    results["thresholds_failed"] = [evil]
    soup = parse(render_report(results))
    assert len(soup.find_all("script")) == 1 and not soup.find_all("img") and not soup.find_all("b")
    assert evil in soup.get_text()


# --- the page as a whole ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["smoke", "fail"])
def test_the_page_is_self_contained_and_structured(name: str) -> None:
    soup = parse(render_report(load(name)))
    html = soup.find("html")
    assert isinstance(html, Tag) and html.get("lang") == "en"
    for tag in soup.find_all(src=True):
        assert str(tag["src"]).startswith("data:"), tag
    for tag in soup.find_all("link"):
        assert str(tag.get("href", "")).startswith("data:"), tag
    assert not [a for a in soup.find_all("a", href=True) if not str(a["href"]).startswith("#")]
    assert soup.select_one("style") is not None and soup.select_one("main") is not None
    toc = [str(a["href"])[1:] for a in soup.select("nav.toc a")]
    assert toc == ["run", "coverage", "violations", "checks", "latency", "city", "capacity", "trends", "spec-sections"]
    assert all(soup.find(id=anchor) is not None for anchor in toc)
    assert "@media print" in str(soup.select_one("style"))


def test_the_script_only_enhances() -> None:
    soup = parse(render_report(load("fail")))
    host = soup.select_one("#violation-filter")
    assert host is not None and not host.contents  # the script fills it; without it the page lacks nothing
    assert not [tag for tag in soup.find_all(True) if any(a.startswith("on") for a in tag.attrs)]


def test_checks_show_their_counts_and_words_when_the_file_has_them() -> None:
    results = load("smoke")
    soup = parse(render_report(results))
    rows = soup.select("tr[data-check]")
    assert [str(r["data-check"]) for r in rows] == [c["name"] for c in results["checks"]]
    assert all(r["data-result"] == "pass" for r in rows)
    isolation = soup.select_one('tr[data-check="isolation"]')
    assert isolation is not None and results["checks"][3]["description"] in isolation.get_text()
    bare = parse(render_report(load("missing-field"))).select_one('tr[data-check="schema_and_rules"]')
    assert bare is not None and "no description in this results file" in bare.get_text()
    assert bare["data-result"] == "fail"


def test_latency_city_and_capacity_are_tables_as_well_as_plots() -> None:
    results = load("smoke")
    soup = parse(render_report(results))
    latency = soup.select_one("#latency-table")
    assert latency is not None
    assert [th.get_text() for th in latency.select("tbody th")] == list(results["metrics"]["latency_ms"])
    samples = soup.select_one("#city-samples")
    assert samples is not None and samples.select("tbody tr")
    energy = [row.select("td")[-1].get_text() for row in samples.select("tbody tr")]
    assert energy[-1] == f"{results['metrics']['city']['energy_kwh'][-1]:.1f}"
    plotted = {str(f["data-plot"]) for f in soup.select("figure[data-plot]") if f.find("svg")}
    assert plotted == set(PLOTS)
    assert "dropped slow clients (gateway)" in soup.get_text()


def _latency_rows(results: dict[str, Any]) -> list[list[str]]:
    """The latency table's name, kind and from -> to, row by row."""
    table = parse(render_report(results)).select_one("#latency-table")
    assert table is not None
    return [[c.get_text() for c in row.find_all(["th", "td"])][:3] for row in table.select("tbody tr")]


def test_latency_kinds_and_descriptions_come_from_the_results_file() -> None:
    results = copy.deepcopy(load("smoke"))
    described = results["metrics"]["latency_descriptions"]
    described["ocpp.call"]["description"] = "a CALL on the <wire> to its answer"
    described["e2e.start_to_session_started"]["kind"] = "hop"
    rows = _latency_rows(results)
    assert ["ocpp.call", "hop", "a CALL on the <wire> to its answer"] in rows
    assert [name for name, *_ in rows] == [  # hops (as the file says) first, then end to end
        "rest.start", "rest.stop", "ocpp.call", "gateway.push", "e2e.start_to_session_started",
        "e2e.meter_values_to_app"]
    assert rows[-1] == ["e2e.meter_values_to_app", "end to end", described["e2e.meter_values_to_app"]["description"]]
    results["metrics"]["latency_ms"] = dict(reversed(results["metrics"]["latency_ms"].items()))
    assert [name for name, *_ in _latency_rows(results)][-1] == "e2e.meter_values_to_app"


def test_a_results_file_without_latency_descriptions_still_shows_the_latencies() -> None:
    results = copy.deepcopy(load("smoke"))
    del results["metrics"]["latency_descriptions"]
    results["metrics"]["latency_ms"] = dict(reversed(results["metrics"]["latency_ms"].items()))
    rows = _latency_rows(results)
    assert rows == [[name, "—", "—"] for name in results["metrics"]["latency_ms"]]  # in the file's order
    section = parse(render_report(results)).select_one("#latency")
    assert section is not None and "no metrics.latency_descriptions" in section.get_text()


def test_the_timeline_lists_faults_and_maintenance() -> None:
    soup = parse(render_report(load("fail")))
    timeline = soup.select_one("#city-timeline")
    assert timeline is not None
    rows = [[c.get_text() for c in row.find_all(["th", "td"])] for row in timeline.select("tbody tr")]
    assert rows[0][:4] == ["18:02", "fault", "STATION002", "CP003"]
    assert rows[1][1] == "maintenance starts" and rows[1][4] == "planned <inspection>"


def test_a_missing_or_broken_plot_is_a_note_not_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("chargetwin.reports.plots")

    def broken(data: Any) -> str:
        raise ValueError("no axes")

    module.throughput = broken  # type: ignore[attr-defined]
    module.city_energy = lambda data: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chargetwin.reports.plots", module)
    soup = parse(render_report(load("smoke")))
    notes = {str(f["data-plot"]): f.get_text(" ").strip() for f in soup.select("figure[data-plot]")}
    assert "drawing it failed (ValueError: no axes)" in notes["throughput"]
    assert notes["city_energy"].startswith("nothing to plot in this run")
    assert notes["latency_over_time"].startswith("plot unavailable")
    monkeypatch.setitem(sys.modules, "chargetwin.reports.plots", None)  # no plots module at all
    soup = parse(render_report(load("smoke")))
    assert all("plot unavailable" in f.get_text() for f in soup.select("figure[data-plot]"))


def test_the_real_plots_are_inline_svg(real_plots: None) -> None:
    soup = parse(render_report(load("fail")))
    figures = {str(f["data-plot"]): f for f in soup.select("figure[data-plot]")}
    assert set(figures) == set(PLOTS)
    assert all(f.find("svg") is not None for f in figures.values())


def test_the_same_results_give_the_same_report() -> None:
    assert render_report(load("fail")) == render_report(load("fail"))


def test_a_document_that_is_not_results_is_refused_with_its_label() -> None:
    with pytest.raises(NotAResultsError, match=r"^out/results.json: at /checks/0/checked: must be a whole number"):
        results = load("smoke")
        results["checks"][0]["checked"] = "many"
        render_report(results, source="out/results.json")


# --- size ---------------------------------------------------------------------------------


def _station(i: int) -> dict[str, Any]:
    return {"station_id": f"STATION{i:03d}", "name": f"Station {i} <Mall & Co>", "status": "available",
            "address": f"{i} Long Street Name, District {i % 17}, Giza", "display": "2/4",
            "latitude": 30.0 + i / 1000, "longitude": 31.2 + i / 1000, "total_connectors": 4,
            "available_connectors": 2, "connectors_in_use": 2, "connectors_unavailable": 0,
            "charge_points": [{"charger_id": f"CP{i:03d}{k}", "status": "available", "display": "1/2",
                               "connectors": [{"connector_id": c, "status": "Available", "type": "CCS2",
                                               "power_kw": 50.0} for c in (1, 2)]} for k in range(2)]}


def worst_case() -> dict[str, Any]:
    """10 checks x 1,000 violations, each naming two records of a 170 KB charger_list_update."""
    big = {"type": "charger_list_update", "data": {"stations": [_station(i) for i in range(220)]},
           "timestamp": "2025-01-29T18:00:00Z"}
    assert len(json.dumps(big)) > 150_000
    results = copy.deepcopy(load("smoke"))
    rules = ("display_matches_status", "schema.required", "list_counts_add_up", "schema.type")
    for check in results["checks"]:
        schema = check["name"] == "schema_and_rules"
        check["examples"] = [{
            "check": check["name"], "hop": "gateway-app", "expected": "2/4", "actual": "9/9",
            "message": f"station STATION{i % 220:03d}: the display must read '2/4' when two of four connectors are "
                       f"available, and this one reads '9/9' (update {i}, and a few more words)",
            "rule": rules[i % 4] if schema else None, "pointer": f"/data/stations/{i % 220}/display",
            "spec": "4.7 Charger List Update (Pushed from Gateway)",
            "records": [{"line": 1000 + i, "hop": "gateway-app", "channel": "websocket", "direction": "receive",
                         "t_sim": 12.5 * i, "t_wall": 0.2 * i, "user_id": 7, "socket_id": s, "message": big}
                        for s in (3, 4)]} for i in range(1000)]
        check["violations"] = 1000
    results["verdict"] = "fail"
    results["failed_checks"] = [c["name"] for c in results["checks"]]
    return results


def test_the_report_of_a_worst_case_run_stays_under_5_mb() -> None:
    results = worst_case()
    html = render_report(results)
    size = len(html.encode("utf-8"))
    print(f"worst case: {size:,} bytes")  # a figure for the record: pytest -s shows it
    assert size < MAX_BYTES
    assert_violations_complete(parse(html), results)


def test_a_check_with_more_violations_than_the_file_keeps_says_so() -> None:
    results = load("fail")
    results["checks"][0]["violations"] = 5000
    soup = parse(render_report(results))
    counts = soup.select_one("ul.counts")
    assert counts is not None and "5,000 violations (12 kept in the results file)" in counts.get_text()
    caveats = [c.get_text() for c in soup.select("#violations .caveat")]
    assert caveats == ["schema_and_rules: 5000 violations found, the results file keeps the first 12."]
    link = soup.select_one('tr[data-check="schema_and_rules"] a[href^="#rule-"]')
    assert link is not None and link["href"] == "#rule-schema_and_rules-display_matches_status"


def test_the_report_of_a_whole_peak_run_shows_everything_and_stays_small(real_plots: None) -> None:
    """The results.json of a real ``chargetwin run city-evening-peak`` (5 simulated hours, about 6 million
    messages; see fixtures/README.md), rendered with the real plots."""
    results = load("peak")
    html = render_report(results)
    size = len(html.encode("utf-8"))
    print(f"peak run: {size:,} bytes")
    assert size < MAX_BYTES
    soup = parse(html)
    assert verdict_of(soup) == results["verdict"]
    assert_coverage_complete(soup, results)
    assert_violations_complete(soup, results)
    assert results["metrics"]["city"]["timeline"], "the peak has faults and maintenance to put on the timeline"
    plotted = {str(f["data-plot"]) for f in soup.select("figure[data-plot]") if f.find("svg")}
    assert plotted == set(PLOTS)
