"""A scenario run: the model drives the whole stack, taps record every hop, checks judge the trace.

:func:`run_scenario` starts the :class:`~chargetwin.twin.stack.Stack` with
simulated apps (:class:`~.apps.AppUsers`) for the model's drivers, taps the
app <-> backend REST calls, the backend <-> CMS REST calls and the CMS ->
backend events (at the HTTP transport, :mod:`.http_tap`), every Redis
message, every WebSocket message each app receives and every OCPP frame into
``trace.ndjson``, runs the scenario for its duration at its speed, lets the
last messages settle, and then runs every check of :mod:`.invariants` over
the trace against the model's ground truth, and counts the trace against
the spec's items (:mod:`.coverage`). It writes ``results.json`` and
``junit.xml`` (:mod:`.results`); the command line adds the HTML report.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import platform
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import asdict, replace
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .. import __version__
from ..contracts import UnknownChannelError, Validator, default_validator
from ..contracts.status import count_classes, station_status
from ..twin.model import events as ev
from ..twin.model.config import Scenario
from ..twin.model.kpi import KpiCollector, percentiles
from ..twin.model.series import CitySeries
from ..twin.services.cms.delivery import MAX_IN_FLIGHT
from ..twin.services.settings import Settings
from ..twin.stack import Stack
from ._access import route_key
from ._interning import ByIdentity, Interner
from .apps import AppUsers
from .coverage import coverage
from .http_tap import TappingTransport
from .invariants import CHECKS, CheckResult, GroundTruth, StationTruth, run_checks, schema_and_rules
from .latency import LATENCIES, latency_samples, latency_summary
from .results import results_document, write_results
from .series import default_latency_bucket, latency_histograms, latency_over_time, throughput
from .trace import TraceRecord, TraceWriter, encode_message, read_trace

__all__ = ["SETTLE_S", "run_scenario"]

SETTLE_S = 2.0
"""Wall seconds between freezing the model and judging: messages in flight arrive."""

_OCPP_DIRECTION = {"receive": "send", "send": "receive"}  # the CMS's view -> the charge point's (trace)


class _Taps:
    """Writes every tapped message as a trace record, stamped with simulated and wall time.

    A fan-out's copies (one Redis message per connected user, one frame per
    socket) share one parsed message (:attr:`interner`); each distinct
    message is validated and encoded once per route (:mod:`._interning`).
    """

    def __init__(self, writer: TraceWriter, stack: Stack) -> None:
        self.writer, self.stack = writer, stack
        self.wall0 = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.violations = 0
        self.interner = Interner()
        validator = default_validator()
        self._violations = ByIdentity(lambda message, key: _count_violations(validator, message, *key))
        self._encoded = ByIdentity(lambda message, key: _encode(message))

    def record(self, hop: str, channel: str, direction: str, message: Any, *, status: int | None = None,
               user_id: int | None = None, socket_id: int | None = None, charger_id: str | None = None,
               request_id: str | None = None) -> None:
        clock = self.stack.clock
        record = TraceRecord(hop=hop, channel=channel, direction=direction, message=message,
                             t_sim=round(clock.sim_seconds(), 3) if clock else 0.0,
                             t_wall=round(time.monotonic() - self.wall0, 4), status=status, user_id=user_id,
                             socket_id=socket_id, charger_id=charger_id, request_id=request_id, **_ids(message))
        self.writer.write(record, message_json=self._encoded.get(message))
        self.counts[hop] += 1
        self.violations += self._violations.get(message, (route_key(channel), channel, direction, status))

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


def _encode(message: Any) -> str:
    """The message's JSON; one JSON cannot hold (NaN parsed from a frame) goes in as text, for the checks to flag."""
    try:
        return encode_message(message)
    except (TypeError, ValueError):
        return encode_message(f"not JSON: {message!r}")


