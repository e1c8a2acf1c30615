"""Private: a map that forgets what was not touched for a while (in simulated and in wall time).

The online checks remember per session, per stream or per message only as
long as a late message could still need it: :class:`Recent` drops an entry
once both ``window_s`` simulated and ``window_wall_s`` wall seconds passed
since it was last touched, so its size follows what is live, not how long
the run is.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from ._base import Agenda

__all__ = ["Recent"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class Recent(Generic[_K, _V]):
    """``key -> value``, each entry forgotten ``window_s`` / ``window_wall_s`` after its last :meth:`touch`.

    ``keep(value)``, when given, holds an entry past its window while it
    returns True (a session still open, say). Call :meth:`expire` as time
    passes.
    """

    def __init__(self, window_s: float, window_wall_s: float, *, keep: Callable[[_V], bool] | None = None) -> None:
        self._window = window_s
        self._window_wall = window_wall_s
        self._keep = keep
        # values apart from the times: a tuple of two floats is no work for the garbage collector
        self._values: dict[_K, _V] = {}
        self._touched: dict[_K, tuple[float, float]] = {}
        self._agenda: Agenda[_K] = Agenda()

    def get(self, key: _K) -> _V | None:
        return self._values.get(key)

    def __contains__(self, key: _K) -> bool:
        return key in self._values

    def touch(self, key: _K, value: _V, t_sim: float, t_wall: float) -> None:
        """Set ``key`` to ``value``, remembered from now on for the window."""
        if key not in self._values:
            self._agenda.add(t_sim + self._window, key, t_wall=t_wall + self._window_wall)
        self._values[key] = value
        self._touched[key] = (t_sim, t_wall)

    def pop(self, key: _K) -> _V | None:
        self._touched.pop(key, None)
        return self._values.pop(key, None)

    def expire(self, t_sim: float, t_wall: float) -> Iterator[tuple[_K, _V]]:
        """Forget (and yield) every entry whose window has passed; those touched since are rescheduled."""
        for key in list(self._agenda.due(t_sim, t_wall)):
            if key not in self._values:
                continue
            value = self._values[key]
            last_sim, last_wall = self._touched[key]
            due_sim, due_wall = last_sim + self._window, last_wall + self._window_wall
            if due_sim > t_sim or due_wall > t_wall or (self._keep is not None and self._keep(value)):
                self._agenda.add(max(due_sim, t_sim + (self._window if due_sim <= t_sim else 0.0)), key,
                                 t_wall=max(due_wall, t_wall))
                continue
            del self._values[key], self._touched[key]
            yield key, value

    def forget(self, t_sim: float, t_wall: float) -> None:
        """:meth:`expire`, for callers that need nothing of what is forgotten."""
        for _ in self.expire(t_sim, t_wall):
            pass

    def values(self) -> Iterator[_V]:
        return iter(self._values.values())

    def items(self) -> Iterator[tuple[_K, _V]]:
        return iter(self._values.items())

    def __len__(self) -> int:
        return len(self._values)
