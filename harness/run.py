"""A scenario run: the model drives the whole stack, the taps feed one pipeline, the checks judge as it goes.

:func:`run_scenario` starts the :class:`~chargetwin.twin.stack.Stack` with
simulated apps (:class:`~.apps.AppUsers`) for the model's drivers and taps
every hop: the app <-> backend REST calls, the backend <-> CMS REST calls
and the CMS -> backend events (at the HTTP transport, :mod:`.http_tap`),
every Redis message, every WebSocket message, close and ping each app
sees, every OCPP frame, and the model's own truth (:mod:`.truth`). Each
tap turns what it saw into one trace line and writes it to the harness's
worker (:mod:`.worker`, a process of its own), whose pipeline checks,
measures, counts and writes the trace while the run goes: the loop that
carries the services only encodes and hands over. The run lasts the
scenario's duration at its speed (or until Ctrl-C, or until the model,
the Redis tap or the worker fails), lets the last messages settle, sends
the truth of the end, and the worker writes ``results.json`` and
``junit.xml`` (:mod:`.results`); the command line adds the HTML report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

import httpx
from rich.console import Console

from ..contracts.status import count_classes, station_status
from ..twin.model.config import Scenario
from ..twin.model.kpi import KpiCollector
from ..twin.model.series import CitySeries
from ..twin.services.cms.delivery import MAX_IN_FLIGHT
from ..twin.services.settings import Settings
from ..twin.stack import Stack
from ..twin.target import Target, TargetStack
from ._hop_taps import HopTaps
from ._interning import ByIdentity, Interner
from .apps import AppUsers
from .checks import CheckParams
from .exceptions import HarnessError, TraceError
from .http_tap import TappingTransport
from .judge import SETTLE_S, RunEnd, RunHeader
from .latency import Distribution
from .redis_tap import tap_redis
from .series import default_latency_bucket
from .thresholds import Thresholds
from .trace import TraceRecord, correlation_ids, encode_message, encode_record
from .truth import RUN, STATION, TWIN_END, ModelTap, StationTruth, station_messages

__all__ = ["SETTLE_S", "run_scenario", "with_speed"]

log = logging.getLogger("chargetwin.run")

TICK_S = 0.5
"""Wall seconds between ticks of the pipeline (and samples of the CMS's backlog)."""


AnyStack = Stack | TargetStack
"""The twin's own services, or someone else's (``run --target``)."""


class _Taps(HopTaps):
    """Turns every tapped message into a trace line, stamped with simulated and wall time, for the worker.

    A fan-out's copies (one Redis message per connected user, one frame per
    socket) share one parsed message (:attr:`interner`) and so one encoding.
    Lines are written to the worker's standard input without waiting (the
    pipe's buffer grows if the worker falls behind; :meth:`behind` says by
    how much).
    """

    def __init__(self, stack: AnyStack, worker: asyncio.subprocess.Process) -> None:
        self.stack, self.worker = stack, worker
        assert worker.stdin is not None
        self._stdin = worker.stdin
        self.wall0 = time.monotonic()
        self.interner = Interner()
        self._encoded = ByIdentity(lambda message, _: _encode(message))
        self.records = 0
        self.last_backlog = 0
        self.failure: BaseException | None = None

    def now(self) -> tuple[float, float]:
        clock = self.stack.clock
        return (round(clock.sim_seconds(), 3) if clock else 0.0), round(time.monotonic() - self.wall0, 4)

    def record(self, hop: str, channel: str, direction: str, message: Any, *, status: int | None = None,
               user_id: int | None = None, socket_id: int | None = None, charger_id: str | None = None,
               request_id: str | None = None) -> None:
        if self.failure is not None or self._stdin.is_closing():
            return
        t_sim, t_wall = self.now()
        record = TraceRecord(hop=hop, channel=channel, direction=direction, message=message, t_sim=t_sim,
                             t_wall=t_wall, status=status, user_id=user_id, socket_id=socket_id,
                             charger_id=charger_id, request_id=request_id, **correlation_ids(message))
        try:
            line = encode_record(record, message_json=self._encoded.get(message))
        except TraceError as error:  # a bug of ours: stop the run, keep the stack
            log.error("the harness cannot encode a record on %s: %s", channel, error)
            self.failure = error
            return
        self._stdin.write(line.encode())
        self.records += 1

    def control(self, **line: Any) -> None:
        """A control line for the worker (``tick``, ``status``)."""
        if not self._stdin.is_closing():
            self._stdin.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")

    def behind(self) -> int:
        """Bytes written and not yet read by the worker."""
        transport = self._stdin.transport
        return transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0


def _encode(message: Any) -> str:
    """The message's JSON; one JSON cannot hold (NaN parsed from a frame) goes in as text, for the checks to flag."""
    try:
        return encode_message(message)
    except (TypeError, ValueError):
        return encode_message(f"not JSON: {message!r}")


def _stations(stack: AnyStack) -> dict[str, StationTruth]:
    truth = {}
    for station in stack.world.network.stations:
        statuses = [c.status for cp in station.charge_points for c in cp.connectors]
        counts = count_classes(statuses)
        under = station.under_maintenance
        status = station_status(available=counts["available"], total=len(statuses),
                                unavailable=counts["unavailable"], under_maintenance=under)
        truth[station.id] = StationTruth(status, 0 if under else counts["available"], len(statuses))
    return truth


def _tap_redis(url: str, taps: _Taps, ready: asyncio.Event) -> Coroutine[Any, Any, None]:
    return tap_redis(url, lambda channel, message: taps.record("redis", channel, "publish", message), ready,
                     parse=taps.interner.parse)


async def run_scenario(scenario: Scenario, *, out: Path, settings: Settings, speed: float | None = None,
                       console: Console | None = None, trace: str = "full",
                       progress: Literal["bar", "lines", "quiet"] = "quiet",
                       target: Target | None = None) -> dict[str, Any]:
    """Run ``scenario`` end to end; the worker writes the trace (``trace``: full, violations or none),
    results.json and junit.xml into ``out``; the results document.

    With ``console`` (standard error), the worker shows the first violations
    of each rule as they are found, and ``progress`` as a bar or a status
    line every 10 s. A run stopped early (Ctrl-C, the model or the Redis tap
    failed) still writes its results, marked incomplete. :class:`HarnessError`
    when the worker could not judge the run.
    """
    out.mkdir(parents=True, exist_ok=True)
    speed = speed or scenario.run.speed or 60.0
    # first, so that its start (imports, the contracts' validator) overlaps the world's building
    worker = await _start_worker(out, trace=trace, progress=progress if console is not None else "off")
    holder: dict[str, Any] = {}
    lags = Distribution(3, scale=1e6)
    backlog = Distribution(3, scale=1.0)
    behind = Distribution(3, scale=1.0)
    try:
        stack = _stack(scenario, settings=settings, speed=speed, holder=holder, on_lag=lags.add, target=target)
        kpis, city = KpiCollector(stack.world), CitySeries(stack.world,
                                                           bucket_s=default_latency_bucket(scenario.run.duration))
        stack.world.subscribe(kpis)
        stack.world.subscribe(city)
        taps = holder["taps"] = _Taps(stack, worker)
        stack.world.subscribe(ModelTap(taps.twin))
        taps.twin(RUN, "start", _header(scenario, stack, speed=speed, trace=trace).to_message())
        started = time.monotonic()
        stopped: str | None = None
        await stack.start()
    except BaseException:
        worker.kill()  # no run to judge
        await worker.wait()
        raise
    ended_t_wall, after_settle, gateway = None, 0, None
    try:
        ready = asyncio.Event()
        tap = asyncio.get_running_loop().create_task(
            _tap_redis(stack.urls.redis, taps, ready) if stack.urls.redis else _no_redis(ready))
        await asyncio.wait_for(ready.wait(), 10)
        stopped = await _run_for(stack, scenario.run.duration, taps, (backlog, behind), console, redis_tap=tap,
                                 status=lambda: _status(stack, holder))
        ended_t_wall = taps.now()[1]
        assert stack.runner is not None
        await stack.runner.stop()  # freeze the model; what is in flight arrives
        if not await _wait_out(SETTLE_S, console):
            stopped = stopped or "interrupted while the last messages settled"
        after_settle = _backlog(stack)
        for message in station_messages(_stations(stack)):
            taps.twin(STATION, "state", message)
        if holder.get("apps") is not None:
            await holder["apps"].close(record=False)
        await asyncio.sleep(0.2)
        tap.cancel()
        await asyncio.gather(tap, return_exceptions=True)  # its failure, if any, is the run's stopped reason
        gateway = stack.gateway.metrics() if stack.gateway is not None else None
    except Exception as error:  # something of ours broke mid-run: say so, and judge what ran
        log.exception("the run failed")
        stopped = stopped or f"the run failed: {_said(error)}"
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
        "harness_behind_bytes": behind.summary(digits=0),
        "scenario_ended_t_wall": ended_t_wall if ended_t_wall is not None else taps.now()[1],
    }
    if taps.failure is not None:
        stopped = stopped or f"the harness failed: {_said(taps.failure)}"
    end = RunEnd(complete=stopped is None, stopped=stopped, wall_seconds=round(time.monotonic() - started, 2),
                 metrics=metrics)
    taps.failure = None
    taps.twin(TWIN_END, "end", end.to_message())
    return await _finish_worker(worker, out)


