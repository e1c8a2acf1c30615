"""A scenario run: the model drives the whole stack, the taps feed one pipeline, the checks judge as it goes.

:func:`run_scenario` starts the :class:`~chargetwin.twin.stack.Stack` with
simulated apps (:class:`~.apps.AppUsers`) for the model's drivers and taps
every hop: the app <-> backend REST calls, the backend <-> CMS REST calls
and the CMS -> backend events (at the HTTP transport, :mod:`.http_tap`),
every Redis message, every WebSocket message, close and ping each app
sees, every OCPP frame, and the model's own truth (:mod:`.truth`). Each
tap emits one record into the :class:`~.judge.Judge`'s pipeline, whose
consumers check, measure, count and write the trace while the run goes.
It runs the scenario for its duration at its speed (or until Ctrl-C, or
until the model fails), lets the last messages settle, tells the pipeline
the truth of the end, and writes ``results.json`` and ``junit.xml``
(:mod:`.results`); the command line adds the HTML report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
import resource
import time
from contextlib import nullcontext, suppress
from dataclasses import asdict, replace
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Literal

import httpx
import redis.asyncio as aioredis
from rich.console import Console

from .. import __version__
from ..contracts.status import count_classes, station_status
from ..twin.model.config import Scenario
from ..twin.model.kpi import KpiCollector
from ..twin.model.series import CitySeries
from ..twin.services.cms.delivery import MAX_IN_FLIGHT
from ..twin.services.settings import Settings
from ..twin.stack import Stack
from ._interning import Interner
from .apps import AppUsers
from .checks import CheckParams
from .http_tap import TappingTransport
from .judge import SETTLE_S, Judge, RunEnd, RunHeader
from .latency import Distribution
from .live import LiveDisplay, Status
from .results import write_results
from .series import default_latency_bucket
from .thresholds import Thresholds
from .trace import TraceRecord
from .trace_output import trace_output
from .truth import RUN, STATION, TWIN_END, ModelTap, StationTruth, station_messages

__all__ = ["SETTLE_S", "run_scenario", "with_speed"]

log = logging.getLogger("chargetwin.run")

_OCPP_DIRECTION = {"receive": "send", "send": "receive"}  # the CMS's view -> the charge point's (trace)
TICK_S = 0.5
"""Wall seconds between ticks of the pipeline (and samples of the CMS's backlog)."""


class _Taps:
    """Turns every tapped message into a record, stamped with simulated and wall time, into the pipeline.

    A fan-out's copies (one Redis message per connected user, one frame per
    socket) share one parsed message (:attr:`interner`). A consumer that
    fails (a bug of ours) must not break the stack it taps: the first
    failure stops the run, which then reports what it saw.
    """

    def __init__(self, judge: Judge, stack: Stack) -> None:
        self.pipeline, self.stack = judge.pipeline, stack
        self.wall0 = time.monotonic()
        self.interner = Interner()
        self.failure: BaseException | None = None
        self.last_backlog = 0

    def now(self) -> tuple[float, float]:
        clock = self.stack.clock
        return (round(clock.sim_seconds(), 3) if clock else 0.0), round(time.monotonic() - self.wall0, 4)

    def record(self, hop: str, channel: str, direction: str, message: Any, *, status: int | None = None,
               user_id: int | None = None, socket_id: int | None = None, charger_id: str | None = None,
               request_id: str | None = None) -> None:
        if self.failure is not None:
            return
        t_sim, t_wall = self.now()
        record = TraceRecord(hop=hop, channel=channel, direction=direction, message=message, t_sim=t_sim,
                             t_wall=t_wall, status=status, user_id=user_id, socket_id=socket_id,
                             charger_id=charger_id, request_id=request_id, line=self.pipeline.observations + 1,
                             **_ids(message))
        try:
            self.pipeline.emit(record)
        except Exception as error:  # a bug in a consumer: stop the run, keep the stack
            log.exception("the harness failed on line %d (%s %s)", record.line, hop, channel)
            self.failure = error

    def tick(self) -> None:
        if self.failure is None:
            try:
                self.pipeline.tick(*self.now())
            except Exception as error:
                log.exception("the harness failed on a tick")
                self.failure = error

    def twin(self, channel: str, direction: str, message: dict[str, Any]) -> None:
        self.record("twin", channel, direction, message)

    def app(self, channel: str, direction: str, message: Any, status: int | None, user_id: int,
            socket_id: int | None) -> None:
        hop = "gateway-app" if channel == "websocket" else "app-backend"
        self.record(hop, channel, direction, message, status=status, user_id=user_id, socket_id=socket_id)

    def ocpp(self, charge_point_id: str, direction: str, frame: str) -> None:
        try:
            message: Any = json.loads(frame)
        except ValueError:
            message = frame
        self.record("ocpp", f"ocpp:{charge_point_id}", _OCPP_DIRECTION.get(direction, direction), message,
                    charger_id=charge_point_id)

    def http(self, hop: str, channel: str, direction: str, message: Any, status: int | None,
             request_id: str) -> None:
        """A backend <-> CMS exchange (an :class:`~.http_tap.ExchangeTap`), with the charger a body names."""
        charger = message.get("charger_id") if isinstance(message, dict) else None
        self.record(hop, channel, direction, message, status=status, request_id=request_id,
                    charger_id=charger if isinstance(charger, str) else None)


def _ids(message: Any) -> dict[str, Any]:
    """Correlation ids found at the top of a message or in its data."""
    found: dict[str, Any] = {}
    if isinstance(message, dict):
        for source in (message.get("data"), message):
            if isinstance(source, dict):
                for key in ("session_id", "transaction_id"):
                    if isinstance(source.get(key), int) and not isinstance(source.get(key), bool):
                        found[key] = source[key]
    return found


def _stations(stack: Stack) -> dict[str, StationTruth]:
    truth = {}
    for station in stack.world.network.stations:
        statuses = [c.status for cp in station.charge_points for c in cp.connectors]
        counts = count_classes(statuses)
        under = station.under_maintenance
        status = station_status(available=counts["available"], total=len(statuses),
                                unavailable=counts["unavailable"], under_maintenance=under)
        truth[station.id] = StationTruth(status, 0 if under else counts["available"], len(statuses))
    return truth


async def _tap_redis(url: str, taps: _Taps, ready: asyncio.Event) -> None:
    client = aioredis.from_url(url)
    pubsub = client.pubsub()
    try:
        await pubsub.psubscribe("user:*")
        ready.set()
        async for item in pubsub.listen():
            if item["type"] == "pmessage":
                message = taps.interner.parse(item["data"])
                taps.record("redis", f"redis:{item['channel'].decode()}", "publish", message)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis 8
        await client.aclose()


async def run_scenario(scenario: Scenario, *, out: Path, settings: Settings, speed: float | None = None,
                       console: Console | None = None, trace: str = "full",
                       progress: Literal["bar", "lines", "quiet"] = "quiet") -> dict[str, Any]:
    """Run ``scenario`` end to end; write the trace (``trace``: full, violations or none), results.json and
    junit.xml into ``out``; the results document.

    ``console`` (standard error) shows the first violations of each rule as
    they are found, and ``progress`` as a bar or a status line every 10 s.
    A run stopped early (Ctrl-C, the model failed) still writes its results,
    marked incomplete.
    """
    out.mkdir(parents=True, exist_ok=True)
    speed = speed or scenario.run.speed or 60.0
    holder: dict[str, Any] = {}
    lags = Distribution(3, scale=1e6)
    backlog = Distribution(3, scale=1.0)

    def apps(stack: Stack) -> AppUsers:
        users = AppUsers(stack.world, backend_url=stack.urls.backend, gateway_url=stack.urls.gateway,
                         token_for=stack.token, on_traffic=holder["taps"].app, interner=holder["taps"].interner)
        holder["apps"] = users
        return users

    def ocpp_tap(charge_point_id: str, direction: str, frame: str) -> None:
        if "taps" in holder:
            holder["taps"].ocpp(charge_point_id, direction, frame)

    def http_tap(hop: str, channel: str, direction: str, message: Any, status: int | None, request_id: str) -> None:
        if "taps" in holder:
            holder["taps"].http(hop, channel, direction, message, status, request_id)

    delivery = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=MAX_IN_FLIGHT,
                                                             max_keepalive_connections=MAX_IN_FLIGHT))
    stack = Stack(scenario, settings=settings, speed=speed, app_factory=apps, ocpp_tap=ocpp_tap,
                  cms_transport=TappingTransport(http_tap, hop="backend-cms", channel_prefix="cms:"),
                  events_transport=TappingTransport(http_tap, hop="cms-backend", channel_prefix="backend:",
                                                    inner=delivery),
                  on_lag=lags.add)
    header = RunHeader(
        scenario={"name": scenario.name, "source": scenario.source, "seed": scenario.run.seed, "speed": speed,
                  "duration_s": scenario.run.duration, "start": scenario.run.start.isoformat()},
        params=CheckParams(deadline_s=scenario.checks.session_started_deadline_s),
        thresholds=Thresholds.of(scenario.checks),
        tariffs={s.id: s.spec.tariff_per_kwh for s in stack.world.network.stations}, taps=("heartbeat",))
    kpis = KpiCollector(stack.world)
    stack.world.subscribe(kpis)
    city = CitySeries(stack.world, bucket_s=default_latency_bucket(scenario.run.duration))
    stack.world.subscribe(city)
    live = None if console is None else LiveDisplay(
        console, name=scenario.name, mode=progress,
        status=lambda: _status(stack, holder, scenario.run.duration, backlog_now=_backlog(stack)))
    judge = Judge(header, extra=[trace_output(trace, out / "trace.ndjson"), live])
    taps = holder["taps"] = _Taps(judge, stack)
    stack.world.subscribe(ModelTap(taps.twin))
    taps.twin(RUN, "start", header.to_message())
    started = time.monotonic()
    stopped: str | None = None
    with live if live is not None else nullcontext():
        await stack.start()
        try:
            ready = asyncio.Event()
            tap = asyncio.get_running_loop().create_task(_tap_redis(stack.urls.redis, taps, ready))
            await asyncio.wait_for(ready.wait(), 10)
            stopped = await _run_for(stack, scenario.run.duration, taps, backlog, console)
            ended_t_wall = taps.now()[1]
            assert stack.runner is not None
            await stack.runner.stop()  # freeze the model; what is in flight arrives
            await asyncio.sleep(SETTLE_S)
            after_settle = _backlog(stack)
            for message in station_messages(_stations(stack)):
                taps.twin(STATION, "state", message)
            if holder.get("apps") is not None:
                await holder["apps"].close(record=False)
            await asyncio.sleep(0.2)
            tap.cancel()
            with suppress(asyncio.CancelledError):
                await tap
            gateway = stack.gateway.metrics() if stack.gateway is not None else None
        finally:
            await stack.stop()
        apps_ = holder.get("apps")
        metrics = {
            "clock_lag_s": lags.summary(digits=4),
            "cms_event_backlog": {**backlog.summary(digits=0), "at_end": taps.last_backlog,
                                  "after_settle": after_settle},
            "apps": None if apps_ is None else asdict(apps_.metrics),
            "gateway": None if gateway is None else asdict(gateway),
            "model": kpis.result(),
            "city": city.result(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "scenario_ended_t_wall": ended_t_wall,
        }
        if taps.failure is not None:
            stopped = stopped or f"the harness failed: {taps.failure!r}"
        end = RunEnd(complete=stopped is None, stopped=stopped, wall_seconds=round(time.monotonic() - started, 2),
                     metrics=metrics)
        failure, taps.failure = taps.failure, None
        taps.twin(TWIN_END, "end", end.to_message())
        judge.pipeline.end()
        taps.failure = failure
    document, thresholds = judge.results(versions=_versions(), end=end)
    write_results(out, document, judge.checks.results(), thresholds)
    return document


def _backlog(stack: Stack) -> int:
    """CMS events queued or in flight to the backend: the first queue to grow when the stack saturates."""
    delivery = stack.cms.delivery if stack.cms is not None else None
    return delivery.pending if delivery is not None else 0


def _status(stack: Stack, holder: dict[str, Any], duration: float, *, backlog_now: int) -> Status:
    clock, apps, taps = stack.clock, holder.get("apps"), holder["taps"]
    return Status(done_s=clock.sim_seconds() if clock else 0.0, total_s=duration,
                  clock=f"{clock.now():%H:%M}" if clock else "--:--",
                  sessions=apps.metrics.starts_accepted if apps else 0, messages=taps.pipeline.observations,
                  violations=taps.pipeline.violations, backlog=backlog_now)


async def _run_for(stack: Stack, duration: float, taps: _Taps, backlog: Distribution,
                   console: Console | None) -> str | None:
    """Wait out the scenario's duration, ticking the pipeline and sampling the CMS's backlog every half second.

    Returns why the run stopped early (None: it ran its whole duration):
    Ctrl-C, the model failed, or the harness did.
    """
    assert stack.clock is not None
    clock = stack.clock
    try:
        while clock.sim_seconds() < duration:
            await asyncio.sleep(min(TICK_S, (duration - clock.sim_seconds()) / clock.speed + 0.01))
            taps.last_backlog = _backlog(stack)
            backlog.add(taps.last_backlog)
            taps.tick()
            if stack.runner is not None and stack.runner.failure is not None:
                return f"the model failed: {stack.runner.failure!r}"
            if taps.failure is not None:
                return f"the harness failed: {taps.failure!r}"
    except asyncio.CancelledError:  # the first Ctrl-C: stop, and report what ran
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        if console is not None:
            console.print("chargetwin: interrupted; writing the results of what ran (Ctrl-C again to abort)")
        return f"interrupted at {clock.now():%H:%M:%S} simulated, {clock.sim_seconds() / duration:.0%} of the scenario"
    return None


def _versions() -> dict[str, str]:
    """chargetwin's version and those of the components whose behaviour the run measured."""
    found = {"chargetwin": __version__, "python": platform.python_version()}
    for name in ("ocpp", "websockets", "fastapi", "redis", "simpy", "hdrhistogram"):
        with suppress(PackageNotFoundError):
            found[name] = package_version(name)
    return found


def with_speed(scenario: Scenario, speed: float | None) -> Scenario:
    """``scenario`` with its run speed replaced (None keeps it)."""
    return scenario if speed is None else replace(scenario, run=replace(scenario.run, speed=speed))
