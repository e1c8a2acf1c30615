"""``chargetwin serve``: the twin for mobile teams: the whole stack with a living fleet, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console

from ._service_options import DEFAULT_PORTS, RESERVED_USERS, add_listen_options, settings_from, user_lines
from .twin.model.config import Scenario
from .twin.scenario import ScenarioError, load_scenario
from .twin.services.settings import Settings

__all__ = ["add_serve_parser", "serve_scenario"]

SERVE_HORIZON = timedelta(days=365)
"""How long a served world keeps its demand going (it runs until Ctrl-C anyway)."""


def add_serve_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the twin for app developers: backend, gateway, CMS, charge points, Redis and a living fleet",
        description="Start Redis (unless REDIS_URL is set), the CMS stub with its OCPP central system, the "
                    "backend, the WebSocket gateway and one simulated OCPP charge point per charging point of "
                    "the scenario's network, and let the scenario's drivers charge in simulated time. Prints the "
                    "URLs and test users with tokens, and runs until Ctrl-C.",
        epilog="Ports and secrets also come from CHARGETWIN_* environment variables (e.g. "
               "CHARGETWIN_BACKEND_PORT, CHARGETWIN_JWT_SECRET). Exit codes: 0 stopped, 2 bad input or a "
               "service could not start.",
    )
    parser.add_argument("scenario", nargs="?", default="smoke", metavar="SCENARIO",
                        help="scenario file or bundled name (default: smoke)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per wall second (default 1: real time)")
    parser.add_argument("--start", choices=("now", "scenario"), default="now",
                        help="simulated clock starts at the current time (default) or at the scenario's start")
    add_listen_options(parser, list(DEFAULT_PORTS), database=True)
    parser.add_argument("--show-users", type=int, default=5, metavar="N", help="test users to print (default 5)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
        settings = settings_from(args)
    except (ScenarioError, ValueError) as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    if args.speed <= 0:
        print("chargetwin: --speed must be above 0", file=sys.stderr)
        return 2
    start = datetime.now(scenario.run.start.tzinfo) if args.start == "now" else scenario.run.start
    scenario = replace(scenario, run=replace(scenario.run, start=start.replace(microsecond=0),
                                             duration=SERVE_HORIZON.total_seconds()))
    try:
        return asyncio.run(serve_scenario(scenario, settings=settings, speed=args.speed,
                                          show_users=args.show_users))
    except KeyboardInterrupt:
        return 0


async def serve_scenario(scenario: Scenario, *, settings: Settings, speed: float, show_users: int = 5,
                         stop: asyncio.Event | None = None, console: Console | None = None) -> int:
    """Run the stack until ``stop`` is set (or SIGINT/SIGTERM); the exit code."""
    from .twin.stack import Stack  # the services' imports are heavy; other commands do without them

    console = console or Console()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    stack = Stack(scenario, settings=settings, speed=speed, reserved_users=RESERVED_USERS)
    try:
        await stack.start()
    except Exception as error:  # a port taken, Redis missing, ...: say what, not how
        Console(stderr=True).print(f"chargetwin: cannot start the stack: {error}", markup=False)
        return 2
    try:
        _print_banner(console, stack, speed, show_users)
        await stop.wait()
        console.print("stopping ...")
    finally:
        await stack.stop()
    return 0


def _print_banner(console: Console, stack: Any, speed: float, show_users: int) -> None:
    """URLs and test users as plain lines, easy to copy (no table wrapping a token)."""
    urls, scenario, world = stack.urls, stack.scenario, stack.world
    connectors = sum(1 for _ in world.network.connectors())
    lines = [
        f"chargetwin serve: {scenario.name}: {len(world.network.stations)} stations, {connectors} connectors, "
        f"{len(world.drivers)} users; simulated time from {scenario.run.start:%Y-%m-%d %H:%M %z} at {speed:g}x",
        "",
        f"  backend    {urls.backend}   POST /api/auth/login, /api/charging/start, /api/charging/stop",
        f"  gateway    {urls.gateway}/?token=TOKEN   (receive-only WebSocket)",
        f"  CMS REST   {urls.cms}   POST /api/charging/remote_start, /api/charging/stop",
        f"  OCPP 1.6J  {urls.ocpp}/{{charge_point_id}}   ({len(world.charge_points)} charge points)",
        f"  Redis      {urls.redis}",
        "",
    ]
    lines += user_lines(stack.users, stack.token, show_users)
    lines += ["", "Press Ctrl-C to stop."]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
