"""The harness's worker: a run's pipeline in a process of its own, fed the stream on standard input.

``chargetwin run`` starts this module (``python -m chargetwin.harness.worker``)
beside the stack and writes every record the taps make to its standard input,
as trace lines, in order, with a few control lines between them; the checks,
coverage, latency, throughput, the trace and the live display run here, on
another core, so that neither their work nor their memory's collection
holds up the loop that carries the services. It is ``chargetwin validate``
reading a trace as it is written.

Input, one JSON object per line:

- a trace record (``trace_format``): the first must be the run's ``twin:run``;
- ``{"tick": [t_sim, t_wall]}``: time passed (the pipeline's ``tick``);
- ``{"status": {...}}``: where the run stands, for the live display
  (:class:`~.live.Status`'s fields but ``violations``).

At the end of input (the run closed it, or died) it ends the pipeline and
writes ``results.json`` and ``junit.xml`` into ``--out``: a stream without
its ``twin:end`` record is a run that stopped early. SIGINT is ignored: the
run decides when to stop, and a second Ctrl-C that kills the run still
leaves its results.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any, Literal, cast

from rich.console import Console

from ._interning import Interner
from .exceptions import TraceError
from .judge import Judge, RunEnd, RunHeader
from .live import LiveDisplay, Status
from .results import write_results
from .trace import TraceRecord, parse_trace_line, read_written_line
from .trace_output import ViolationsTrace
from .versions import versions

__all__ = ["main", "work"]

_RECORD = b'{"trace_format"'


def work(lines: Iterable[bytes], *, out: Path, trace: str, console: Console | None,
         progress: Literal["bar", "lines", "quiet"] = "quiet") -> dict[str, Any]:
    """Run the pipeline over ``lines`` (see the module's docstring); write and return the results document."""
    stream = _Stream(lines)
    first = next(stream, None)
    if first is None:
        raise TraceError("the run sent no record", source="<run>")
    header = _header(first[0])
    out.mkdir(parents=True, exist_ok=True)
    (out / "trace.ndjson").unlink(missing_ok=True)  # an earlier run's trace must not pass for this one's
    judge = Judge(header, extra=[None if trace != "violations" else ViolationsTrace(out / "trace.ndjson")])
    stream.judge = judge
    live = None if console is None else LiveDisplay(
        console, name=str(header.scenario.get("name", "run")), mode=progress,
        status=lambda: _status(stream.status, header, judge))
    if live is not None:
        judge.pipeline.subscribe(live)
    with (out / "trace.ndjson").open("wb", buffering=1 << 20) if trace == "full" else nullcontext() as copy, \
            live if live is not None else nullcontext():
        for record, raw in chain((first,), stream):
            if copy is not None:  # the whole trace is the input's records, as they came
                copy.write(raw)
            judge.pipeline.emit(record)
    judge.pipeline.end()
    end = judge.counts.end or RunEnd(complete=False, stopped="the run ended without telling how (it was killed?)")
    end = replace(end, metrics={**end.metrics, "harness_peak_rss_mb": _peak_rss_mb()})
    document, thresholds = judge.results(versions=versions(), end=end)
    write_results(out, document, judge.checks.results(), thresholds)
    return document


class _Stream:
    """The records of the input with their lines, numbered in the run; control lines are acted on in passing."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self._messages = Interner(strict=True)
        self.seq = 0
        self.status: dict[str, Any] = {}
        self.judge: Judge | None = None

    def __iter__(self) -> Iterator[tuple[TraceRecord, bytes]]:
        return self

    def __next__(self) -> tuple[TraceRecord, bytes]:
        for raw in self._lines:
            if not raw.startswith(_RECORD):
                self._control(raw)
                continue
            self.seq += 1
            record = read_written_line(raw, self._messages, source="<run>", line=self.seq) or parse_trace_line(
                raw, source="<run>", line=self.seq)
            return record, raw
        raise StopIteration

    def _control(self, raw: bytes) -> None:
        line = json.loads(raw)
        if "status" in line:
            self.status.update(line["status"])
        if "tick" in line and self.judge is not None:
            t_sim, t_wall = line["tick"]
            self.judge.pipeline.tick(float(t_sim), float(t_wall))


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _header(first: TraceRecord) -> RunHeader:
    if first.hop != "twin" or first.channel != "twin:run":
        raise TraceError("the run's first record must be its twin:run header", source="<run>")
    return RunHeader.from_message(first.message)


def _status(status: dict[str, Any], header: RunHeader, judge: Judge | None) -> Status:
    total = header.scenario.get("duration_s")
    return Status(done_s=float(status.get("done_s", 0.0)), total_s=float(total) if total else 0.0,
                  clock=str(status.get("clock", "--:--")), sessions=int(status.get("sessions", 0)),
                  messages=judge.pipeline.observations if judge else 0,
                  violations=judge.pipeline.violations if judge else 0, backlog=int(status.get("backlog", 0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chargetwin.harness.worker",
                                     description="The pipeline of a chargetwin run, fed on standard input.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trace", choices=("full", "violations", "none"), default="full")
    parser.add_argument("--progress", choices=("bar", "lines", "quiet", "off"), default="off")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    console = None if args.progress == "off" else Console(stderr=True, force_terminal=args.progress == "bar" or None)
    mode = cast(Literal["bar", "lines", "quiet"], "quiet" if args.progress == "off" else args.progress)
    try:
        work(sys.stdin.buffer, out=args.out, trace=args.trace, console=console, progress=mode)
    except (TraceError, ValueError, OSError) as error:
        print(f"chargetwin: the harness could not judge the run: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
