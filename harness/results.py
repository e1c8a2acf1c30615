"""A run's verdict as files: ``results.json`` (versioned) and JUnit XML (one test case per check).

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

__all__ = ["RESULTS_FORMAT", "CheckLike", "junit_xml", "results_document", "write_results"]

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


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def results_document(checks: Sequence[CheckLike], *, scenario: Mapping[str, Any], metrics: Mapping[str, Any],
                     versions: Mapping[str, str], thresholds_failed: Sequence[str] = (),
                     descriptions: Mapping[str, tuple[str, str]] | None = None,
                     coverage: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``results.json`` document: verdict, every check with counts and violations, metrics, provenance.

    ``descriptions`` gives, per check name, what the check asserts in words and the spec section it
    comes from (``description`` and ``spec`` of each check; omitted for checks it does not name).
    ``coverage`` (:func:`chargetwin.harness.coverage.coverage`) goes in as is, when given.
    """
    failed = [c.name for c in checks if c.violations]
    described = descriptions or {}
    verdict = "fail" if failed or thresholds_failed else "pass"
    document = {
        "results_format": RESULTS_FORMAT,
        "verdict": verdict,
        "failed_checks": failed,
        "thresholds_failed": list(thresholds_failed),
        "checks": [_check(c, described.get(c.name)) for c in checks],
        "metrics": dict(metrics),
        "scenario": dict(scenario),
        "versions": dict(versions),
    }
    if coverage is not None:
        document["coverage"] = dict(coverage)
    return document


def _check(check: CheckLike, description: tuple[str, str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": check.name, "checked": check.checked, "violations": len(check.violations)}
    if description is not None:
        entry["description"], entry["spec"] = description
    entry["examples"] = [_plain(v) for v in check.violations[:MAX_VIOLATIONS_PER_CHECK]]
    return entry


def junit_xml(checks: Sequence[CheckLike], *, suite: str) -> str:
    """JUnit XML with one test case per check: failed when the check found violations."""
    failures = sum(1 for c in checks if c.violations)
    root = ElementTree.Element("testsuites", tests=str(len(checks)), failures=str(failures))
    tests = ElementTree.SubElement(root, "testsuite", name=suite, tests=str(len(checks)),
                                   failures=str(failures), errors="0", skipped="0")
    for check in checks:
        case = ElementTree.SubElement(tests, "testcase", classname=suite, name=check.name)
        if check.violations:
            first = _plain(check.violations[0])
            failure = ElementTree.SubElement(case, "failure", type="ContractViolation",
                                             message=f"{len(check.violations)} violation(s) in {check.checked} checked")
            failure.text = json.dumps(first, indent=2, default=str, ensure_ascii=False)
        ElementTree.SubElement(case, "system-out").text = f"checked {check.checked}"
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


def write_results(out: Path, document: Mapping[str, Any], checks: Sequence[CheckLike]) -> None:
    """Write ``results.json`` and ``junit.xml`` into ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(document, indent=2, default=str, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    suite = f"chargetwin.{document.get('scenario', {}).get('name', 'run')}"
    (out / "junit.xml").write_text(junit_xml(checks, suite=suite), encoding="utf-8")
