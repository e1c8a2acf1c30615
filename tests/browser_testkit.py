"""Finding the browser for the browser tests: Debian's Chromium, driven by Playwright.

Where no Chromium exists the tests skip, saying how to get one; CI installs
it (``.ci/run``) and sets ``CHARGETWIN_REQUIRE_BROWSER=1``, which turns that
skip into a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["chromium"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The browser to drive, or a skip (a failure when CHARGETWIN_REQUIRE_BROWSER is set) saying how to get one."""
    found = os.environ.get("CHARGETWIN_CHROMIUM") or next(filter(None, map(shutil.which, CANDIDATES)), None)
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    if found is None:
        reason = ("no Chromium found: install Debian's chromium package (apt-get install chromium) "
                  "or set CHARGETWIN_CHROMIUM to a Chrome/Chromium binary")
        if os.environ.get("CHARGETWIN_REQUIRE_BROWSER"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found