async def _no_redis(ready: asyncio.Event) -> None:
    """A target without a Redis to tap: the run goes on without it."""
    ready.set()
    await asyncio.Future()


def _stack(scenario: Scenario, *, settings: Settings, speed: float, holder: dict[str, Any],
           on_lag: Callable[[float], None], target: Target | None = None) -> Stack | TargetStack:
    """The stack, its apps, charge points and CMS calls tapped (through ``holder["taps"]``, set before it starts).

    With ``target``, someone else's services (:class:`TargetStack`): only the apps and charge points are ours.
    """

    def apps(stack: Stack | TargetStack) -> AppUsers:
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

    if target is not None:
        return TargetStack(scenario, target, speed=speed, app_factory=apps, ocpp_tap=ocpp_tap, on_lag=on_lag)
    delivery = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=MAX_IN_FLIGHT,
                                                             max_keepalive_connections=MAX_IN_FLIGHT))
    return Stack(scenario, settings=settings, speed=speed, app_factory=apps, ocpp_tap=ocpp_tap,
                 cms_transport=TappingTransport(http_tap, hop="backend-cms", channel_prefix="cms:"),
                 events_transport=TappingTransport(http_tap, hop="cms-backend", channel_prefix="backend:",
                                                   inner=delivery),
                 on_lag=on_lag)


