"""results.json and JUnit XML from check results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from chargetwin.harness.results import RESULTS_FORMAT, junit_xml, results_document, write_results
from chargetwin.harness.thresholds import Threshold


@dataclass
class Check:
    name: str
    checked: int
    violations: list[Any] = field(default_factory=list)
    rules: dict[str, int] | None = None

    @property
    def violation_count(self) -> int:
        return len(self.violations)


CHECKS = [Check("schema_and_rules", 120), Check("isolation", 40, [{"message": "user 2 got user 1's update"}])]


def test_a_violation_fails_the_verdict_and_is_kept() -> None:
    doc = results_document(CHECKS, scenario={"name": "smoke", "seed": 1}, metrics={}, versions={"chargetwin": "x"})
    assert doc["results_format"] == RESULTS_FORMAT and doc["verdict"] == "fail"
    assert doc["failed_checks"] == ["isolation"]
    assert doc["checks"][1] == {"name": "isolation", "checked": 40, "violations": 1, "rules": {"isolation": 1},
                                "examples": [{"message": "user 2 got user 1's update"}]}
    assert doc["complete"] is True and doc["stopped"] is None


def test_no_violation_and_no_threshold_passes_but_a_threshold_fails() -> None:
    clean = [Check("schema_and_rules", 10)]
    assert results_document(clean, scenario={}, metrics={}, versions={})["verdict"] == "pass"
    broken = Threshold("latency rest.start p99", 500, 626, " ms", False, "latency rest.start p99 626 ms > 500 ms")
    held = Threshold("clock_lag_p99", 1, 0.5, " s", True, "clock lag p99 0.5 s <= 1 s")
    failed = results_document(clean, scenario={}, metrics={}, versions={}, thresholds=[held, broken])
    assert failed["verdict"] == "fail" and failed["thresholds_failed"] == ["latency rest.start p99 626 ms > 500 ms"]
    assert [t["passed"] for t in failed["thresholds"]] == [True, False]


def test_descriptions_name_what_a_check_asserts_and_its_spec_section() -> None:
    doc = results_document(CHECKS, scenario={}, metrics={}, versions={},
                           descriptions={"isolation": ("No socket gets another user's update.", "3.2 Session Updates")})
    plain, described = doc["checks"]
    assert "description" not in plain and "spec" not in plain
    assert (described["description"], described["spec"]) == ("No socket gets another user's update.",
                                                              "3.2 Session Updates")


def test_junit_has_one_case_per_check_and_fails_the_broken_one(tmp_path: Path) -> None:
    root = ElementTree.fromstring(junit_xml(CHECKS, suite="chargetwin.smoke").encode())
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["schema_and_rules", "isolation"]
    assert cases[0].find("failure") is None
    assert "1 violation(s) in 40 checked" in (cases[1].find("failure").get("message") or "")  # type: ignore[union-attr]
    write_results(tmp_path / "out", results_document(CHECKS, scenario={"name": "smoke"}, metrics={}, versions={}),
                  CHECKS)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["verdict"] == "fail"
    assert (tmp_path / "out" / "junit.xml").read_text().startswith("<?xml")


def test_a_failed_threshold_fails_a_test_case_in_junit() -> None:
    broken = Threshold("latency rest.start p99", 500, 626, " ms", False, "latency rest.start p99 626 ms > 500 ms")
    held = Threshold("clock_lag_p99", 1, 0.5, " s", True, "clock lag p99 0.5 s <= 1 s")
    clean = [Check("schema_and_rules", 10)]
    root = ElementTree.fromstring(junit_xml(clean, suite="chargetwin.smoke", thresholds=[held, broken]).encode())
    assert root.get("tests") == "3" and root.get("failures") == "1"
    cases = {c.get("name"): c for c in root.findall("./testsuite/testcase")}
    assert cases["clock_lag_p99"].find("failure") is None
    failure = cases["latency rest.start p99"].find("failure")
    assert failure is not None and failure.get("message") == "latency rest.start p99 626 ms > 500 ms"
    assert cases["latency rest.start p99"].get("classname") == "chargetwin.smoke.thresholds"