def _count_violations(validator: Validator, message: Any, _route: str, channel: str, direction: str,
                      status: int | None) -> int:
    try:
        return len(validator.validate(message, channel=channel, direction=direction, status=status))
    except UnknownChannelError:  # judged by the checks after the run, not here
        return 0


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
                message = taps.interner.parse(item["data"])
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
                                                    inner=delivery))
    stack.world.subscribe(truth)
    kpis = KpiCollector(stack.world)
    stack.world.subscribe(kpis)
    city = CitySeries(stack.world, bucket_s=default_latency_bucket(scenario.run.duration))
    stack.world.subscribe(city)
    started = time.monotonic()
    with TraceWriter(trace_path) as writer:
        taps = holder["taps"] = _Taps(writer, stack)
        await stack.start()
        try:
            ready = asyncio.Event()
            tap = asyncio.get_running_loop().create_task(_tap_redis(stack.urls.redis, taps, ready))
            await asyncio.wait_for(ready.wait(), 10)
            samples = await _run_for(stack, scenario.run.duration, taps, holder.get("apps"), console)
            assert stack.runner is not None
            lags = list(stack.runner.lags)
            await stack.runner.stop()  # freeze the model; what is in flight arrives
            await asyncio.sleep(SETTLE_S)
            backlog = {**percentiles(samples, digits=0), "at_end": samples[-1] if samples else 0,
                       "after_settle": _backlog(stack)}
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
    records, schema = _read_for_checks(trace_path)
    offset = 0.0
    ground = GroundTruth(energy_wh=truth.energy_by_app_session(records, offset), stations=stations,
                         tariffs={s.id: s.spec.tariff_per_kwh for s in stack.world.network.stations})
    checks = run_checks(records, ground, deadline_s=scenario.checks.session_started_deadline_s, schema=schema)
    metrics = _metrics(taps, holder.get("apps"), gateway, lags, kpis, wall, records, backlog)
    metrics["city"] = city.result()
    pairs = list(latency_samples(records))  # pairing the records is the costly part: once for all three
    metrics["latency_ms"] = latency_summary(records, samples=pairs)
    metrics["latency_histograms"] = latency_histograms(records, samples=pairs)
    metrics["latency_over_time"] = latency_over_time(records, bucket_s=default_latency_bucket(scenario.run.duration),
                                                     samples=pairs)
    thresholds = _thresholds(scenario, checks, metrics)
    document = results_document(
        checks, scenario={"name": scenario.name, "source": scenario.source, "seed": scenario.run.seed,
                          "speed": speed, "duration_s": scenario.run.duration,
                          "start": scenario.run.start.isoformat()},
        metrics=metrics, versions=_versions(), thresholds_failed=thresholds, descriptions=CHECKS,
        coverage=coverage(records, schema, heartbeat=_heartbeat(holder.get("apps"))))
    write_results(out, document, checks)
    return document


def _read_for_checks(path: Path) -> tuple[list[TraceRecord], CheckResult]:
    """The trace, each record checked against the contracts as it is read; kept trimmed for the other checks.

    A ``charger_list_update`` holds every station (about 150 KB for a city)
    and every app gets one per connect: the records kept hold only what
    the cross-message checks read of it (:func:`_trimmed`), the contracts
    saw it whole.
    """
    kept: list[TraceRecord] = []

    def stream() -> Iterator[TraceRecord]:
        for record in read_trace(path):
            yield record
            kept.append(_trimmed(record))

    schema = schema_and_rules(stream())
    return kept, schema


_MAP_KEYS = ("station_id", "station_status", "available_connectors", "total_connectors")


def _trimmed(record: TraceRecord) -> TraceRecord:
    """``record``, a ``charger_list_update``'s stations cut down to the keys of :data:`_MAP_KEYS`."""
    message = record.message
    if not (isinstance(message, dict) and message.get("type") == "charger_list_update"
            and isinstance(data := message.get("data"), dict) and isinstance(data.get("chargers"), list)):
        return record
    chargers = [{key: entry[key] for key in _MAP_KEYS if key in entry} if isinstance(entry, dict) else entry
                for entry in data["chargers"]]
    return replace(record, message={**message, "data": {**data, "chargers": chargers}})