def _header(scenario: Scenario, stack: AnyStack, *, speed: float, trace: str) -> RunHeader:
    """The run's ``twin:run`` header: what ran, the checks' parameters and limits, the tariffs."""
    return RunHeader(
        scenario={"name": scenario.name, "source": scenario.source, "seed": scenario.run.seed, "speed": speed,
                  "duration_s": scenario.run.duration, "start": scenario.run.start.isoformat()},
        params=CheckParams(deadline_s=scenario.checks.session_started_deadline_s),
        thresholds=Thresholds.of(scenario.checks),
        tariffs={s.id: s.spec.tariff_per_kwh for s in stack.world.network.stations}, taps=("heartbeat",),
        trace=trace)


async def _start_worker(out: Path, *, trace: str, progress: str) -> asyncio.subprocess.Process:
    """The harness's worker (:mod:`.worker`), reading the run's lines on its standard input."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargetwin.harness.worker", "--out", str(out), "--trace", trace,
        "--progress", progress, stdin=asyncio.subprocess.PIPE)
    assert worker.stdin is not None
    transport = worker.stdin.transport
    if isinstance(transport, asyncio.WriteTransport):  # a burst may run ahead of the worker: do not block the loop
        transport.set_write_buffer_limits(high=64 << 20)
    return worker


async def _finish_worker(worker: asyncio.subprocess.Process, out: Path) -> dict[str, Any]:
    """Close the worker's input, wait for its verdict, and read the results it wrote."""
    assert worker.stdin is not None
    with suppress(ConnectionError):
        await worker.stdin.drain()
    worker.stdin.close()
    with suppress(ConnectionError):
        await worker.stdin.wait_closed()
    code = await worker.wait()
    results = out / "results.json"
    if code != 0 or not results.exists():
        raise HarnessError(f"the harness's worker failed (exit {code}); its message is above")
    document: dict[str, Any] = json.loads(results.read_text(encoding="utf-8"))
    return document


