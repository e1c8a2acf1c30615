"""``chargetwin run SCENARIO``: the model drives the whole stack; every message is checked as it passes."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from ._overrides import add_override_options, with_overrides
from ._report_cmd import write_run_report
from .harness.trace import TRACE_MODES
from .twin.scenario import ScenarioError, load_scenario
from .twin.services.settings import Settings

__all__ = ["add_run_parser", "check_out", "print_summary"]

EXIT_INTERRUPTED = 130


def add_run_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run a scenario through the whole stack and check every message",
        description="Start the stack (Redis, CMS, backend, gateway, OCPP charge points), let the scenario's "
                    "drivers charge through simulated apps at the scenario's speed, and check every message and "
                    "the cross-message invariants as the traffic flows: the first violations of each rule are "
                    "printed as they are found. Writes trace.ndjson, results.json, junit.xml and the HTML report "
                    "(report.html) into --out. Ctrl-C stops the run and still writes the results of what ran, "
                    "marked incomplete (Ctrl-C again aborts).",
        epilog="Exit codes: 0 every check passed and the scenario's thresholds held, 1 otherwise, "
               "2 bad input or the stack could not start, 130 interrupted (the results are written).",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file or bundled name (e.g. smoke)")
    parser.add_argument("--out", type=Path, help="output folder (default: out/<scenario name>)")
    add_override_options(parser)
    parser.add_argument("--speed", type=float, help="simulated seconds per wall second (default: the scenario's)")
    parser.add_argument("--trace", choices=TRACE_MODES, default="full",
                        help="what trace.ndjson keeps: every record (full, the default: a whole city-evening-peak "
                             "is about 5 GB), only the records of each violation with 20 records around it "
                             "(violations), or nothing (none); the checks do not need it")
    parser.add_argument("--target", type=Path, metavar="FILE",
                        help="run against someone else's services named in a target file (docs/target-format.md): "
                             "the twin's charge points connect to its OCPP endpoint, the simulated apps use its "
                             "backend and gateway, its Redis is tapped if named; nothing of ours is started")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show progress on standard error: a bar on a terminal, else a status line every 10 s "
                             "(default); --no-progress shows only the violations")
    parser.set_defaults(run=_run)


def check_out(out: Path) -> str | None:
    """Why ``out`` cannot be the output folder (in words, with what to do), or None when it can."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: is a file, not a folder; name a folder (it is created if missing)"
    folder = out
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"--out {out}: {folder} is a file, so the folder cannot be created there; name another folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        return f"--out {out}: cannot write there ({error.strerror or error}); name a folder you can write to"
    return None


def _run(args: argparse.Namespace) -> int:
    from .twin.target import TargetError, load_target

    try:
        scenario = with_overrides(load_scenario(args.scenario), args)
        target = load_target(args.target) if args.target is not None else None
    except (ScenarioError, ValueError) as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    if args.speed is not None and args.speed <= 0:
        print("chargetwin: --speed must be above 0", file=sys.stderr)
        return 2
    out: Path = args.out or Path("out") / scenario.name
    problem = check_out(out)
    if problem is not None:
        print(f"chargetwin: {problem}", file=sys.stderr)
        return 2
    settings = replace(Settings.from_env(), backend_port=0, cms_port=0, ocpp_port=0, gateway_port=0,
                       database=str(out / "backend.sqlite3"))
    err = Console(stderr=True, force_terminal=True if args.progress else None)
    # a bar where a person watches; where standard output is not a terminal (a CI log), a status line every 10 s
    watched = err.is_terminal and sys.stdout.isatty()
    progress: Literal["bar", "lines", "quiet"] = (
        "quiet" if args.progress is False else "bar" if watched or args.progress else "lines")
    from .harness.exceptions import HarnessError
    from .harness.run import run_scenario  # the services' imports are heavy; other commands do without

    (out / "backend.sqlite3").unlink(missing_ok=True)
    try:
        document = asyncio.run(run_scenario(scenario, out=out, settings=settings, speed=args.speed, console=err,
                                            trace=args.trace, progress=progress, target=target))
    except TargetError as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"chargetwin: cannot run the stack: {error}", file=sys.stderr)
        return 2
    except HarnessError as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    report = write_run_report(out)
    print_summary(document, out, report=report, trace=args.trace)
    if not document.get("complete", True) and str(document.get("stopped", "")).startswith("interrupted"):
        return EXIT_INTERRUPTED
    return 0 if document["verdict"] == "pass" else 1


def print_summary(document: dict[str, Any], out: Path | None, *, report: Path | None, trace: str = "full") -> None:
    """The verdict, a line per check and the latencies; the broken thresholds; where the outputs are."""
    metrics = document["metrics"]
    incomplete = "" if document.get("complete", True) else f" (INCOMPLETE: {document.get('stopped')})"
    lag = metrics.get("clock_lag_s", {}).get("p99")
    lag_text = f"; clock lag p99 {lag:.3g} s" if isinstance(lag, int | float) else ""
    print(f"{document['scenario'].get('name', 'run')}: {document['verdict'].upper()}{incomplete}  "
          f"({metrics['messages_checked']:,} messages checked in {metrics['wall_seconds']:.1f} s{lag_text})")
    for check in document["checks"]:
        mark = "ok  " if not check["violations"] else "FAIL"
        print(f"  {mark} {check['name']:<24} {check['checked']:>8,} checked  {check['violations']:>6,} violations")
    latency = metrics.get("latency_ms", {})
    if latency:
        print("  latency p50/p99 ms: " + ", ".join(f"{name} {v['p50']:g}/{v['p99']:g}"
                                                    for name, v in latency.items() if v["count"]))
    for failed in document["thresholds_failed"]:
        print(f"  FAIL threshold: {failed}")
    if out is None:
        return
    written = ["results.json", "junit.xml"] + (["trace.ndjson"] if trace != "none" else [])
    print(f"{', '.join(written)} in {out}")
    if report is not None:
        print(f"report: {report}  (open it in a browser: {report.resolve().as_uri()})")
    else:
        print(f"no HTML report (see above); results.json has everything: chargetwin report {out / 'results.json'}")
