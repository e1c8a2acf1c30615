"""When drivers arrive: a non-homogeneous Poisson process over the local clock.

The arrival rate is constant within each hour of the local day and follows
an hour-of-day profile, scaled so that a whole day brings
``arrivals_per_day * scale`` arrivals on average. Arrival times are drawn
exactly (exponential gaps, redrawn at each hour boundary; the process is
memoryless), not by thinning or stepping.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import datetime

from .config import DemandSpec

__all__ = ["PROFILE_WEIGHTS", "arrival_times", "expected_arrivals", "hourly_rates", "local_seconds"]

PROFILE_WEIGHTS: dict[str, tuple[float, ...]] = {
    # arrivals at workplaces: a morning peak when people reach work
    "workplace": (0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4.0, 5.0, 3.5, 1.8, 1.2,
                  1.2, 1.0, 0.8, 0.6, 0.4, 0.3, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1),
    # arrivals near home: an evening peak after work
    "residential": (0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.5, 0.6,
                    0.7, 0.8, 0.9, 1.2, 1.8, 2.6, 3.2, 3.0, 2.4, 1.6, 0.9, 0.5),
    # a city's public chargers: busy all day, highest in the evening
    "city": (0.25, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.1, 1.1, 1.1, 1.15,
             1.2, 1.2, 1.2, 1.35, 1.6, 1.85, 2.0, 1.9, 1.6, 1.2, 0.8, 0.45),
    "flat": (1.0,) * 24,
}
"""Relative arrival weights for each local hour 0..23 (normalised before use)."""


def hourly_rates(demand: DemandSpec) -> list[float]:
    """Arrivals per second during each local hour 0..23."""
    weights: Sequence[float] = (PROFILE_WEIGHTS[demand.profile] if isinstance(demand.profile, str)
                                else demand.profile)
    total = sum(weights)
    per_day = demand.arrivals_per_day * demand.scale
    return [per_day * w / total / 3600.0 for w in weights]


def local_seconds(start: datetime) -> float:
    """Seconds since local midnight at ``start`` (in ``start``'s own offset)."""
    return start.hour * 3600.0 + start.minute * 60.0 + start.second + start.microsecond / 1e6


def _segments(rates: Sequence[float], start: datetime, duration: float) -> Iterator[tuple[float, float, float]]:
    """(from, to, rate) over the run, cut at local hour boundaries."""
    offset, t = local_seconds(start), 0.0
    while t < duration:
        clock = (offset + t) % 86400.0
        hour = int(clock // 3600.0)
        end = min(duration, t + (hour + 1) * 3600.0 - clock)
        yield t, end, rates[hour]
        t = end


def expected_arrivals(demand: DemandSpec, start: datetime, duration: float) -> float:
    """The expected number of arrivals in a run: the integral of the rate."""
    return sum((b - a) * r for a, b, r in _segments(hourly_rates(demand), start, duration))


def arrival_times(demand: DemandSpec, start: datetime, duration: float, rng: random.Random) -> Iterator[float]:
    """Arrival times (seconds since ``start``) of one realisation of the process, in order."""
    for begin, end, rate in _segments(hourly_rates(demand), start, duration):
        if rate <= 0:
            continue
        t = begin + rng.expovariate(rate)
        while t < end:
            yield t
            t += rng.expovariate(rate)
