"""What a person (or a CI log) sees while a run goes: progress, and the first violations of each rule.

:class:`LiveDisplay` is a consumer of the pipeline. On a terminal it draws
a progress bar (rich) and prints each rule's first :data:`PER_RULE`
violations above it as they are found; where standard error is not a
terminal (a CI log) it prints the same violations and, instead of the bar,
one status line every :data:`STATUS_EVERY_S` wall seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .checks import InvariantViolation
from .pipeline import Consumer, Found

__all__ = ["PER_RULE", "STATUS_EVERY_S", "LiveDisplay", "Status"]

PER_RULE: Final = 3
"""Violations printed per rule while the run goes; the rest are counted (results.json has them)."""

STATUS_EVERY_S: Final = 10.0
"""Wall seconds between status lines where there is no terminal."""


@dataclass(frozen=True, slots=True)
class Status:
    """Where a run stands: simulated seconds done of the total, the simulated clock, and its counts."""

    done_s: float
    total_s: float
    clock: str  # the simulated time of day, e.g. "18:05"
    sessions: int
    messages: int
    violations: int
    backlog: int


class LiveDisplay(Consumer):
    """Progress and the first violations of each rule, on ``console`` (standard error).

    ``mode``: ``"bar"`` (a terminal), ``"lines"`` (a status line every
    ``every_s``) or ``"quiet"`` (violations only). ``status`` is asked for
    where the run stands on each tick. Use it as a context manager around
    the run: the bar is drawn inside it.
    """

    def __init__(self, console: Console, *, name: str, status: Callable[[], Status],
                 mode: Literal["bar", "lines", "quiet"], every_s: float = STATUS_EVERY_S,
                 per_rule: int = PER_RULE, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self._name, self._status, self._mode = name, status, mode
        self._every, self._per_rule, self._monotonic = every_s, per_rule, monotonic
        self._printed: Counter[str] = Counter()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._last_line = monotonic()

    def __enter__(self) -> LiveDisplay:
        if self._mode == "bar":
            columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[state]}"),
                       TimeElapsedColumn())
            self._progress = Progress(*columns, console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(f"running {self._name}", total=None, state="starting")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def on_violation(self, violation: InvariantViolation) -> None:
        rule = violation.rule or violation.check
        self._printed[rule] += 1
        count = self._printed[rule]
        if count > self._per_rule + 1:
            return
        if count == self._per_rule + 1:
            self.console.print(f"  [dim]... further {escape(rule)} violations are counted, not printed[/dim]",
                               highlight=False)
            return
        where = ""
        if violation.records:
            record = violation.records[0]
            where = f" [{record.hop} {record.channel}, line {record.line}, t_sim {record.t_sim:g}]"
        label = violation.check if violation.rule is None else f"{violation.check}/{violation.rule}"
        self.console.print(f"  [bold red]violation[/bold red] {escape(label)}: {escape(violation.message)}"
                           f"[dim]{escape(where)}[/dim]", highlight=False, soft_wrap=True)

    def on_tick(self, t_sim: float, t_wall: float) -> Found:
        if self._mode == "quiet":
            return None
        status = self._status()
        state = (f"simulated {status.clock}  sessions {status.sessions:,}  messages {status.messages:,}  "
                 f"violations {status.violations:,}  CMS backlog {status.backlog:,}")
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=status.total_s, completed=min(status.done_s, status.total_s),
                                  state=state)
        elif self._mode == "lines" and self._monotonic() - self._last_line >= self._every:
            self._last_line = self._monotonic()
            share = status.done_s / status.total_s if status.total_s else 0.0
            self.console.print(f"{self._name}: {share:4.0%} {state}", highlight=False, soft_wrap=True)
        return None
