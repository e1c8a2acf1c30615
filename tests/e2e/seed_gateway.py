"""A gateway written only from the seed's words, for the test that ``check`` passes it with warnings at most.

Not chargetwin's gateway: what a team would write from the protocol
document alone. On a connection it reads the JWT from ``?token=`` (HS256,
the secret in CHARGETWIN_JWT_SECRET); without one it closes 1008
"Authentication required", with a bad one 1008 "Invalid authentication
token" (seed, Error Handling). Otherwise it sends ``connected`` (seed 4.1)
and forwards every message published on the user's channels
``user:{userId}:*`` (seed 3), and nothing else: no charger list, no
active session on connect, no answer to what the app sends.

Run: ``python seed_gateway.py PORT REDIS_URL``; prints "listening" when ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import jwt
import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, serve


async def handle(connection: ServerConnection, redis_url: str, secret: str) -> None:
    assert connection.request is not None
    token = (parse_qs(urlsplit(connection.request.path).query).get("token") or [""])[0]
    if not token:
        await connection.close(1008, "Authentication required")
        return
    try:
        user_id = int(jwt.decode(token, secret, algorithms=["HS256"])["sub"])
    except (jwt.PyJWTError, KeyError, ValueError):
        await connection.close(1008, "Invalid authentication token")
        return
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await connection.send(json.dumps({"type": "connected", "timestamp": now, "userId": user_id}))
    client = aioredis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"user:{user_id}:*")

    async def forward() -> None:
        async for item in pubsub.listen():
            if item["type"] == "pmessage":
                await connection.send(item["data"].decode())

    forwarding = asyncio.create_task(forward())
    try:
        async for _ in connection:  # the app must not send anything: ignore it
            pass
    finally:
        forwarding.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await forwarding
        await pubsub.aclose()
        await client.aclose()


async def main(port: int, redis_url: str) -> None:
    secret = os.environ["CHARGETWIN_JWT_SECRET"]
    async with serve(lambda c: handle(c, redis_url, secret), "127.0.0.1", port):
        print("listening", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
