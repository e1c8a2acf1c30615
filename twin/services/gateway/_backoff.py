"""Reconnection delays: exponential with jitter, capped (no I/O, the random generator injected)."""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["reconnect_delays"]


def reconnect_delays(*, initial: float = 0.05, maximum: float = 2.0, factor: float = 2.0,
                     rng: random.Random) -> Iterator[float]:
    """Endless delays: the n-th is drawn in [d/2, d] with d = min(maximum, initial * factor**n).

    The jitter keeps several gateway processes from hammering a Redis that
    comes back all at the same instant.
    """
    if not 0 < initial <= maximum or factor < 1:
        raise ValueError("need 0 < initial <= maximum and factor >= 1")
    delay = initial
    while True:
        yield rng.uniform(delay / 2, delay)
        delay = min(maximum, delay * factor)
