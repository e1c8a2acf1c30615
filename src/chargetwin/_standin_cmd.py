"""``chargetwin backend``, ``chargetwin cms``, ``chargetwin gateway``: one reference service alone, until Ctrl-C.

Each stands in for one of a team's real services, so that the others can
be tested against it (DESIGN.md: "any one of them can be swapped for the
real thing"). They take the same flags and environment as ``serve``; the
services find each other by URL (``--backend-url``, ``--cms-url``,
``--redis``), and trust each other through the environment's secrets
(``CHARGETWIN_JWT_SECRET``, ``CHARGETWIN_INTERNAL_TOKEN``), which must be the
same in every process. ``backend`` and ``cms`` must load the same scenario:
its stations and users are what both know.

Stand-ins keep the wall clock: a real service's timestamps are real time.
``chargetwin cms --speed`` makes its simulated drivers busier, and its
charge points' clock run ahead by the same factor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

from ._service_options import RESERVED_USERS, add_listen_options, settings_from, user_lines
from .twin.scenario import ScenarioError, load_scenario
from .twin.services.redis_server import redacted_url

if TYPE_CHECKING:
    from .twin.model.config import Scenario
    from .twin.services.settings import Settings

__all__ = ["add_standin_parsers"]

TRANSACTION_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
"""A CMS stand-in numbers transactions from the seconds since this moment: a restart does not reuse ids."""

_EPILOG = ("Secrets come from the environment only: CHARGETWIN_JWT_SECRET and CHARGETWIN_INTERNAL_TOKEN, the same "
           "in every process. Ports also from CHARGETWIN_* variables. Exit codes: 0 stopped, 2 bad input or the "
           "service could not start.")


def add_standin_parsers(commands: Any) -> None:
    backend = commands.add_parser(
        "backend", help="the reference backend alone (REST API, SQLite, publishes to Redis)",
        description="Start the reference backend alone, to stand in for a real one: the REST API of the "
                    "scenario's stations and test users, publishing to Redis and calling the CMS at --cms-url. "
                    "Prints its URL, the Redis it publishes to and test users with tokens; runs until Ctrl-C.",
        epilog=_EPILOG)
    _scenario_argument(backend)
    add_listen_options(backend, ["backend"], peers=["cms"], database=True, redis=True)
    backend.add_argument("--show-users", type=int, default=3, metavar="N", help="test users to print (default 3)")
    backend.set_defaults(run=_run_backend)

    cms = commands.add_parser(
        "cms", help="the CMS stub alone: OCPP 1.6J central system, CMS REST API and simulated charge points",
        description="Start the CMS stub alone, to stand in for a real one: its OCPP 1.6J central system, its "
                    "REST API (remote start and stop), delivering the charge points' events to the backend at "
                    "--backend-url; and one simulated charge point per charging point of the scenario, with "
                    "the scenario's drivers charging. Runs until Ctrl-C.",
        epilog=_EPILOG)
    _scenario_argument(cms)
    add_listen_options(cms, ["cms", "ocpp"], peers=["backend"])
    cms.add_argument("--charge-points", choices=("simulated", "none"), default="simulated",
                     help="simulated: the scenario's charge points connect and its drivers charge (default); "
                          "none: only the central system, for charge points brought by someone else")
    cms.add_argument("--speed", type=float, default=1.0,
                     help="simulated seconds per wall second of the drivers and charge points (default 1)")
    cms.add_argument("--first-transaction-id", type=int, metavar="N",
                     help="the first transaction id (default: seconds since 2025-01-01, so restarts do not reuse "
                          "ids the backend has seen)")
    cms.set_defaults(run=_run_cms)

    gateway = commands.add_parser(
        "gateway", help="the reference WebSocket gateway alone (subscribes to the backend's Redis)",
        description="Start the reference WebSocket gateway alone, to stand in for a real one: it accepts the "
                    "apps' sockets (JWT in ?token=), subscribes to Redis and pushes each user's messages. Needs "
                    "the Redis the backend publishes to (--redis or REDIS_URL). Runs until Ctrl-C.",
        epilog=_EPILOG)
    add_listen_options(gateway, ["gateway"], redis=True)
    gateway.set_defaults(run=_run_gateway)


def _scenario_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", default="smoke", metavar="SCENARIO",
                        help="scenario file or bundled name: its stations and users (default: smoke)")


def _inputs(args: argparse.Namespace, *, scenario: bool = True) -> tuple[Scenario | None, Settings]:
    """The scenario and settings ``args`` name; ValueError or ScenarioError with what is wrong."""
    settings = settings_from(args)
    return (load_scenario(args.scenario) if scenario else None), settings


def _guarded(start: Callable[[argparse.Namespace, Scenario | None, Settings, Console], Coroutine[Any, Any, int]],
             *, scenario: bool = True) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            loaded, settings = _inputs(args, scenario=scenario)
        except (ScenarioError, ValueError) as error:
            print(f"chargetwin: {error}", file=sys.stderr)
            return 2
        try:
            return asyncio.run(start(args, loaded, settings, Console()))
        except KeyboardInterrupt:
            return 0
    return run


async def _serve_until_stopped(console: Console, lines: list[str]) -> None:
    """Print ``lines``, then wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    console.print("\n".join([*lines, "", "Press Ctrl-C to stop."]), markup=False, highlight=False, soft_wrap=True)
    await stop.wait()
    console.print("stopping ...")


