"""``chargetwin run SCENARIO``: the model drives the whole stack; every message is checked."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from ._overrides import add_override_options, with_overrides
from ._report_cmd import write_run_report
from .twin.scenario import ScenarioError, load_scenario
from .twin.services.settings import Settings

__all__ = ["add_run_parser"]


def add_run_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run a scenario through the whole stack and check every message",
        description="Start the stack (Redis, CMS, backend, gateway, OCPP charge points), let the scenario's "
                    "drivers charge through simulated apps at the scenario's speed, tap every hop into a trace, "
                    "and check every message and the cross-message invariants. Writes trace.ndjson, "
                    "results.json, junit.xml and the HTML report (report.html) into --out.",
        epilog="Exit codes: 0 every check passed and the scenario's thresholds held, 1 otherwise, "
               "2 bad input or the stack could not start.",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file or bundled name (e.g. smoke)")
    parser.add_argument("--out", type=Path, help="output folder (default: out/<scenario name>)")
    add_override_options(parser)
    parser.add_argument("--speed", type=float, help="simulated seconds per wall second (default: the scenario's)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show live progress on standard error (default: when it is a terminal)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = with_overrides(load_scenario(args.scenario), args)
    except (ScenarioError, ValueError) as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    if args.speed is not None and args.speed <= 0:
        print("chargetwin: --speed must be above 0", file=sys.stderr)
        return 2
    out: Path = args.out or Path("out") / scenario.name
    settings = replace(Settings.from_env(), backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0,
                       database=str(out / "backend.sqlite3"))
    err = Console(stderr=True, force_terminal=True if args.progress else None)
    show = err.is_terminal if args.progress is None else args.progress
    from .harness.run import run_scenario  # the services' imports are heavy; other commands do without

    out.mkdir(parents=True, exist_ok=True)
    (out / "backend.sqlite3").unlink(missing_ok=True)
    try:
        document = asyncio.run(run_scenario(scenario, out=out, settings=settings, speed=args.speed,
                                            console=err if show else None))
    except OSError as error:
        print(f"chargetwin: cannot run the stack: {error}", file=sys.stderr)
        return 2
    _print_summary(document, out, report=write_run_report(out))
    return 0 if document["verdict"] == "pass" else 1


def _print_summary(document: dict[str, Any], out: Path, *, report: Path | None) -> None:
    metrics = document["metrics"]
    print(f"{document['scenario']['name']}: {document['verdict'].upper()}  "
          f"({metrics['messages_checked']:,} messages checked in {metrics['wall_seconds']:.1f} s; "
          f"clock lag p99 {metrics['clock_lag_s']['p99']:.2f} s)")
    for check in document["checks"]:
        mark = "ok  " if not check["violations"] else "FAIL"
        print(f"  {mark} {check['name']:<24} {check['checked']:>8,} checked  {check['violations']:>6,} violations")
    latency = metrics.get("latency_ms", {})
    if latency:
        print("  latency p50/p99 ms: " + ", ".join(f"{name} {v['p50']:g}/{v['p99']:g}"
                                                    for name, v in latency.items() if v["count"]))
    for failed in document["thresholds_failed"]:
        print(f"  FAIL threshold: {failed}")
    written = "trace, results.json, junit.xml and report.html" if report else "trace, results.json and junit.xml"
    print(f"{written} in {out}")
