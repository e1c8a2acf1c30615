"""Checks that a rendered report shows what its results.json holds (used by the report and the run tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

__all__ = ["assert_coverage_complete", "assert_report_shows", "assert_violations_complete", "parse", "verdict_of"]


def parse(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def verdict_of(soup: BeautifulSoup) -> str:
    found = soup.select("[data-verdict]")
    assert len(found) == 1, "exactly one verdict"
    return str(found[0]["data-verdict"])


def assert_coverage_complete(soup: BeautifulSoup, results: dict[str, Any]) -> None:
    cells = [(str(c["data-coverage-key"]), str(c["data-state"])) for c in soup.select("[data-coverage-key]")]
    expected = [(item["key"], item["state"]) for item in results["coverage"]["items"]]
    assert sorted(cells) == sorted(expected)


def assert_violations_complete(soup: BeautifulSoup, results: dict[str, Any]) -> None:
    shown = [str(row["data-violation"]) for row in soup.select("tr[data-violation]")]
    expected = [f"{c['name']}:{i}" for c in results["checks"] for i in range(len(c["examples"]))]
    assert sorted(shown) == sorted(expected)


def assert_report_shows(report: Path, results: dict[str, Any]) -> BeautifulSoup:
    """The report file shows ``results``'s verdict, every coverage cell and every violation; its soup."""
    soup = parse(report.read_text(encoding="utf-8"))
    assert verdict_of(soup) == results["verdict"]
    assert_coverage_complete(soup, results)
    assert_violations_complete(soup, results)
    return soup
