"""The trace as an output of the pipeline: every record, only the violations with their context, or nothing.

``--trace full`` (:class:`FullTrace`) writes every observation as it
passes: the whole run, readable again by ``chargetwin validate`` to the same
verdict. ``--trace violations`` (:class:`ViolationsTrace`) keeps only the
records a violation cites and :data:`CONTEXT` records before and after
each, with the twin's ``twin:run`` and ``twin:end`` records; each record
keeps its number in the run (``seq``), which results.json cites as its
line. ``--trace none`` writes nothing. No mode holds the trace in memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from ._interning import ByIdentity
from .checks import InvariantViolation
from .pipeline import Consumer, Found
from .trace import TraceRecord, TraceWriter, encode_message
from .truth import RUN, TWIN_END

__all__ = ["CONTEXT", "TRACE_MODES", "FullTrace", "ViolationsTrace", "trace_output"]

TRACE_MODES: Final = ("full", "violations", "none")

CONTEXT: Final = 20
"""Records kept before and after each violation in a ``violations`` trace."""


def _encode(message: Any) -> str:
    """The message's JSON; one JSON cannot hold (NaN parsed from a frame) goes in as text, for the checks to flag."""
    try:
        return encode_message(message)
    except (TypeError, ValueError):
        return encode_message(f"not JSON: {message!r}")


class FullTrace(Consumer):
    """Writes every record to ``path`` as it passes (a fan-out's copies encoded once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = TraceWriter(path)
        self._encoded = ByIdentity(lambda message, _: _encode(message))

    def on_record(self, record: TraceRecord) -> Found:
        self._writer.write(record, message_json=self._encoded.get(record.message))
        return None

    def on_end(self, t_sim: float, t_wall: float) -> Found:
        self.close()
        return None

    def close(self) -> None:
        self._writer.close()


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


def trace_output(mode: str, path: Path) -> FullTrace | ViolationsTrace | None:
    """The consumer of ``--trace MODE`` writing to ``path`` (removed first), or None for ``none``."""
    if mode not in TRACE_MODES:
        raise ValueError(f"unknown trace mode {mode!r}; use one of {', '.join(TRACE_MODES)}")
    path.unlink(missing_ok=True)
    if mode == "full":
        return FullTrace(path)
    if mode == "violations":
        return ViolationsTrace(path)
    return None
