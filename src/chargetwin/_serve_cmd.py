"""``chargetwin serve``: the twin for mobile teams: the whole stack with a living fleet, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ._serve_state import StateError, default_state_dir, open_state
from ._service_options import DEFAULT_PORTS, RESERVED_USERS, add_listen_options, settings_from, user_lines
from .twin.model.config import Scenario
from .twin.scenario import ScenarioError, load_scenario
from .twin.services.settings import Settings

if TYPE_CHECKING:
    from .harness.recording import Recording

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
    parser.add_argument("--state", metavar="DIR", type=Path,
                        help="folder of the twin's state: sessions, statuses, the control API's token (default: "
                             "CHARGETWIN_STATE, else chargetwin's folder in your platform's user data directory)")
    parser.add_argument("--fresh", action="store_true",
                        help="start with an empty state: forget every session and status of earlier runs")
    add_listen_options(parser, list(DEFAULT_PORTS), database=True)
    parser.add_argument("--show-users", type=int, default=5, metavar="N", help="test users to print (default 5)")
    parser.add_argument("--record", metavar="DIR", type=Path,
                        help="write everything sent and received while serving (the apps' REST calls and sockets, "
                             "backend <-> CMS, OCPP, Redis) to DIR/trace.ndjson as it happens; judge it with "
                             "'chargetwin validate DIR'")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
        settings = settings_from(args)
        state = open_state(args.state or default_state_dir(), fresh=args.fresh)
    except (ScenarioError, ValueError, StateError) as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    settings = replace(settings, database=args.database or str(state.database),
                       admin_token=settings.admin_token or state.admin_token())
    if args.speed <= 0:
        print("chargetwin: --speed must be above 0", file=sys.stderr)
        return 2
    start = datetime.now(scenario.run.start.tzinfo) if args.start == "now" else scenario.run.start
    scenario = replace(scenario, run=replace(scenario.run, start=start.replace(microsecond=0),
                                             duration=SERVE_HORIZON.total_seconds()))
    try:
        return asyncio.run(serve_scenario(scenario, settings=settings, speed=args.speed,
                                          show_users=args.show_users, record=args.record))
    except KeyboardInterrupt:
        return 0


async def serve_scenario(scenario: Scenario, *, settings: Settings, speed: float, show_users: int = 5,
                         stop: asyncio.Event | None = None, console: Console | None = None,
                         record: Path | None = None) -> int:
    """Run the stack until ``stop`` is set (or SIGINT/SIGTERM); the exit code.

    ``record``: a folder where the trace of everything the stack sends and receives is written as it
    happens (``trace.ndjson``: :mod:`chargetwin.harness.recording`), closed once the stack stopped.
    """
    from .twin.stack import Stack  # the services' imports are heavy; other commands do without them

    console = console or Console()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        recording = None if record is None else _recording(record)
    except OSError as error:
        Console(stderr=True).print(f"chargetwin: cannot record into {record}: {error.strerror or error}",
                                   markup=False)
        return 2
    make = Stack if recording is None else recording.stack
    stack = make(scenario, settings=settings, speed=speed, reserved_users=RESERVED_USERS, watch_apps=True,
                 backpressure=True)
    stopped: str | None = None
    try:
        try:
            await stack.start()
            if recording is not None:
                await recording.start()
        except Exception as error:  # a port taken, Redis missing, ...: say what, not how
            Console(stderr=True).print(f"chargetwin: cannot start the stack: {error}", markup=False)
            stopped = f"the stack did not start: {error}"
            await stack.stop()
            return 2
        try:
            _print_banner(console, stack, speed, show_users)
            console.print(f"What your app sends that breaks the contract is printed here and listed at "
                          f"{stack.urls.backend}/twin/violations", markup=False, highlight=False, soft_wrap=True)
            if recording is not None:
                console.print(f"Recording everything to {recording.path}; judge it with: chargetwin validate "
                              f"{record}", markup=False, highlight=False, soft_wrap=True)
            await _serve_until(stop, stack, console)
            console.print("stopping ...")
        finally:
            await stack.stop()
    finally:
        if recording is not None:  # after the stack: the sockets' last closes are in the trace
            await recording.close(stopped=stopped)
            console.print(f"recorded {recording.records:,} records in {recording.path}", markup=False,
                          highlight=False, soft_wrap=True)
    return 0


def _recording(record: Path) -> Recording:
    """The recording into the folder ``record``; OSError when it cannot be written."""
    from .harness.recording import Recording  # the harness: only when recording

    return Recording(record)


PACE_EVERY_S = 30.0
"""How often ``serve`` looks whether simulated time had to wait for the services (backpressure)."""


async def _serve_until(stop: asyncio.Event, stack: Any, console: Console) -> None:
    """Wait for ``stop``; say when the machine cannot hold the speed (simulated time waited for the services)."""
    waited = 0.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PACE_EVERY_S)
        runner, clock = stack.runner, stack.clock
        if runner is None or clock is None or stop.is_set():
            continue
        share, waited = (runner.held_s - waited) / PACE_EVERY_S, runner.held_s
        if share > 0.1:
            console.print(f"simulated time waited {share:.0%} of the last {PACE_EVERY_S:.0f} s for the services "
                          f"to carry its messages: this machine holds about {clock.speed * (1 - share):.0f}x, "
                          f"not {clock.speed:g}x (PUT /twin/clock or a lower --speed keeps an even pace)",
                          markup=False, highlight=False, soft_wrap=True)


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
        f"  web app    {urls.backend}/app/   (the reference client: log in as a test user)",
        f"  control    {urls.backend}/twin/   (header X-Twin-Token: {stack.settings.admin_token}; "
        f"API at /twin/openapi.json)",
        f"  state      {Path(stack.settings.database).parent}   (--fresh starts empty)",
        "",
    ]
    lines += user_lines(stack.users, stack.token, show_users)
    lines += ["", "Press Ctrl-C to stop."]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
