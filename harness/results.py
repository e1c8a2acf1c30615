"""A run's verdict as files: ``results.json`` (versioned) and JUnit XML (a test case per check and per threshold).

Both are written from the same check results, so a CI system and a person
reading the JSON see the same counts. The format of ``results.json`` is
documented in ``docs/results-format.md``; ``RESULTS_FORMAT`` changes when a
field changes meaning or goes away.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Protocol
from xml.etree import ElementTree

__all__ = ["RESULTS_FORMAT", "CaseLike", "CheckLike", "ThresholdLike", "junit_xml", "results_document", "write_results"]

RESULTS_FORMAT = 1

MAX_VIOLATIONS_PER_CHECK = 1000
"""Violations kept per check in results.json; the counts always cover all of them."""


class CheckLike(Protocol):
    """What a check result offers: its name, how many things it checked, and what it found."""

    @property
    def name(self) -> str: ...

    @property
    def checked(self) -> int: ...

    @property
    def violations(self) -> Sequence[Any]: ...

    @property
    def violation_count(self) -> int: ...

    @property
    def rules(self) -> Mapping[str, int] | None: ...


class ThresholdLike(Protocol):
    """What a judged threshold offers (:class:`chargetwin.harness.thresholds.Threshold`)."""

    @property
    def name(self) -> str: ...

    @property
    def passed(self) -> bool: ...

    @property
    def message(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class CaseLike(ThresholdLike, Protocol):
    """One expectation of ``chargetwin check`` (:class:`chargetwin.harness.conformance.phases.Case`).

    ``warning``: not passed, but only a ruling asks for it: listed, not failing.
    """

    @property
    def phase(self) -> str: ...

    @property
    def warning(self) -> bool: ...


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def results_document(checks: Sequence[CheckLike], *, scenario: Mapping[str, Any], metrics: Mapping[str, Any],
                     versions: Mapping[str, str], thresholds: Sequence[ThresholdLike] = (),
                     descriptions: Mapping[str, tuple[str, str]] | None = None,
                     coverage: Mapping[str, Any] | None = None, complete: bool = True,
                     stopped: str | None = None, cases: Sequence[CaseLike] = ()) -> dict[str, Any]:
    """The ``results.json`` document: verdict, every check with counts and violations, metrics, provenance.

    ``descriptions`` gives, per check name, what the check asserts in words and the spec section it
    comes from (``description`` and ``spec`` of each check; omitted for checks it does not name).
    ``coverage`` (:class:`chargetwin.harness.coverage.Coverage`) goes in as is, when given.
    ``complete`` is False for a run stopped early (``stopped`` says why): its results cover what it saw.
    ``cases``: the expectations of ``chargetwin check``, each passed or failed (``cases[]``, ``failed_cases``).
    """
    failed = [c.name for c in checks if c.violation_count]
    failed_thresholds = [t.message for t in thresholds if not t.passed]
    failed_cases = [f"{c.phase}: {c.name}" for c in cases if not c.passed and not c.warning]
    described = descriptions or {}
    verdict = "fail" if failed or failed_thresholds or failed_cases else "pass"
    document = {
        "results_format": RESULTS_FORMAT,
        "verdict": verdict,
        "complete": complete,
        "stopped": stopped,
        "failed_checks": failed,
        "thresholds_failed": failed_thresholds,
        "thresholds": [t.to_dict() for t in thresholds],
        "checks": [_check(c, described.get(c.name)) for c in checks],
        "metrics": dict(metrics),
        "scenario": dict(scenario),
        "versions": dict(versions),
    }
    if cases:
        document["failed_cases"] = failed_cases
        document["cases"] = [c.to_dict() for c in cases]
    if coverage is not None:
        document["coverage"] = dict(coverage)
    return document


def _check(check: CheckLike, description: tuple[str, str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": check.name, "checked": check.checked, "violations": check.violation_count}
    if description is not None:
        entry["description"], entry["spec"] = description
    entry["rules"] = dict(check.rules) if check.rules is not None else _rules(check)
    entry["examples"] = [_plain(v) for v in check.violations[:MAX_VIOLATIONS_PER_CHECK]]
    return entry


def _rules(check: CheckLike) -> dict[str, int]:
    found: dict[str, int] = {}
    for v in check.violations:
        rule = getattr(v, "rule", None) or check.name
        found[rule] = found.get(rule, 0) + 1
    return found


def junit_xml(checks: Sequence[CheckLike], *, suite: str, thresholds: Sequence[ThresholdLike] = (),
              cases: Sequence[CaseLike] = ()) -> str:
    """JUnit XML: a test case per check (failed when it found violations), per threshold and per case (failed
    when broken); a case's class is its phase (``chargetwin.check.rest``)."""
    failures = (sum(1 for c in checks if c.violation_count) + sum(1 for t in thresholds if not t.passed)
                + sum(1 for c in cases if not c.passed and not c.warning))
    tests_count = len(checks) + len(thresholds) + len(cases)
    root = ElementTree.Element("testsuites", tests=str(tests_count), failures=str(failures))
    tests = ElementTree.SubElement(root, "testsuite", name=suite, tests=str(tests_count),
                                   failures=str(failures), errors="0", skipped="0")
    for check in checks:
        case = ElementTree.SubElement(tests, "testcase", classname=f"{suite}.checks", name=check.name)
        if check.violation_count:
            first = _plain(check.violations[0]) if check.violations else {}
            failure = ElementTree.SubElement(case, "failure", type="ContractViolation",
                                             message=f"{check.violation_count} violation(s) in {check.checked} "
                                                     "checked")
            failure.text = json.dumps(first, indent=2, default=str, ensure_ascii=False)
        ElementTree.SubElement(case, "system-out").text = f"checked {check.checked}"
    for threshold in thresholds:
        case = ElementTree.SubElement(tests, "testcase", classname=f"{suite}.thresholds", name=threshold.name)
        if not threshold.passed:
            failure = ElementTree.SubElement(case, "failure", type="ThresholdFailed", message=threshold.message)
            failure.text = json.dumps(threshold.to_dict(), indent=2, default=str, ensure_ascii=False)
        ElementTree.SubElement(case, "system-out").text = threshold.message
    for expectation in cases:
        case = ElementTree.SubElement(tests, "testcase", classname=f"{suite}.{expectation.phase}",
                                      name=expectation.name)
        if not expectation.passed and not expectation.warning:
            ElementTree.SubElement(case, "failure", type="ContractViolation", message=expectation.message)
        said = f"warning: {expectation.message}" if expectation.warning else expectation.message
        ElementTree.SubElement(case, "system-out").text = said
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def write_results(out: Path, document: Mapping[str, Any], checks: Sequence[CheckLike],
                  thresholds: Sequence[ThresholdLike] = (), cases: Sequence[CaseLike] = ()) -> None:
    """Write ``results.json`` and ``junit.xml`` into ``out`` (created if missing), each through a temporary file."""
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "results.json", json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n")
    suite = f"chargetwin.{document.get('scenario', {}).get('name', 'run')}"
    _write(out / "junit.xml", junit_xml(checks, suite=suite, thresholds=thresholds, cases=cases))


def _write(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all: a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