def _cannot_start(role: str, error: BaseException) -> int:
    print(f"chargetwin: cannot start the {role}: {error}", file=sys.stderr)
    return 2


async def _backend(args: argparse.Namespace, scenario: Scenario | None, settings: Settings, console: Console) -> int:
    import redis.asyncio as aioredis

    from .twin.clock import WallClock
    from .twin.model.world import World
    from .twin.services.auth import issue_token
    from .twin.services.backend import Backend
    from .twin.services.redis_server import redis_for
    from .twin.services.users import test_users

    assert scenario is not None
    world = World(scenario, reserved_users=RESERVED_USERS)
    users = test_users((d.user_id, d.id_tag) for d in world.drivers)
    clock = WallClock()

    def token(user_id: int) -> str:
        return issue_token(user_id, secret=settings.jwt_secret, ttl_s=settings.jwt_ttl_s, now=clock.now())

    with contextlib.ExitStack() as exits:
        try:
            redis_server = exits.enter_context(redis_for(settings.redis_url))
        except Exception as error:  # no redis-server installed, or it would not start
            return _cannot_start("backend", error)
        settings = replace(settings, redis_url=redis_server.url)
        redis = aioredis.from_url(redis_server.url)
        backend = Backend(settings=settings, stations=[s.spec for s in world.network.stations], users=users,
                          clock=clock, redis=redis)
        try:
            await backend.start()
            private = "" if redis_server.port == 0 else "   (started here: give it to chargetwin gateway --redis)"
            await _serve_until_stopped(console, [
                f"chargetwin backend: {scenario.name}: {len(world.network.stations)} stations, {len(users)} users",
                "",
                f"  backend    {backend.url}   POST /api/auth/login, /api/charging/start, /api/charging/stop",
                f"  Redis      {redacted_url(redis_server.url)}{private}",
                f"  CMS        {settings.cms_url}   (where it sends remote start and stop)",
                "",
                *user_lines(users, token, args.show_users),
            ])
        except Exception as error:  # a port taken, Redis not answering, ...: say what, not how
            return _cannot_start("backend", error)
        finally:
            await backend.stop()
            await redis.aclose()
    return 0


async def _cms(args: argparse.Namespace, scenario: Scenario | None, settings: Settings, console: Console) -> int:
    from .twin.clock import SimClock
    from .twin.model.world import World
    from .twin.runner import ModelRunner
    from .twin.services.chargepoints import ChargePointFleet
    from .twin.services.cms import Cms

    assert scenario is not None
    if args.speed <= 0:
        print("chargetwin: --speed must be above 0", file=sys.stderr)
        return 2
    world = World(scenario, reserved_users=RESERVED_USERS)
    clock = SimClock(datetime.now(scenario.run.start.tzinfo).replace(microsecond=0), speed=args.speed, held=True)
    first_id = args.first_transaction_id or int(time.time() - TRANSACTION_EPOCH.timestamp())
    cms = Cms(settings=settings, stations=[s.spec for s in world.network.stations], clock=clock,
              first_transaction_id=first_id, id_tags=[driver.id_tag for driver in world.drivers])
    fleet: ChargePointFleet | None = None
    runner: ModelRunner | None = None
    try:
        await cms.start()
        if args.charge_points == "simulated":
            fleet = ChargePointFleet(world, replace(settings, ocpp_port=cms.ocpp_port), clock)
            await fleet.start()
            with contextlib.suppress(TimeoutError):
                await fleet.wait_ready(60.0)
            runner = ModelRunner(world, clock)
        clock.begin()
        if runner is not None:
            runner.start()
        cps = "none (bring your own)" if fleet is None else f"{len(fleet.charge_points)} simulated, connected"
        await _serve_until_stopped(console, [
            f"chargetwin cms: {scenario.name}: {len(world.network.stations)} stations; transaction ids from "
            f"{first_id}",
            "",
            f"  OCPP 1.6J  ws://{settings.host}:{cms.ocpp_port}/{{charge_point_id}}   charge points: {cps}",
            f"  CMS REST   http://{settings.host}:{cms.rest_port}   POST /api/charging/remote_start, "
            "/api/charging/stop",
            f"  backend    {settings.backend_url}   (where it delivers the charge points' events)",
        ])
    except Exception as error:
        return _cannot_start("CMS", error)
    finally:
        if runner is not None:
            await runner.stop()
        if fleet is not None:
            await fleet.stop()
        await cms.stop()
    return 0


async def _gateway(args: argparse.Namespace, scenario: Scenario | None, settings: Settings, console: Console) -> int:
    from .twin.clock import WallClock
    from .twin.services.gateway import Gateway

    if not settings.redis_url:
        print("chargetwin: the gateway needs the Redis the backend publishes to: give --redis URL or set "
              "REDIS_URL (chargetwin backend prints its Redis)", file=sys.stderr)
        return 2
    gateway = Gateway(settings=settings, clock=WallClock())
    try:
        await gateway.start()
        await _serve_until_stopped(console, [
            "chargetwin gateway",
            "",
            f"  gateway    {gateway.url}/?token=TOKEN   (receive-only WebSocket)",
            f"  Redis      {redacted_url(settings.redis_url)}   (subscribed to the users' channels)",
        ])
    except Exception as error:
        return _cannot_start("gateway", error)
    finally:
        await gateway.stop()
    return 0


_run_backend = _guarded(_backend)
_run_cms = _guarded(_cms)
_run_gateway = _guarded(_gateway, scenario=False)
