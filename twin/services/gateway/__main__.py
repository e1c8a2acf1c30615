"""``python -m chargetwin.twin.services.gateway``: the gateway alone, configured from the environment.

``REDIS_URL`` is required; ``CHARGETWIN_GATEWAY_PORT``, ``CHARGETWIN_JWT_SECRET``
and the other ``CHARGETWIN_*`` variables of :meth:`Settings.from_env` apply.
Timestamps come from the wall clock. Stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from chargetwin.twin.clock import WallClock
from chargetwin.twin.services.settings import Settings

from .exceptions import GatewayStartError
from .server import Gateway


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Gateway(settings=Settings.from_env(), clock=WallClock()) as gateway:
        print(f"chargetwin gateway on {gateway.url}/?token=JWT (Ctrl-C to stop)", flush=True)
        await stop.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(main())
    except (GatewayStartError, ValueError) as exc:
        sys.exit(f"chargetwin gateway: {exc}")
