"""The whole reference stack in one asyncio loop: Redis, CMS, backend, gateway, charge points, model.

:class:`Stack` is what ``chargetwin serve`` runs (and, later, the scenario
runner): it starts a real Redis (or uses ``REDIS_URL``), the CMS stub, the
backend, the gateway and one OCPP client per charge point of the scenario's
network, and steps the world model in time with the twin's clock. Ports 0
in the settings are replaced by free ports before anything starts, so that
every service knows every other's address.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter

from .clock import SimClock, WallClock
from .control import TwinControl
from .control_api import control_router
from .model import events as ev
from .model.config import Scenario
from .model.world import App, World
from .runner import ModelRunner
from .services.appwatch import AppWatch
from .services.auth import issue_token
from .services.backend.server import Backend
from .services.chargepoints import ChargePointFleet
from .services.cms.service import Cms
from .services.gateway import Gateway
from .services.redis_server import RedisServer, redis_for
from .services.settings import Settings
from .services.users import TestUser, test_users

__all__ = ["Stack", "StackUrls", "free_port"]

log = logging.getLogger("chargetwin.stack")


def _freeze_what_booted() -> None:
    """Keep the collector off what the boot built: the world, its thousands of drivers, every service and client.

    They live as long as the stack, and a full collection walked them all
    every few seconds of a city's run: pauses of 150-260 ms of the one loop,
    which showed as latency spikes on every hop (measured on
    city-evening-peak). :meth:`Stack.stop` gives them back to the collector.
    """
    gc.collect()
    gc.freeze()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


BACKLOG_HIGH_PER_CP = 4
BACKLOG_LOW_PER_CP = 1
"""Backpressure (``Stack(backpressure=True)``): simulated time stands still once more than 4 messages per
charge point wait to be carried, and goes on when at most 1 per charge point is left."""


@dataclass(frozen=True, slots=True)
class StackUrls:
    backend: str
    cms: str
    ocpp: str
    gateway: str
    redis: str


class Stack:
    """Every service of the twin, started together and stopped together.

    ``start`` is the simulated date-time at which the run begins (default:
    the scenario's start); ``speed`` simulated seconds per wall second
    (default: the scenario's, or 1). Users 1..``reserved_users`` are kept
    for people: the model's drivers never use them. ``app_factory`` makes the
    drivers' app once the services run (default: the model's own
    ``DirectApp``, which bypasses the services).

    ``cms_transport`` carries the backend's calls to the CMS (the stack makes
    the backend's client over it, with the client's usual defaults, and
    closes it in :meth:`stop`); ``events_transport`` carries the CMS's events
    to the backend (the CMS closes it when it stops). Either one replaces the
    service's own transport, and with it the connection limits set on the
    client: give the inner transport those limits. None keeps the services'
    own. ``on_lag`` is told each model step's lag behind the clock (:class:`ModelRunner`).
    ``watch_apps`` checks every request and frame apps send against the
    contracts (``self.watch``, listed at ``GET /twin/violations``): what
    ``chargetwin serve`` does for people's apps. ``backpressure``: simulated
    time waits while the services have not carried what the model made (the
    charge points' OCPP queues, the CMS's events for the backend), so that a
    speed the machine cannot hold slows the twin down instead of piling up
    messages without end (``serve``; a run measures that lag instead).
    """

    def __init__(self, scenario: Scenario, *, settings: Settings | None = None, speed: float | None = None,
                 start: datetime | None = None, reserved_users: int = 0,
                 app_factory: Callable[[Stack], App] | None = None,
                 ocpp_tap: Callable[[str, str, str], None] | None = None,
                 cms_transport: httpx.AsyncBaseTransport | None = None,
                 events_transport: httpx.AsyncBaseTransport | None = None,
                 on_lag: Callable[[float], None] | None = None, watch_apps: bool = False,
                 backpressure: bool = False) -> None:
        self.scenario = scenario
        self.settings = settings or Settings.from_env()
        self.speed = speed or scenario.run.speed or 1.0
        self.start_time = start or scenario.run.start
        self.world = World(scenario, reserved_users=reserved_users)
        self._app_factory = app_factory
        self._ocpp_tap = ocpp_tap
        self._cms_client = None if cms_transport is None else httpx.AsyncClient(transport=cms_transport)
        self._events_transport = events_transport
        self._on_lag = on_lag
        self._backpressure = backpressure
        self._behind = False
        # what apps send, judged live (GET /twin/violations): for people's apps (serve), not the run's own
        self.watch = AppWatch(secret=self.settings.jwt_secret) if watch_apps else None
        self.users: list[TestUser] = test_users((d.user_id, d.id_tag) for d in self.world.drivers)
        self.clock: SimClock | None = None
        self.redis: aioredis.Redis | None = None
        self.redis_server: RedisServer | None = None
        self.cms: Cms | None = None
        self.backend: Backend | None = None
        self.gateway: Gateway | None = None
        self.fleet: ChargePointFleet | None = None
        self.runner: ModelRunner | None = None
        self._exit = ExitStack()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Start everything, in dependency order; on failure, stop what was started and re-raise."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        self.redis_server = self._exit.enter_context(redis_for(self.settings.redis_url))
        self.settings = self._concrete(self.settings, self.redis_server.url)
        settings = self.settings
        # The clock stands at the scenario's start while the stack boots (see _settle_boot).
        self.clock = SimClock(self.start_time, speed=self.speed, held=True)
        stations = [station.spec for station in self.world.network.stations]
        self.redis = aioredis.from_url(self.redis_server.url)
        self.backend = Backend(settings=settings, stations=stations, users=self.users, clock=self.clock,
                               redis=self.redis, cms=self._cms_client, routers=self._routers(), watch=self.watch)
        await self.backend.start()
        self.cms = Cms(settings=settings, stations=stations, clock=self.clock,
                       first_transaction_id=self.backend.service.next_transaction_id(), ocpp_tap=self._ocpp_tap,
                       delivery_transport=self._events_transport, id_tags=[user.id_tag for user in self.users])
        await self.cms.start()
        self.gateway = Gateway(settings=settings, clock=self.clock, redis_url=self.redis_server.url, watch=self.watch)
        await self.gateway.start()
        self.world.subscribe(self._maintenance_to_backend)
        self.fleet = ChargePointFleet(self.world, settings, self.clock)
        await self.fleet.start()
        await self._settle_boot()
        _freeze_what_booted()
        if self._app_factory is not None:  # the drivers' apps go through the services from the first trip
            self.world.app = self._app_factory(self)
        self.clock.begin()
        self.runner = ModelRunner(self.world, self.clock, on_lag=self._on_lag,
                                  hold=self._behind_on_messages if self._backpressure else None)
        self.runner.start()

    @property
    def backlog(self) -> int:
        """Messages the model made that the services have not carried yet: OCPP requests queued at the
        connected charge points and CMS events not yet delivered to the backend."""
        fleet = 0 if self.fleet is None else self.fleet.backlog
        delivery = self.cms.delivery if self.cms is not None else None
        return fleet + (0 if delivery is None else delivery.pending)

    def _behind_on_messages(self) -> bool:
        """Backpressure with hysteresis: behind above 4 queued messages per charge point, caught up below 1."""
        charge_points = max(1, len(self.world.charge_points))
        backlog = self.backlog
        if backlog > BACKLOG_HIGH_PER_CP * charge_points:
            self._behind = True
        elif backlog <= BACKLOG_LOW_PER_CP * charge_points:
            self._behind = False
        return self._behind

    async def _settle_boot(self, timeout: float = 60.0) -> None:
        """Wait (at most ``timeout`` s) until every charge point booted and the CMS delivered their statuses.

        A city's charge points boot with one StatusNotification per connector:
        thousands of events at once. Delivered while simulated time ran, they
        delayed the first sessions past their deadlines; so time starts after.
        """
        assert self.fleet is not None and self.cms is not None
        try:
            await self.fleet.wait_ready(timeout)
        except TimeoutError:
            log.warning("not every charge point booted within %.0f s; starting the run anyway", timeout)
        if self.cms.delivery is not None and not await self.cms.delivery.wait_idle(timeout):
            log.warning("the CMS still had %d boot events to deliver after %.0f s; starting the run anyway",
                        self.cms.delivery.pending, timeout)

    def _routers(self) -> list[APIRouter]:
        """The twin's control API (``/twin/``) for the backend."""
        s = self.settings
        info = {"scenario": self.scenario.name, "backend_url": s.backend_url, "gateway_url": s.gateway_url,
                "cms_url": s.cms_url, "ocpp_url": s.ocpp_url, "users": len(self.users),
                "control_api": bool(s.admin_token)}
        return [control_router(TwinControl(self), s, info=info)]

    @staticmethod
    def _concrete(settings: Settings, redis_url: str) -> Settings:
        """``settings`` with Redis's URL and a free port wherever a port is 0."""
        def port(value: int) -> int:
            return value or free_port(settings.host)

        return replace(settings, redis_url=redis_url, backend_port=port(settings.backend_port),
                       cms_port=port(settings.cms_port), ocpp_port=port(settings.ocpp_port),
                       gateway_port=port(settings.gateway_port))

    def _maintenance_to_backend(self, event: ev.Event) -> None:
        """The operator's back office: a station's maintenance window reaches the backend (no OCPP for it)."""
        if not isinstance(event, ev.MaintenanceStarted | ev.MaintenanceEnded) or self.backend is None:
            return
        under = isinstance(event, ev.MaintenanceStarted)
        reason = event.reason if isinstance(event, ev.MaintenanceStarted) else None
        task = asyncio.get_running_loop().create_task(
            self.backend.service.set_maintenance(event.station_id, under, reason=reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def restart_backend(self, *, downtime: float = 0.0) -> None:
        """Stop the backend, wait ``downtime`` wall seconds, start a new one on the same port and database.

        Meanwhile the CMS keeps the charge points' events and delivers them
        once the new backend answers (docs/stack.md): nothing is lost.
        """
        assert self.backend is not None and self.redis is not None and self.clock is not None
        await self.backend.stop()
        await asyncio.sleep(downtime)
        self.backend = Backend(settings=self.settings, stations=[s.spec for s in self.world.network.stations],
                               users=self.users, clock=self.clock, redis=self.redis, cms=self._cms_client,
                               routers=self._routers(), watch=self.watch)
        await self.backend.start()

    async def stop_gateway(self) -> None:
        """Stop the gateway (every app socket closed with 1001) until :meth:`start_gateway`."""
        assert self.gateway is not None
        await self.gateway.stop()

    async def start_gateway(self) -> None:
        """A new gateway on the same port, with the stack's watch on its apps."""
        assert self.clock is not None and self.redis_server is not None
        self.gateway = Gateway(settings=self.settings, clock=self.clock, redis_url=self.redis_server.url,
                               watch=self.watch)
        await self.gateway.start()

    async def stop(self) -> None:
        """Stop everything started, in reverse order. Safe to call twice."""
        if self.runner is not None:
            await self.runner.stop()
            self.runner = None
        for name in ("fleet", "gateway", "cms", "backend"):
            service = getattr(self, name)
            if service is not None:
                await service.stop()
                setattr(self, name, None)
        for task in list(self._tasks):
            task.cancel()
        if self._cms_client is not None:
            await self._cms_client.aclose()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        self._exit.close()
        gc.unfreeze()

    async def __aenter__(self) -> Stack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def urls(self) -> StackUrls:
        s = self.settings
        return StackUrls(backend=s.backend_url, cms=s.cms_url, ocpp=s.ocpp_url, gateway=s.gateway_url,
                         redis=self.redis_server.url if self.redis_server else (s.redis_url or ""))

    def token(self, user_id: int) -> str:
        """A JWT for a test user, signed with the stack's secret (expiry in wall time, as JWT readers check)."""
        return issue_token(user_id, secret=self.settings.jwt_secret, ttl_s=self.settings.jwt_ttl_s,
                           now=WallClock().now())
