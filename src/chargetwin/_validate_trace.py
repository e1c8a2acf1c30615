"""``chargetwin validate`` of a run's trace: the run's pipeline, fed the trace, to the run's verdict."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import IO, Any

from ._run_cmd import print_summary
from ._validate_cmd import describe_parts, short
from .harness.checks import InvariantViolation
from .harness.exceptions import TraceError
from .harness.judge import RunEnd
from .harness.pipeline import Consumer
from .harness.replay import replay

__all__ = ["validate_trace"]


def validate_trace(lines: Iterable[bytes], *, source: str, out: IO[str] | None, fmt: str = "text") -> int:
    """Replay a run's trace through the run's checks; print its violations and verdict; the exit code."""
    try:
        replayed = replay(lines, source=source, extra=lambda header: [_TracePrinter(source, out, fmt)])
    except TraceError as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    judge = replayed.judge
    if judge.header.trace != "full":
        print(f"chargetwin: {source} keeps only some of its run's records (--trace {judge.header.trace}): the checks "
              "below judge what it holds, not the whole run", file=sys.stderr)
    end = judge.counts.end
    if end is None and replayed.header_found:
        end = RunEnd(complete=False, stopped="the trace ends before its run did (it has no twin:end record)")
    for problem in judge.counts.problems:
        print(f"chargetwin: {source}: {problem}", file=sys.stderr)
    document, _ = judge.results(versions={}, end=end)
    if not replayed.header_found:
        document["scenario"] = {"name": source}
    print_summary(document, None, report=None)
    return 0 if document["verdict"] == "pass" else 1



class _TracePrinter(Consumer):
    """Prints each violation of a replayed trace as it is found."""

    def __init__(self, source: str, out: IO[str] | None, fmt: str) -> None:
        self._source, self._out, self._fmt = source, out, fmt

    def on_violation(self, violation: InvariantViolation) -> None:
        if self._out is None:
            return
        record = violation.records[0] if violation.records else None
        line = record.line if record is not None else 0
        if self._fmt == "json":
            self._out.write(json.dumps({"source": self._source, "line": line, **_plain(violation)},
                                       ensure_ascii=False, default=str) + "\n")
            return
        where = f"{self._source}:{line}: " if line else f"{self._source}: "
        if violation.check == "schema_and_rules" and record is not None:
            described = describe_parts(record.channel, record.direction, record.message)
            self._out.write(f"{where}{record.hop} {described}\n")
            self._out.write(f"  {violation.message}\n")
            self._out.write(f"    expected {short(violation.expected)}, got {short(violation.actual)}")
            self._out.write(f"  [spec: {violation.spec}]\n" if violation.spec else "\n")
            return
        self._out.write(f"{where}{violation.check}: {violation.message}\n")


def _plain(violation: InvariantViolation) -> dict[str, Any]:
    found: dict[str, Any] = violation.to_dict()
    found.pop("records", None)
    return found
