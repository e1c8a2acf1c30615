"""A scenario run: the model drives the whole stack, taps record every hop, checks judge the trace.

:func:`run_scenario` starts the :class:`~chargetwin.twin.stack.Stack` with
simulated apps (:class:`~.apps.AppUsers`) for the model's drivers, taps the
app <-> backend REST calls, every Redis message, every WebSocket message each
app receives and every OCPP frame into ``trace.ndjson``, runs the scenario
for its duration at its speed, lets the last messages settle, and then runs
every check of :mod:`.invariants` over the trace against the model's ground
truth. It writes ``results.json`` and ``junit.xml`` (:mod:`.results`).

Not tapped yet: the backend <-> CMS REST calls and the CMS -> backend events.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections import Counter, defaultdict
from contextlib import suppress
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .. import __version__
from ..contracts import default_validator
from ..contracts.status import count_classes, station_status
from ..twin.model import events as ev
from ..twin.model.config import Scenario
from ..twin.model.kpi import KpiCollector, percentiles
from ..twin.services.settings import Settings
from ..twin.stack import Stack
from .apps import AppUsers
from .invariants import GroundTruth, StationTruth, run_checks
from .latency import LATENCIES, latency_summary
from .results import results_document, write_results
from .trace import TraceRecord, TraceWriter, read_trace

__all__ = ["SETTLE_S", "run_scenario"]

SETTLE_S = 2.0
"""Wall seconds between freezing the model and judging: messages in flight arrive."""

_OCPP_DIRECTION = {"receive": "send", "send": "receive"}  # the CMS's view -> the charge point's (trace)


class _Taps:
    """Writes every tapped message as a trace record, stamped with simulated and wall time."""

    def __init__(self, writer: TraceWriter, stack: Stack) -> None:
        self.writer, self.stack = writer, stack
        self.wall0 = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.violations = 0
        self._validator = default_validator()

    def record(self, hop: str, channel: str, direction: str, message: Any, *, status: int | None = None,
               user_id: int | None = None, socket_id: int | None = None, charger_id: str | None = None) -> None:
        clock = self.stack.clock
        record = TraceRecord(hop=hop, channel=channel, direction=direction, message=message,
                             t_sim=round(clock.sim_seconds(), 3) if clock else 0.0,
                             t_wall=round(time.monotonic() - self.wall0, 4), status=status, user_id=user_id,
                             socket_id=socket_id, charger_id=charger_id, **_ids(message))
        self.writer.write(record)
        self.counts[hop] += 1
        with suppress(Exception):  # an unknown channel is judged by the checks, not here
            self.violations += len(self._validator.validate(message, channel=channel, direction=direction,
                                                             status=status))

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


class _Truth:
    """The model's ground truth: each transaction's energy over time, by user, charge point and connector."""

    def __init__(self) -> None:
        self.curves: dict[int, list[tuple[float, float]]] = defaultdict(list)
        self.starts: dict[tuple[int, str, int], list[tuple[float, int]]] = defaultdict(list)

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.TransactionStarted):
            self.starts[event.user_id, event.charge_point_id, event.connector_id].append(
                (event.t, event.session_id))
            self.curves[event.session_id].append((event.t, 0.0))
        elif isinstance(event, ev.MeterSample | ev.TransactionStopped):
            self.curves[event.session_id].append((event.t, float(event.energy_wh)))

    def energy_by_app_session(self, records: list[TraceRecord], offset: float) -> dict[int, list[tuple[float, float]]]:
        """Energy curves keyed by the backend's session ids, matched through each app's start call."""
        curves: dict[int, list[tuple[float, float]]] = {}
        for record in records:
            message = record.message
            if (record.hop != "app-backend" or record.direction != "response" or record.status != 200
                    or record.channel != "backend:/api/charging/start" or not isinstance(message, dict)):
                continue
            data = message.get("data", {})
            starts = self.starts.get((record.user_id or 0, data.get("charger_id"), data.get("connector_id")))
            if not starts:
                continue
            times = [t for t, _ in starts]
            index = max(0, bisect.bisect_right(times, record.t_sim + 60.0) - 1)  # the start the call caused
            model_session = starts[index][1]
            curves[data["session_id"]] = [(t + offset, wh) for t, wh in self.curves[model_session]]
        return curves


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
                try:
                    message: Any = json.loads(item["data"])
                except ValueError:
                    message = item["data"].decode(errors="replace")
                taps.record("redis", f"redis:{item['channel'].decode()}", "publish", message)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def run_scenario(scenario: Scenario, *, out: Path, settings: Settings, speed: float | None = None,
                       console: Console | None = None) -> dict[str, Any]:
    """Run ``scenario`` end to end; write the trace, results.json and junit.xml into ``out``; the results."""
    out.mkdir(parents=True, exist_ok=True)
    trace_path = out / "trace.ndjson"
    trace_path.unlink(missing_ok=True)
    speed = speed or scenario.run.speed or 60.0
    truth = _Truth()
    holder: dict[str, Any] = {}

    def apps(stack: Stack) -> AppUsers:
        users = AppUsers(stack.world, backend_url=stack.urls.backend, gateway_url=stack.urls.gateway,
                         token_for=stack.token, on_traffic=holder["taps"].app)
        holder["apps"] = users
        return users

    def ocpp_tap(charge_point_id: str, direction: str, frame: str) -> None:
        if "taps" in holder:
            holder["taps"].ocpp(charge_point_id, direction, frame)

    stack = Stack(scenario, settings=settings, speed=speed, app_factory=apps, ocpp_tap=ocpp_tap)
    stack.world.subscribe(truth)
    kpis = KpiCollector(stack.world)
    stack.world.subscribe(kpis)
    started = time.monotonic()
    with TraceWriter(trace_path) as writer:
        taps = holder["taps"] = _Taps(writer, stack)
        await stack.start()
        try:
            ready = asyncio.Event()
            tap = asyncio.get_running_loop().create_task(_tap_redis(stack.urls.redis, taps, ready))
            await asyncio.wait_for(ready.wait(), 10)
            await _run_for(stack, scenario.run.duration, taps, holder.get("apps"), console)
            assert stack.runner is not None
            lags = list(stack.runner.lags)
            await stack.runner.stop()  # freeze the model; what is in flight arrives
            await asyncio.sleep(SETTLE_S)
            stations = _stations(stack)
            if holder.get("apps") is not None:
                await holder["apps"].close(record=False)
            await asyncio.sleep(0.2)
            tap.cancel()
            with suppress(asyncio.CancelledError):
                await tap
            gateway = stack.gateway.metrics() if stack.gateway is not None else None
        finally:
            await stack.stop()
    wall = time.monotonic() - started
    records = list(read_trace(trace_path))
    offset = 0.0
    ground = GroundTruth(energy_wh=truth.energy_by_app_session(records, offset), stations=stations,
                         tariffs={s.id: s.spec.tariff_per_kwh for s in stack.world.network.stations})
    checks = run_checks(records, ground, deadline_s=scenario.checks.session_started_deadline_s)
    metrics = _metrics(taps, holder.get("apps"), gateway, lags, kpis, wall, len(records))
    metrics["latency_ms"] = latency_summary(records)
    thresholds = _thresholds(scenario, checks, metrics)
    document = results_document(
        checks, scenario={"name": scenario.name, "source": scenario.source, "seed": scenario.run.seed,
                          "speed": speed, "duration_s": scenario.run.duration},
        metrics=metrics, versions={"chargetwin": __version__}, thresholds_failed=thresholds)
    write_results(out, document, checks)
    return document


async def _run_for(stack: Stack, duration: float, taps: _Taps, apps: AppUsers | None,
                   console: Console | None) -> None:
    assert stack.clock is not None
    clock = stack.clock
    if console is None:
        while clock.sim_seconds() < duration:
            await asyncio.sleep(min(0.5, (duration - clock.sim_seconds()) / clock.speed + 0.01))
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[state]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(f"running {stack.scenario.name}", total=duration, state="")
        while clock.sim_seconds() < duration:
            await asyncio.sleep(0.5)
            sessions = apps.metrics.starts_accepted if apps else 0
            progress.update(task, completed=min(duration, clock.sim_seconds()),
                            state=f"simulated {clock.now():%H:%M}  sessions {sessions}  "
                                  f"messages {sum(taps.counts.values()):,}  violations {taps.violations}")


def _metrics(taps: _Taps, apps: AppUsers | None, gateway: Any, lags: list[float], kpis: KpiCollector,
             wall: float, records: int) -> dict[str, Any]:
    return {
        "wall_seconds": round(wall, 2),
        "messages_checked": records,
        "messages_per_hop": dict(taps.counts),
        "clock_lag_s": percentiles(lags, digits=4),
        "apps": None if apps is None else asdict(apps.metrics),
        "gateway": None if gateway is None else asdict(gateway),
        "model": kpis.result(),
    }


def _thresholds(scenario: Scenario, checks: list[Any], metrics: dict[str, Any]) -> list[str]:
    spec, failed = scenario.checks, []
    violations = sum(len(c.violations) for c in checks)
    if violations > spec.max_violations:
        failed.append(f"{violations} violations > max_violations {spec.max_violations}")
    lag = metrics["clock_lag_s"]["p99"]
    if spec.max_clock_lag_p99_s is not None and lag > spec.max_clock_lag_p99_s:
        failed.append(f"clock lag p99 {lag:.2f} s > {spec.max_clock_lag_p99_s} s")
    for name, limit in spec.latency_p99_ms:
        measured = metrics.get("latency_ms", {}).get(name)
        if measured is None or not measured["count"]:
            failed.append(f"latency {name}: not measured in this run (known: {', '.join(LATENCIES)})")
        elif measured["p99"] > limit:
            failed.append(f"latency {name} p99 {measured['p99']:.0f} ms > {limit:g} ms")
    share = metrics["model"]["balk_share"]
    if spec.max_balk_share is not None and share > spec.max_balk_share:
        failed.append(f"balk share {share:.2%} > {spec.max_balk_share:.2%}")
    return failed


def with_speed(scenario: Scenario, speed: float | None) -> Scenario:
    """``scenario`` with its run speed replaced (None keeps it)."""
    return scenario if speed is None else replace(scenario, run=replace(scenario.run, speed=speed))
