"""A trace read back into the pipeline: ``chargetwin validate`` reaches the verdict of the run that wrote it.

:func:`replay` reads the records of a trace (file or stream) in order and
emits them into a :class:`~.judge.Judge`, made from the trace's
``twin:run`` record when its first record is one (a trace of ``chargetwin
run``: the checks' parameters, thresholds and tariffs of that run), else
with the defaults. The cross-message checks run as they did live; those
that need the model's truth judge what the trace's ``twin`` records give
them (a capture of someone else's traffic has none: they judge nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

from .exceptions import TraceError
from .judge import Judge, RunHeader
from .pipeline import Consumer
from .trace import TraceRecord, read_trace_lines
from .truth import RUN

__all__ = ["NothingToValidate", "Replay", "replay"]


class NothingToValidate(TraceError):
    """The trace holds no record at all."""


@dataclass(slots=True)
class Replay:
    """A trace replayed: its judge (the pipeline's consumers, ended), and whether it carried its run's header."""

    judge: Judge
    header_found: bool
    records: int


def replay(stream: Iterable[bytes], *, source: str,
           extra: Callable[[RunHeader], Sequence[Consumer | None]] = lambda header: ()) -> Replay:
    """Emit every record of ``stream`` into a new :class:`Judge` and end its pipeline.

    ``extra(header)`` makes the consumers to add (a printer of violations,
    say). Raises :class:`~.exceptions.TraceError` at the first unreadable
    line (naming the file and line), :class:`NothingToValidate` when there
    is no record.
    """
    records = read_trace_lines(stream, source=source)
    first = next(records, None)
    if first is None:
        raise NothingToValidate("nothing to validate: no record in the input", source=source)
    header, found = _header(first, source)
    judge = Judge(header, extra=extra(header))
    for record in chain((first,), records):
        judge.pipeline.emit(record)
    judge.pipeline.end()
    return Replay(judge, found, judge.pipeline.observations)


def _header(first: TraceRecord, source: str) -> tuple[RunHeader, bool]:
    if first.hop != "twin" or first.channel != RUN:
        return RunHeader(scenario={"name": source}), False
    try:
        return RunHeader.from_message(first.message), True
    except ValueError as error:
        raise TraceError(str(error), source=source, line=first.line) from None
