"""Redis side of the backend: publish the logic's :class:`~.logic.Effects` and write its keys.

One pipeline per batch of steps (no MULTI): for each step in order, the
messages for the users, the charger messages fanned out to every connected
user (DESIGN ruling 1; the users are the hash ``chargetwin:connected_users``
the gateway keeps), then the keys. Each message is encoded once, however
many users get it. At start, :meth:`Publisher.register_users` writes the set
of user ids the gateway checks tokens against (``chargetwin:users``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis

from ..faults import BACKEND_FAULTS, BackendFault
from .logic import CONNECTED_USERS_KEY, Effects, fan_out

__all__ = ["USERS_KEY", "Publisher", "encode"]

USERS_KEY = "chargetwin:users"
"""A set of the backend's user ids, for the gateway to refuse a valid token of a user that does not exist."""


def encode(message: Any) -> str:
    """The JSON text of a message (no NaN or infinity: they are not JSON)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Publisher:
    """Applies effects to one ``redis.asyncio.Redis`` (owned by the caller)."""

    def __init__(self, redis: aioredis.Redis, *, fault: str | None = None) -> None:
        self._redis = redis
        self._fault = BackendFault(fault) if fault in BACKEND_FAULTS else None

    async def connected_users(self) -> list[int]:
        """Ids of the users with at least one open socket on some gateway."""
        entries = await self._redis.hgetall(CONNECTED_USERS_KEY)
        users = []
        for key, count in entries.items():
            user, sockets = _text(key), _text(count)
            if user.isdigit() and sockets.lstrip("-").isdigit() and int(sockets) > 0:
                users.append(int(user))
        return users

    async def register_users(self, user_ids: Iterable[int]) -> None:
        """Replace ``chargetwin:users`` with ``user_ids``, atomically (MULTI): a gateway never sees it half written."""
        members = [str(user_id) for user_id in user_ids]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(USERS_KEY)
            if members:
                pipe.sadd(USERS_KEY, *members)
            await pipe.execute()

    async def apply(self, effects: Effects) -> int:
        """Publish and write what ``effects`` says; the number of messages published."""
        return await self.apply_all([effects])

    async def apply_all(self, batch: Sequence[Effects]) -> int:
        """:meth:`apply` for several steps' effects in order, in one pipeline (one round trip); the count."""
        connected = await self.connected_users() if any(e.broadcast for e in batch) or self._fault else []
        encoded: dict[int, str] = {}
        published = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for effects in batch:
                deliveries = list(effects.publish) + fan_out(effects.broadcast, connected)
                if self._fault is not None:  # tests only: break one rule on purpose (faults.py)
                    deliveries = self._fault.apply(deliveries, connected)
                for channel, message in deliveries:
                    text = encoded.get(id(message))
                    if text is None:
                        text = encoded[id(message)] = encode(message)
                    pipe.publish(channel, text)
                for key, value in effects.keys.items():
                    if value is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, value)
                published += len(deliveries)
            if len(pipe):
                await pipe.execute()
        return published
