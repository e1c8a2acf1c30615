"""The trace as an output of the pipeline: every record, only the violations with their context, or nothing.

``--trace full`` writes every observation as it passes (the run's worker
copies its input's record lines: :mod:`.worker`): the whole run, readable
again by ``chargetwin validate`` to the same verdict. ``--trace
violations`` (:class:`ViolationsTrace`, a consumer of the pipeline) keeps
only the records a violation cites and :data:`CONTEXT` records before and
after each, with the twin's ``twin:run`` and ``twin:end`` records; each
record keeps its number in the run (``seq``), which results.json cites as
its line. ``--trace none`` writes nothing. No mode holds the trace in
memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from .checks import InvariantViolation
from .pipeline import Consumer, Found
from .trace import TRACE_MODES, TraceRecord, TraceWriter
from .truth import RUN, TWIN_END

__all__ = ["CONTEXT", "TRACE_MODES", "ViolationsTrace"]

CONTEXT: Final = 20
"""Records kept before and after each violation in a ``violations`` trace."""


class ViolationsTrace(Consumer):
    """Writes the records each violation cites and :data:`CONTEXT` records around it, each with its ``seq``."""

    def __init__(self, path: Path, *, context: int = CONTEXT) -> None:
        self.path = path
        self._writer = TraceWriter(path)
        self._before: deque[TraceRecord] = deque(maxlen=context)
        self._context = context
        self._after = 0
        self._written: deque[int] = deque(maxlen=4 * context + 64)  # seqs written lately: not twice

    def on_record(self, record: TraceRecord) -> Found:
        if record.hop == "twin" and record.channel in (RUN, TWIN_END):
            self._write(record)
        elif self._after > 0:
            self._after -= 1
            self._write(record)
        else:
            self._before.append(record)
        return None

    def on_violation(self, violation: InvariantViolation) -> None:
        cited = sorted((r for r in violation.records if r.line), key=lambda r: r.line)
        for record in self._sorted(cited, self._before):
            self._write(record)
        self._before.clear()
        self._after = self._context

    @staticmethod
    def _sorted(cited: Iterable[TraceRecord], before: Iterable[TraceRecord]) -> list[TraceRecord]:
        merged = {r.line: r for r in (*cited, *before)}
        return [merged[line] for line in sorted(merged)]

    def _write(self, record: TraceRecord) -> None:
        if record.line and (record.line in self._written):
            return
        self._writer.write(record, seq=True)
        self._written.append(record.line)

    def on_end(self, t_sim: float, t_wall: float) -> Found:
        self.close()
        return None

    def close(self) -> None:
        self._writer.close()
