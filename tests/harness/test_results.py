"""results.json and JUnit XML from check results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from chargetwin.harness.results import RESULTS_FORMAT, junit_xml, results_document, write_results


@dataclass
class Check:
    name: str
    checked: int
    violations: list[Any] = field(default_factory=list)


CHECKS = [Check("schema_and_rules", 120), Check("isolation", 40, [{"message": "user 2 got user 1's update"}])]


def test_a_violation_fails_the_verdict_and_is_kept() -> None:
    doc = results_document(CHECKS, scenario={"name": "smoke", "seed": 1}, metrics={}, versions={"chargetwin": "x"})
    assert doc["results_format"] == RESULTS_FORMAT and doc["verdict"] == "fail"
    assert doc["failed_checks"] == ["isolation"]
    assert doc["checks"][1] == {"name": "isolation", "checked": 40, "violations": 1,
                                "examples": [{"message": "user 2 got user 1's update"}]}


def test_no_violation_and_no_threshold_passes_but_a_threshold_fails() -> None:
    clean = [Check("schema_and_rules", 10)]
    assert results_document(clean, scenario={}, metrics={}, versions={})["verdict"] == "pass"
    assert results_document(clean, scenario={}, metrics={}, versions={},
                            thresholds_failed=["p99 latency"])["verdict"] == "fail"


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