def _backlog(stack: AnyStack) -> int:
    """CMS events queued or in flight to the backend: the first queue to grow when the stack saturates."""
    delivery = stack.cms.delivery if stack.cms is not None else None
    return delivery.pending if delivery is not None else 0


def _status(stack: AnyStack, holder: dict[str, Any]) -> dict[str, Any]:
    """Where the run stands, for the worker's live display."""
    clock, apps = stack.clock, holder.get("apps")
    return {"done_s": round(clock.sim_seconds(), 1) if clock else 0.0,
            "clock": f"{clock.now():%H:%M}" if clock else "--:--",
            "sessions": apps.metrics.starts_accepted if apps else 0, "backlog": _backlog(stack)}


async def _run_for(stack: AnyStack, duration: float, taps: _Taps, samples: tuple[Distribution, Distribution],
                   console: Console | None, *, redis_tap: asyncio.Task[None],
                   status: Callable[[], dict[str, Any]]) -> str | None:
    """Wait out the scenario's duration; every half second tick the pipeline, tell it where the run stands,
    and sample the CMS's event backlog and how far the worker is behind.

    Returns why the run stopped early (None: it ran its whole duration):
    Ctrl-C, the model failed, the worker did, or the Redis tap stopped (the
    checks would go on blind to every publish).
    """
    assert stack.clock is not None
    clock = stack.clock
    backlog, behind = samples
    try:
        while clock.sim_seconds() < duration:
            await asyncio.sleep(min(TICK_S, (duration - clock.sim_seconds()) / clock.speed + 0.01))
            taps.last_backlog = _backlog(stack)
            backlog.add(taps.last_backlog)
            behind.add(taps.behind())
            taps.control(tick=list(taps.now()), status=status())
            if stack.runner is not None and stack.runner.failure is not None:
                return f"the model failed: {_said(stack.runner.failure)}"
            if taps.failure is not None:
                return f"the harness failed: {_said(taps.failure)}"
            if taps.worker.returncode is not None:
                return f"the harness's worker stopped (exit {taps.worker.returncode})"
            if redis_tap.done():
                return f"the Redis tap stopped: {_said(None if redis_tap.cancelled() else redis_tap.exception())}"
    except asyncio.CancelledError:  # the first Ctrl-C: stop, and report what ran
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        if console is not None:
            console.print("chargetwin: interrupted; writing the results of what ran (Ctrl-C again to abort)")
        return f"interrupted at {clock.now():%H:%M:%S} simulated, {clock.sim_seconds() / duration:.0%} of the scenario"
    return None


def _said(error: BaseException | None) -> str:
    """An exception in words: its kind and message."""
    return "no error" if error is None else f"{type(error).__name__}: {error}"


async def _wait_out(seconds: float, console: Console | None) -> bool:
    """Sleep ``seconds``; False when the first Ctrl-C cut it short (the results are still written)."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        if console is not None:
            console.print("chargetwin: interrupted; writing the results of what ran (Ctrl-C again to abort)")
        return False
    return True


def with_speed(scenario: Scenario, speed: float | None) -> Scenario:
    """``scenario`` with its run speed replaced (None keeps it)."""
    return scenario if speed is None else replace(scenario, run=replace(scenario.run, speed=speed))
