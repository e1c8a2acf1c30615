"""HTML conformance reports: one self-contained file per run, rendered from its ``results.json``.

::

    from chargetwin.reports import write_report
    path = write_report(Path("out/results.json"), compare=[Path("last-week/results.json")])

:func:`render_report` turns a results document (already in memory) into the
HTML text; :func:`write_report` reads the files, renders and writes
``report.html`` beside the results. What the report shows, section by
section, is in ``docs/report.md``. Errors are :class:`ReportError` s (tree in
:mod:`.exceptions`) whose messages say what was wrong and what to do.

This package imports nothing of chargetwin but :mod:`chargetwin.contracts`
(ARCHITECTURE.md). Plots come from :mod:`.plots` (matplotlib, imported on
first use); the report stands without them.
"""

from __future__ import annotations

from ._load import SUPPORTED_FORMATS, check_results, read_results
from .exceptions import (
    NotAResultsError,
    ReportError,
    ReportWriteError,
    ResultsError,
    ResultsNotFoundError,
    ResultsSyntaxError,
    UnsupportedFormatError,
)
from .render import REPORT_NAME, render_report, write_report

__all__ = [
    "REPORT_NAME",
    "SUPPORTED_FORMATS",
    "NotAResultsError",
    "ReportError",
    "ReportWriteError",
    "ResultsError",
    "ResultsNotFoundError",
    "ResultsSyntaxError",
    "UnsupportedFormatError",
    "check_results",
    "read_results",
    "render_report",
    "write_report",
]
