"""Step the world model from asyncio, in time with the twin's clock.

One thread, one loop (DESIGN.md, "Time"): :class:`ModelRunner` runs the
SimPy environment up to the clock's simulated now, then sleeps until the
wall time of the next model event (or a short tick, so that commands from
the services are picked up promptly). Work done on the model's behalf by
the services (an OCPP call, a REST call) comes back through the world's
commands between steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable

from simpy import Environment

from .clock import SimClock
from .model.world import World

__all__ = ["ModelRunner"]


def _drain_now(env: Environment) -> None:
    """Process the events due at ``env.now``, so that ``env.peek()`` is the next one still to come.

    SimPy 4.1 stops ``run(until=t)`` by leaving an empty event due at ``t``:
    left in the queue it looks due at once, and a runner that sleeps until
    the next due event would wake again at once, forever (it did: 150,000
    steps a second, a core busy doing nothing). Events that commands
    scheduled at ``now`` between steps are due now too.
    """
    while env.peek() <= env.now:
        env.step()


class ModelRunner:
    """Keeps ``world`` at ``clock``'s simulated time until :meth:`stop` (or cancellation).

    For each step with work, ``on_lag`` (when given) is told how far (in
    wall seconds) the step started behind the moment its first event was
    due: a run whose lag grows has saturated. ``steps`` counts those steps
    and ``max_lag`` is the largest lag; nothing grows with the run.
    """

    def __init__(self, world: World, clock: SimClock, *, tick: float = 0.2,
                 on_lag: Callable[[float], None] | None = None, hold: Callable[[], bool] | None = None) -> None:
        self.world = world
        self.clock = clock
        self.tick = tick
        self.on_lag = on_lag
        self.hold = hold
        self.steps = 0
        self.max_lag = 0.0
        self.held_s = 0.0
        """Wall seconds simulated time stood still because ``hold`` said the services were behind."""
        self._task: asyncio.Task[None] | None = None

    @property
    def failure(self) -> BaseException | None:
        """The exception that ended the stepping task, if it died (a bug in the model)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def start(self) -> None:
        """Start stepping in the running loop; the model catches up with the clock at once."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="chargetwin-model")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _held(self) -> bool:
        """Backpressure: simulated time waits while ``hold`` says the services have not carried what it made."""
        assert self.hold is not None
        if self.hold():
            self.clock.pause()
            return True
        self.clock.resume()
        return False

    def step(self) -> None:
        """Run the model up to the clock's now (a no-op if it is there already)."""
        env = self.world.env
        _drain_now(env)
        target = self.clock.sim_seconds()
        due = env.peek()
        if due <= target:
            lag = max(0.0, time.monotonic() - self.clock.wall_at(due))
            self.steps += 1
            self.max_lag = max(self.max_lag, lag)
            if self.on_lag is not None:
                self.on_lag(lag)
        if target > env.now:
            env.run(until=target)
            _drain_now(env)

    async def _run(self) -> None:
        env = self.world.env
        while True:
            if self.hold is not None and self._held():
                await asyncio.sleep(self.tick)
                self.held_s += self.tick
                continue
            self.step()
            due = env.peek()
            wait = self.tick if math.isinf(due) else self.clock.wall_at(due) - time.monotonic()
            await asyncio.sleep(min(max(wait, 0.0), self.tick))
