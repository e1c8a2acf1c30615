"""The twin's clock: simulated time mapped to wall time at a speed.

Services take their timestamps and durations from a :class:`Clock`, so that a
two-hour session run at 60x reads "2hr 0min" after two wall minutes
(DESIGN.md, "Time"). Liveness timers that protect real sockets (WebSocket
ping/pong, HTTP timeouts) stay in wall time and do not use this clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "SimClock", "WallClock"]


class Clock(Protocol):
    """Anything that tells the twin's current time (timezone-aware)."""

    def now(self) -> datetime: ...


class WallClock:
    """The real time, in UTC: what services use when they run on their own."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimClock:
    """Simulated time: ``start`` plus ``speed`` x the wall seconds since :meth:`begin` (or creation).

    ``sim_seconds()`` is the model's time (seconds since the scenario's
    start). ``monotonic`` is injectable for tests.
    """

    def __init__(self, start: datetime, *, speed: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic, held: bool = False) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated start time needs a UTC offset")
        if speed <= 0:
            raise ValueError("speed must be above 0")
        self.start = start
        self.speed = speed
        self._monotonic = monotonic
        self._wall0 = monotonic()
        self._held = held
        self._paused_at: float | None = None

    def begin(self) -> None:
        """Start counting from now (sim time 0 is this wall instant); a held clock starts moving."""
        self._wall0 = self._monotonic()
        self._held = False

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        """Stop simulated time where it stands (until :meth:`resume`); a no-op if paused or held."""
        if self._paused_at is None and not self._held:
            self._paused_at = self.sim_seconds()

    def resume(self) -> None:
        """Let simulated time go on from where :meth:`pause` stopped it."""
        if self._paused_at is not None:
            self._wall0 = self._monotonic() - self._paused_at / self.speed
            self._paused_at = None

    def set_speed(self, speed: float) -> None:
        """Run at ``speed`` from now on; simulated time goes on from where it stands (no jump)."""
        if speed <= 0:
            raise ValueError("speed must be above 0")
        if not self._held and self._paused_at is None:
            self._wall0 = self._monotonic() - self.sim_seconds() / speed
        self.speed = speed

    def sim_seconds(self) -> float:
        if self._held:  # ``held=True``: the clock stands at the start until begin()
            return 0.0
        if self._paused_at is not None:
            return self._paused_at
        return (self._monotonic() - self._wall0) * self.speed

    def wall_at(self, sim_seconds: float) -> float:
        """The monotonic wall time at which simulated ``sim_seconds`` is due."""
        return self._wall0 + sim_seconds / self.speed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.sim_seconds())

    def at(self, sim_seconds: float) -> datetime:
        """The simulated date-time of ``sim_seconds`` into the run."""
        return self.start + timedelta(seconds=sim_seconds)
