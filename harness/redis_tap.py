"""The Redis tap: every message published on the users' channels, as a subscriber sees it.

Used by ``run`` (the stack's Redis) and ``check --redis`` (a target's):
nothing but a pattern subscription, so it works on any Redis the backend
publishes to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

__all__ = ["USER_CHANNELS", "tap_redis"]

USER_CHANNELS = "user:*"
"""The pattern of the users' channels (``user:{userId}:notifications|session_updates|charger_updates``)."""


async def tap_redis(url: str, record: Callable[[str, Any], None], ready: asyncio.Event, *,
                    parse: Callable[[bytes], Any]) -> None:
    """Subscribe to :data:`USER_CHANNELS` on ``url``; ``record("redis:{channel}", parse(payload))`` for each message.

    ``ready`` is set once the subscription holds. Runs until cancelled; a
    Redis error is raised to the caller.
    """
    client = aioredis.from_url(url)
    pubsub = client.pubsub()
    try:
        await pubsub.psubscribe(USER_CHANNELS)
        ready.set()
        async for item in pubsub.listen():
            if item["type"] == "pmessage":
                record(f"redis:{item['channel'].decode()}", parse(item["data"]))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis 8
        await client.aclose()