def _backlog(stack: Stack) -> int:
    """CMS events queued or in flight to the backend: the first queue to grow when the stack saturates."""
    delivery = stack.cms.delivery if stack.cms is not None else None
    return delivery.pending if delivery is not None else 0


async def _run_for(stack: Stack, duration: float, taps: _Taps, apps: AppUsers | None,
                   console: Console | None) -> list[int]:
    """Wait out the scenario's duration, showing progress; the CMS's event backlog every half second."""
    assert stack.clock is not None
    clock, backlog = stack.clock, []
    with ExitStack() as exit_stack:
        progress = None
        if console is not None:
            columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[state]}"),
                       TimeElapsedColumn())
            progress = exit_stack.enter_context(Progress(*columns, console=console, transient=True))
            task = progress.add_task(f"running {stack.scenario.name}", total=duration, state="")
        while clock.sim_seconds() < duration:
            await asyncio.sleep(min(0.5, (duration - clock.sim_seconds()) / clock.speed + 0.01))
            backlog.append(_backlog(stack))
            if progress is not None:
                sessions = apps.metrics.starts_accepted if apps else 0
                progress.update(task, completed=min(duration, clock.sim_seconds()),
                                state=f"simulated {clock.now():%H:%M}  sessions {sessions}  "
                                      f"messages {sum(taps.counts.values()):,}  violations {taps.violations}  "
                                      f"CMS backlog {backlog[-1]}")
    return backlog


def _metrics(taps: _Taps, apps: AppUsers | None, gateway: Any, lags: list[float], kpis: KpiCollector,
             wall: float, records: list[TraceRecord], backlog: dict[str, Any]) -> dict[str, Any]:
    return {
        "wall_seconds": round(wall, 2),
        "messages_checked": len(records),
        "messages_per_second": round(len(records) / wall, 1) if wall > 0 else 0.0,
        "messages_per_hop": dict(taps.counts),
        "clock_lag_s": percentiles(lags, digits=4),
        "cms_event_backlog": backlog,
        "apps": None if apps is None else asdict(apps.metrics),
        "gateway": None if gateway is None else asdict(gateway),
        "model": kpis.result(),
        "throughput": throughput(records),
    }


def _thresholds(scenario: Scenario, checks: list[Any], metrics: dict[str, Any]) -> list[str]:
    spec, failed = scenario.checks, []
    violations = sum(len(c.violations) for c in checks)
    if violations > spec.max_violations:
        failed.append(f"{violations} violations > max_violations {spec.max_violations}")
    backlog = metrics["cms_event_backlog"]
    if backlog["after_settle"]:
        failed.append(f"the stack saturated: {backlog['after_settle']:,} CMS events still undelivered "
                      f"{SETTLE_S:g} s after the end (backlog peaked at {backlog['max']:,}); try a lower --speed")
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


def _heartbeat(apps: AppUsers | None) -> dict[str, int] | None:
    """The pings the apps got and the pongs they sent (seed "Heartbeat"): the trace has no frame of them."""
    if apps is None:
        return None
    return {"ping": apps.metrics.pings_received, "pong": apps.metrics.pongs_sent}


def _versions() -> dict[str, str]:
    """chargetwin's version and those of the components whose behaviour the run measured."""
    found = {"chargetwin": __version__, "python": platform.python_version()}
    for name in ("ocpp", "websockets", "fastapi", "redis", "simpy"):
        with suppress(PackageNotFoundError):
            found[name] = package_version(name)
    return found


def with_speed(scenario: Scenario, speed: float | None) -> Scenario:
    """``scenario`` with its run speed replaced (None keeps it)."""
    return scenario if speed is None else replace(scenario, run=replace(scenario.run, speed=speed))
