"""``chargetwin validate FILE``: check captured traffic offline against the contracts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from .contracts import (
    ContractsError,
    Record,
    RecordError,
    Validator,
    Violation,
    check_record,
    default_validator,
    iter_lines,
    parse_record,
)

__all__ = ["Summary", "add_validate_parser", "describe_parts", "short", "validate_stream"]


@dataclass(slots=True)
class Summary:
    """What one ``validate`` run found."""

    records: int = 0
    failing_records: int = 0
    violations: int = 0
    unreadable: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.unreadable:
            return 2
        return 1 if self.violations else 0


def add_validate_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "validate",
        help="validate captured messages (NDJSON) against the contracts",
        description="Validate captured traffic offline. Each line of FILE is one record: "
                    '{"channel": ..., "direction": ..., "message": {...}} (see docs/traffic-format.md). '
                    "A run's trace (trace.ndjson: records with trace_format) goes through the same checks as "
                    "the run did, cross-message checks and the run's thresholds included, and gets its verdict. "
                    "Prints each violation and a summary.",
        epilog="Exit codes: 0 every record conforms (a trace: its run passed), 1 violations found (a trace: its run "
               "failed), 2 unreadable or empty input.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="NDJSON file to check; '-' reads standard input; "
                        "a folder: its trace.ndjson (chargetwin run --out, serve --record)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people (default); json prints one JSON object per violation")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar on standard error (default: when it is a terminal)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        validator = default_validator()
    except ContractsError as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    summary = Summary()
    codes: list[int] = []
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    with _progress_bar(show_progress, forced=bool(args.progress)) as progress:
        for name in args.files:
            try:
                with _open(name) as stream:
                    first, lines = _peek(_with_progress(stream, progress, name) if progress else stream)
                    if first is not None and b'"trace_format"' in first:
                        from ._validate_trace import validate_trace  # the harness: only for a run's trace

                        codes.append(validate_trace(lines, source=name, out=None if args.quiet else sys.stdout,
                                                    fmt=args.format))
                        continue
                    validate_stream(validator, lines, source=name, summary=summary,
                                    out=None if args.quiet else sys.stdout, fmt=args.format)
            except OSError as error:
                print(f"chargetwin: cannot read {name}: {error.strerror or error}", file=sys.stderr)
                summary.unreadable += 1
    if summary.records or summary.unreadable or not codes:
        if not summary.records and not summary.unreadable:
            print("chargetwin: nothing to validate: the input holds no record", file=sys.stderr)
            return 2
        _print_summary(summary, sys.stderr if args.format == "json" else sys.stdout)
        codes.append(summary.exit_code)
    return max(codes)


def _peek(lines: Iterable[bytes]) -> tuple[bytes | None, Iterable[bytes]]:
    """The first non-blank line of ``lines``, and all of them again (blank ones included)."""
    iterator = iter(lines)
    seen: list[bytes] = []
    for raw in iterator:
        seen.append(raw)
        if raw.strip():
            return raw, chain(seen, iterator)
    return None, seen


@contextmanager
def _progress_bar(show: bool, *, forced: bool) -> Iterator[Progress | None]:
    """A progress display on standard error; ``forced`` draws it even where that is no terminal."""
    if not show:
        yield None
        return
    columns = (TextColumn("validating {task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    console = Console(stderr=True, force_terminal=forced or None)
    # Violations go to stdout; draw them above the bar only when both share a terminal.
    with Progress(*columns, console=console, transient=True,
                  redirect_stdout=sys.stdout.isatty(), redirect_stderr=False) as progress:
        yield progress


def _with_progress(stream: IO[bytes], progress: Progress, name: str) -> Iterator[bytes]:
    """The lines of ``stream``, advancing a progress task by the bytes read."""
    size = os.fstat(stream.fileno()).st_size if name != "-" else None
    task = progress.add_task(name, total=size or None)
    pending = 0
    for number, raw in enumerate(stream):
        pending += len(raw)
        if number % 4096 == 0:
            progress.advance(task, pending)
            pending = 0
        yield raw
    progress.advance(task, pending)


@contextmanager
def _open(name: str) -> Iterator[IO[bytes]]:
    if name == "-":
        yield sys.stdin.buffer
        return
    # A folder is a run's or a recorded serve session's (run --out, serve --record): its trace.
    with open(os.path.join(name, "trace.ndjson") if os.path.isdir(name) else name, "rb") as stream:
        yield stream


def validate_stream(validator: Validator, stream: Iterable[bytes], *, source: str, summary: Summary,
                    out: IO[str] | None, fmt: str = "text") -> Summary:
    """Check every record of ``stream``, adding to ``summary`` and printing to ``out``."""
    for line, raw in iter_lines(stream):
        try:
            record = parse_record(raw, source=source, line=line)
            violations = check_record(validator, record)
        except RecordError as error:
            summary.unreadable += 1
            print(f"chargetwin: unreadable record: {error}", file=sys.stderr)
            continue
        summary.records += 1
        if not violations:
            continue
        summary.failing_records += 1
        summary.violations += len(violations)
        for violation in violations:
            summary.by_rule[violation.rule] = summary.by_rule.get(violation.rule, 0) + 1
        if out is not None:
            _print_violations(record, violations, out, fmt)
    return summary


def _describe(record: Record) -> str:
    return describe_parts(record.channel, record.direction, record.message)


def describe_parts(channel: str, direction: str, message: Any) -> str:
    message = message if isinstance(message, dict) else {}
    kind = message.get("type") or message.get("event") or ""
    if message.get("type") and message.get("event"):
        kind = f"{message['type']}/{message['event']}"
    return " ".join(part for part in (channel, direction, str(kind)) if part)


def _print_violations(record: Record, violations: list[Violation], out: IO[str], fmt: str) -> None:
    if fmt == "json":
        for violation in violations:
            out.write(json.dumps({"source": record.source, "line": record.line, "channel": record.channel,
                                  "direction": record.direction, **violation.to_dict()},
                                 ensure_ascii=False, default=str) + "\n")
        return
    out.write(f"{record.source}:{record.line}: {_describe(record)}\n")
    for v in violations:
        where = v.pointer or "(whole message)"
        out.write(f"  {v.rule} at {where}: {v.message}\n")
        out.write(f"    expected {short(v.expected)}, got {short(v.actual)}")
        out.write(f"  [spec: {v.spec}]\n" if v.spec else "\n")


def short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_summary(summary: Summary, out: IO[str]) -> None:
    conform = summary.records - summary.failing_records
    out.write(f"checked {summary.records} records: {conform} conform, "
              f"{summary.failing_records} with violations ({summary.violations} violation"
              f"{'' if summary.violations == 1 else 's'})")
    out.write(f", {summary.unreadable} unreadable\n" if summary.unreadable else "\n")
    for rule, count in sorted(summary.by_rule.items(), key=lambda item: (-item[1], item[0])):
        out.write(f"  {count:6d}  {rule}\n")
