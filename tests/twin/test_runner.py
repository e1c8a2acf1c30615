"""The model stepped from asyncio in time with a simulated clock."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
from model_scenarios import city

from chargetwin.twin.clock import SimClock
from chargetwin.twin.model import events as ev
from chargetwin.twin.model.world import World
from chargetwin.twin.runner import ModelRunner


def test_the_model_keeps_pace_with_the_clock() -> None:
    world = World(city(hours=2.0, arrivals_per_day=20_000))
    seen: list[ev.Event] = []
    world.subscribe(seen.append)
    clock = SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=600.0)  # 10 simulated minutes per second

    async def main() -> tuple[float, float]:
        runner = ModelRunner(world, clock, tick=0.05)
        runner.start()
        await asyncio.sleep(1.0)
        await runner.stop()
        return world.env.now, clock.sim_seconds()

    reached, clock_at_stop = asyncio.run(main())
    # about 600 simulated seconds in one wall second; a loaded machine may sleep longer, never run ahead
    assert 500 < reached <= clock_at_stop
    assert seen and max(e.t for e in seen) <= reached
    assert all(a.t <= b.t for a, b in itertools.pairwise(seen))


def test_a_clock_needs_an_offset_and_a_positive_speed() -> None:
    with pytest.raises(ValueError, match="UTC offset"):
        SimClock(datetime(2025, 1, 29, 16))
    with pytest.raises(ValueError, match="speed"):
        SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=0)


def test_sim_clock_maps_wall_to_simulated_time() -> None:
    wall = [100.0]
    clock = SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=60.0, monotonic=lambda: wall[0])
    wall[0] = 160.0
    assert clock.sim_seconds() == 3600.0
    assert clock.now() == datetime(2025, 1, 29, 17, tzinfo=UTC)
    assert clock.wall_at(7200.0) == 220.0


def test_the_runner_sleeps_between_events() -> None:
    """SimPy leaves an empty event due at the end of run(until): the runner must not take it for work."""
    world = World(city(hours=2.0, arrivals_per_day=2_000))
    clock = SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=6.0)

    async def main() -> int:
        runner = ModelRunner(world, clock, tick=0.05)
        runner.start()
        await asyncio.sleep(1.0)
        await runner.stop()
        return runner.steps

    steps = asyncio.run(main())
    assert steps < 200, f"{steps} steps with work in one second: the runner spins"


def test_a_held_clock_stands_at_the_start_until_it_begins() -> None:
    wall = [100.0]
    clock = SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=60.0, monotonic=lambda: wall[0], held=True)
    wall[0] = 130.0
    assert clock.sim_seconds() == 0.0 and clock.now() == datetime(2025, 1, 29, 16, tzinfo=UTC)
    clock.begin()
    wall[0] = 131.0
    assert clock.sim_seconds() == 60.0


def test_a_paused_clock_stands_still_and_goes_on_from_there() -> None:
    wall = [100.0]
    clock = SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=10.0, monotonic=lambda: wall[0])
    wall[0] = 101.0
    assert clock.sim_seconds() == 10.0
    clock.pause()
    wall[0] = 105.0
    assert clock.sim_seconds() == 10.0 and clock.paused
    clock.set_speed(20.0)  # a new speed while paused: still no jump
    assert clock.sim_seconds() == 10.0
    clock.resume()
    wall[0] = 106.0
    assert clock.sim_seconds() == 30.0 and not clock.paused


def test_a_new_speed_goes_on_from_the_simulated_now() -> None:
    wall = [0.0]
    clock = SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=60.0, monotonic=lambda: wall[0])
    wall[0] = 2.0
    clock.set_speed(600.0)
    assert clock.sim_seconds() == pytest.approx(120.0)
    wall[0] = 3.0
    assert clock.sim_seconds() == pytest.approx(720.0)
    with pytest.raises(ValueError, match="speed"):
        clock.set_speed(0)


def test_the_runner_holds_simulated_time_while_the_services_are_behind() -> None:
    world = World(city(hours=2.0, arrivals_per_day=20_000))
    clock = SimClock(datetime(2025, 1, 29, 16, tzinfo=UTC), speed=600.0)
    behind = [True]

    async def main() -> tuple[float, float]:
        runner = ModelRunner(world, clock, tick=0.05, hold=lambda: behind[0])
        runner.start()
        await asyncio.sleep(0.5)
        held_at = world.env.now
        behind[0] = False
        await asyncio.sleep(0.5)
        await runner.stop()
        assert runner.held_s >= 0.4
        return held_at, world.env.now

    held_at, reached = asyncio.run(main())
    assert held_at == 0.0  # nothing ran while the services were behind
    assert 200 < reached <= 350  # then about 600 simulated seconds a wall second, from where time stood
