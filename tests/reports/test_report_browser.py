"""The report in a real browser: Debian's Chromium, headless, driven by Playwright.

The page must render (a screenshot is taken), log no console error and ask
the network for nothing: the report is one self-contained file. Where no
Chromium exists the tests skip, saying how to get one; CI installs it
(``.ci/run``) and sets ``CHARGETWIN_REQUIRE_BROWSER=1``, which turns that
skip into a failure.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from browser_testkit import chromium

from chargetwin.reports import render_report

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class PageVisit:
    """What the browser saw of one page: console errors, uncaught exceptions, requests that left the file."""

    errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    verdict: str | None = None


def _visit(browser_path: str, page_path: Path, screenshot: Path) -> PageVisit:
    """Open ``page_path`` from disk in headless Chromium; block and record every request off the file."""
    from playwright.sync_api import Route, sync_playwright

    visit = PageVisit()

    def route(r: Route) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:", "about:")):
            r.continue_()
        else:
            visit.external.append(url)
            r.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: visit.errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: visit.errors.append(str(error)))
            page.route("**/*", route)
            page.goto(page_path.as_uri(), wait_until="load")
            verdict = page.locator("[data-verdict]").first
            visit.verdict = verdict.get_attribute("data-verdict") if verdict.count() else None
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return visit


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.parametrize("fixture", ["smoke-results.json", "fail-results.json"])
def test_the_report_renders_in_chromium_with_no_errors_and_no_requests(fixture: str, tmp_path: Path) -> None:
    browser = chromium()
    results = json.loads((FIXTURES / fixture).read_text(encoding="utf-8"))
    page = tmp_path / "report.html"
    page.write_text(render_report(results), encoding="utf-8")
    shot = tmp_path / "report.png"
    visit = _visit(browser, page, shot)
    assert visit.errors == []
    assert visit.external == []
    assert visit.verdict == results["verdict"]
    width, height = _png_size(shot)
    assert width == 1280 and height > 900  # the whole page, longer than one screen


def test_the_browser_check_sees_console_errors_and_outside_requests(tmp_path: Path) -> None:
    browser = chromium()
    page = tmp_path / "leaky.html"
    page.write_text("<!doctype html><html lang=en><title>leaky</title><p data-verdict=pass>pass</p>"
                    "<img src='https://cdn.example.com/logo.png' alt=''>"
                    "<script>console.error('broken script')</script>", encoding="utf-8")
    visit = _visit(browser, page, tmp_path / "leaky.png")
    assert "broken script" in visit.errors
    assert visit.external == ["https://cdn.example.com/logo.png"]
