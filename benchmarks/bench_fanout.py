"""The fan-out path of a charger update: Redis -> gateway -> every connected app, by event loop and Redis parser.

A benchmark, not a test: it reports figures and asserts nothing. Run it with
``nox -s bench`` (or ``python benchmarks/bench_fanout.py``). At the evening
peak most of the stack's messages are charger updates published once per
connected user and pushed to every socket (DESIGN ruling 1). Here a private
Redis, the reference gateway and N app sockets (websockets clients that
parse each frame, as the simulated apps do) run in one process, as in
``chargetwin run``; M charger updates are published to every user's
``charger_updates`` channel and the clock stops when every socket has them
all. Each variant runs in a fresh process (its own loop and imports), the
variants alternate, and the median deliveries per second is reported:
redis-py's Python parser or hiredis (a dependency since this measured it
about 30 % faster). uvloop was measured too (2026-11, 200 sockets): no gain
beyond the noise, so it is not a dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from _variants import measure, report  # benchmarks/ is the script's folder

VARIANTS = {"redis-py's Python parser": False, "hiredis": True}

SECRET = "chargetwin-benchmark-secret-of-32-bytes"


async def _fan_out(users: int, messages: int) -> float:
    """Deliveries per second of ``messages`` updates to ``users`` sockets (one process, like a run)."""
    import redis.asyncio as aioredis
    from websockets.asyncio.client import connect

    from chargetwin.harness._interning import Interner
    from chargetwin.twin.clock import WallClock
    from chargetwin.twin.services.auth import issue_token
    from chargetwin.twin.services.gateway.server import Gateway
    from chargetwin.twin.services.redis_server import redis_for
    from chargetwin.twin.services.settings import Settings

    with redis_for(None) as server:
        settings = replace(Settings(), redis_url=server.url, host="127.0.0.1", gateway_port=0,
                           jwt_secret=SECRET, gateway_max_connections=users + 10)
        gateway = Gateway(settings=settings, clock=WallClock())
        await gateway.start()
        interner, received = Interner(), [0] * users
        welcome = 3  # connected, charger_list_update, active_session_update

        async def app(index: int) -> None:
            token = issue_token(index + 1, secret=SECRET, ttl_s=3600, now=datetime.now(UTC))
            async with connect(f"ws://127.0.0.1:{gateway.port}/?token={token}", compression=None,
                               max_size=None) as socket:
                async for frame in socket:
                    interner.parse(frame)
                    received[index] += 1
                    if received[index] == welcome + messages:
                        return

        tasks = [asyncio.create_task(app(i)) for i in range(users)]
        while min(received) < welcome:
            await asyncio.sleep(0.01)
        client = aioredis.from_url(server.url)
        start = time.perf_counter()
        for n in range(messages):
            text = json.dumps({"type": "charger_status_update", "station_id": "STATION001", "charger_id": "CP001",
                               "status": "available", "n": n, "data": {"display": "3/4"}})
            async with client.pipeline(transaction=False) as pipe:
                for user in range(1, users + 1):
                    pipe.publish(f"user:{user}:charger_updates", text)
                await pipe.execute()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        await client.aclose()
        await gateway.stop()
    return users * messages / elapsed


def _child(variant: str, users: int, messages: int) -> None:
    if not VARIANTS[variant]:
        sys.modules["hiredis"] = None  # type: ignore[assignment]  # redis-py then uses its Python parser
    print(json.dumps(asyncio.run(_fan_out(users, messages))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="connected app sockets (default 200)")
    parser.add_argument("--messages", type=int, default=200, help="updates per user (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.users, args.messages)
        return 0
    figures = measure(__file__, VARIANTS, rounds=args.rounds,
                      args=["--users", str(args.users), "--messages", str(args.messages)])
    report(f"fan-out: {args.messages} charger updates to each of {args.users} sockets through Redis and the "
           f"gateway, median of {args.rounds}", "Redis parser", figures, unit="deliveries/s", out=args.out,
           context={"users": args.users, "messages": args.messages})
    return 0


if __name__ == "__main__":
    sys.exit(main())
