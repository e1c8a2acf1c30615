"""``chargetwin report RESULTS.json``: the HTML conformance report of a run, rendered again."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_report_parser", "write_run_report"]


def add_report_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="render the HTML conformance report of a run's results.json",
        description="Render one self-contained HTML file (no network, styles and plots inline) from a run's "
                    "results.json: verdict, coverage of the spec, violations, invariants, latency, the "
                    "simulated city, capacity, and with --compare the trend against earlier runs.",
        epilog="Exit codes: 0 the report was written, 2 bad input (the message says which file and why).",
    )
    parser.add_argument("results", metavar="RESULTS.json", type=Path, help="a run's results.json")
    parser.add_argument("-o", "--output", type=Path,
                        help="the HTML file to write (default: report.html beside RESULTS.json)")
    parser.add_argument("--compare", metavar="EARLIER.json", type=Path, action="append", default=[],
                        help="an earlier run's results.json to show the trend against (repeatable, oldest first)")
    parser.set_defaults(run=_report)


def _report(args: argparse.Namespace) -> int:
    from .reports import ReportError, write_report  # matplotlib's import is slow; other commands do without

    try:
        path = write_report(args.results, args.output, compare=args.compare)
    except ReportError as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"chargetwin: cannot write the report: {error}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def write_run_report(out: Path) -> Path | None:
    """Write ``report.html`` for the ``results.json`` a run just wrote into ``out``; None (and why, on
    standard error) when it could not be written: the run's verdict stands without it."""
    from .reports import ReportError, write_report

    try:
        return write_report(out / "results.json", out / "report.html")
    except (ReportError, OSError) as error:
        print(f"chargetwin: the HTML report could not be written: {error}", file=sys.stderr)
        return None
