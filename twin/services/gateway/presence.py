"""Who is connected to this gateway process, and what Redis has not heard yet; no I/O.

The backend fans charger updates out to the users in the Redis hash
``chargetwin:connected_users`` (userId -> number of sockets, over all gateway
processes; ``docs/stack.md``, DESIGN ruling 1). Each process adds +1 when a
socket opens and -1 when it closes, and the entry goes at 0.

:class:`PresenceLedger` keeps this process's counts and the changes not yet
written. The adapter takes the changes, writes them, and gives them back
when Redis is unreachable, so a close during an outage is written once Redis
is back. When Redis came back empty (a restarted server: the twin's Redis
keeps nothing on disk), :meth:`PresenceLedger.reregister` makes the pending
changes this process's whole counts again.
"""

from __future__ import annotations

__all__ = ["PresenceLedger"]


class PresenceLedger:
    """Per-user socket counts of this process, and the deltas Redis still has to get."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._pending: dict[int, int] = {}

    @property
    def counts(self) -> dict[int, int]:
        """User id -> open sockets in this process (a copy)."""
        return dict(self._counts)

    def opened(self, user_id: int) -> None:
        self._counts[user_id] = self._counts.get(user_id, 0) + 1
        self._change(user_id, +1)

    def closed(self, user_id: int) -> None:
        left = self._counts.get(user_id, 0) - 1
        if left < 0:
            raise ValueError(f"user {user_id} has no open socket to close")
        if left:
            self._counts[user_id] = left
        else:
            del self._counts[user_id]
        self._change(user_id, -1)

    def take(self) -> dict[int, int]:
        """The deltas to write now (never zero); they are no longer pending."""
        taken, self._pending = self._pending, {}
        return taken

    def give_back(self, deltas: dict[int, int]) -> None:
        """Deltas that could not be written: pending again, merged with those made since."""
        for user_id, delta in deltas.items():
            self._change(user_id, delta)

    def reregister(self) -> None:
        """Redis lost the hash: what is pending becomes this process's whole counts."""
        self._pending = dict(self._counts)

    @property
    def pending(self) -> dict[int, int]:
        return dict(self._pending)

    def _change(self, user_id: int, delta: int) -> None:
        total = self._pending.get(user_id, 0) + delta
        if total:
            self._pending[user_id] = total
        else:
            self._pending.pop(user_id, None)
