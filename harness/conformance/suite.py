"""``chargetwin check``: the conformance suite against someone else's backend and gateway, phase by phase.

Each phase (:mod:`.phases`) drives the target through a :class:`~.probe.Probe`
whose traffic goes into the pipeline of a :class:`~chargetwin.harness.judge.Judge`,
as a run's does: every message is judged against the contracts, and the
cross-message checks (causality, isolation between the two users, meters,
...) judge what they can see. The verdict fails on a case not met or a
violation found. Outputs as a run's: ``results.json`` (with ``cases[]``),
``junit.xml`` (a test case per case and per check) and ``trace.ndjson``
(every record, after the ``twin:run`` header: ``chargetwin validate`` on
it gives the checks' verdict again).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from websockets.exceptions import WebSocketException

from ...twin.services._tasks import cancel_and_wait
from ...twin.services.redis_server import redacted_url
from ..checks import CHECKS, InvariantViolation
from ..checks._base import CheckResult
from ..http_tap import parse_body
from ..judge import Judge, RunEnd, RunHeader
from ..pipeline import Consumer, Found
from ..redis_tap import tap_redis
from ..results import results_document, write_results
from ..trace import TraceRecord, TraceWriter
from ..truth import RUN, TWIN_END
from ..versions import versions
from ..warnings import RULING_ONLY_RULES, SeedWarnings
from .fuzz import FuzzFigures, fuzz_phase, fuzz_summary
from .ocpp import ocpp_attached
from .phases import Case, Phase, TestUser, Tokens, cms_phase, rest_phase, websocket_phase
from .probe import Probe

__all__ = ["CheckTarget", "run_check"]

PER_RULE = 3
"""Violations printed per rule as they are found; results.json has them all."""


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """What ``check`` tests: the URLs, the users the target knows, its chargers, and how to sign as it does.

    ``users``: six: two for the REST phase, two for the WebSocket phase, one to fuzz as, one whose id tag
    the CMS phase starts with (``cms``: the CMS's REST API, or None).
    ``connectors``: (charger_id, connector_id) pairs the target knows, in
    the order to try them (a busy one is skipped). ``tariffs``: price per
    kWh by station, for the cost check. ``sign(user_id, issued_at,
    lifetime_s)`` makes a token with the target's secret, for the expired
    and wrongly signed tokens. ``wait_s``: how long a push may take.
    ``redis``: the Redis the backend publishes to, tapped during the
    WebSocket phase (the Redis phase), or None. ``ocpp``: the target's
    central system, to which the network's charge points (of ``scenario``)
    connect for the whole check, their simulated time at ``ocpp_speed``
    (the OCPP phase), or None. ``strict``: warnings fail the check.
    """

    backend: str
    gateway: str
    users: Sequence[TestUser]
    connectors: Sequence[tuple[str, int]]
    sign: Callable[[int, datetime, float], str]
    network: str = "smoke"
    tariffs: dict[str, float] | None = None
    wait_s: float = 120.0
    max_examples: int = 25
    fuzz_seconds: float = 60.0
    redis: str | None = None
    cms: str | None = None
    strict: bool = False
    ocpp: str | None = None
    ocpp_speed: float = 10.0
    scenario: Any = None


class _TraceAll(Consumer):
    """Every record into ``trace.ndjson``, after the twin:run header: ``chargetwin validate`` reads it again."""

    def __init__(self, path: Path, header: RunHeader) -> None:
        path.unlink(missing_ok=True)
        self.writer = TraceWriter(path)
        self.records = 1
        self.writer.write(TraceRecord(hop="twin", channel=RUN, direction="start", message=header.to_message(),
                                      t_sim=0.0, t_wall=0.0, line=1))

    def on_record(self, record: TraceRecord) -> Found:
        self.writer.write(record)
        self.records += 1
        return None

    def on_end(self, t_sim: float, t_wall: float) -> Found:
        self.writer.write(TraceRecord(hop="twin", channel=TWIN_END, direction="end", t_sim=t_sim, t_wall=t_wall,
                                      message=RunEnd(wall_seconds=t_wall).to_message(), line=self.records + 1))
        self.writer.close()
        return None


class _Printer(Consumer):
    """The first violations of each rule, printed as they are found (a ruling-only rule's as a warning)."""

    def __init__(self, console: Console, *, strict: bool) -> None:
        self.console = console
        self.strict = strict
        self.per_rule: dict[str, int] = {}

    def on_violation(self, violation: InvariantViolation) -> None:
        rule = violation.rule or violation.check
        self.per_rule[rule] = self.per_rule.get(rule, 0) + 1
        if self.per_rule[rule] <= PER_RULE:
            kind = "[yellow]warning[/]" if rule in RULING_ONLY_RULES and not self.strict else "[red]violation[/]"
            self.console.print(f"  {kind} {escape(violation.check)}: {escape(violation.message)}")


async def run_check(target: CheckTarget, *, out: Path, console: Console) -> int:
    """Run every phase against ``target``, write the results into ``out``; 0 conform, 1 not."""
    began = time.monotonic()
    named = {"redis": redacted_url(target.redis) if target.redis else None, "cms": target.cms, "ocpp": target.ocpp}
    header = RunHeader(scenario={"name": "check", "network": target.network, "backend": target.backend,
                                 "gateway": target.gateway, **{k: v for k, v in named.items() if v},
                                 "start": datetime.now().astimezone().isoformat()},
                       tariffs=target.tariffs or {})
    out.mkdir(parents=True, exist_ok=True)
    warnings = SeedWarnings()
    judge = Judge(header, extra=[_Printer(console, strict=target.strict), warnings,
                                 _TraceAll(out / "trace.ndjson", header)])
    probe = Probe(judge.pipeline, backend=target.backend, gateway=target.gateway, cms=target.cms)
    tokens = Tokens(target.sign)
    phases: list[Phase] = []
    rest, websocket = target.users[:2], target.users[2:4]
    figures = FuzzFigures({})
    try:
        steps: list[tuple[Phase, Callable[[Phase], Coroutine[Any, Any, Phase]]]] = [
                (Phase("rest", "REST contract"),
                 lambda phase: rest_phase(probe, rest, target.connectors, tokens, wait_s=target.wait_s, phase=phase)),
                (Phase("fuzz", "Fuzzing (schemathesis)"),
                 lambda phase: fuzz_phase(probe, target.users[4], figures, max_examples=target.max_examples,
                                          max_seconds=target.fuzz_seconds, wait_s=target.wait_s, phase=phase,
                                          connectors=target.connectors)),
                *([(Phase("cms", "CMS REST API"),
                    lambda phase: cms_phase(probe, target.users[5].id_tag, target.connectors, wait_s=target.wait_s,
                                            with_charge_points=target.ocpp is not None, phase=phase))]
                  if target.cms is not None else []),
                (Phase("websocket", "WebSocket contract"),
                 lambda phase: websocket_phase(probe, websocket, target.connectors, tokens, wait_s=target.wait_s,
                                               phase=phase))]
        async with contextlib.AsyncExitStack() as attached:
            ocpp_phase = Phase("ocpp", "OCPP 1.6J")
            if target.ocpp is not None:
                console.print(f"[bold]{ocpp_phase.title}[/]: the network's charge points connect to "
                              f"{escape(target.ocpp)}")
                await attached.enter_async_context(ocpp_attached(probe, target.ocpp, target.scenario, ocpp_phase,
                                                                 speed=target.ocpp_speed))
                for case in ocpp_phase.cases:
                    _print_case(console, case)
            for phase, running in steps:
                console.print(f"[bold]{phase.title}[/]")
                if phase.name == "websocket" and target.redis is not None:
                    redis_phase = Phase("redis", "Redis")
                    async with _redis_tapped(probe, target.redis, redis_phase, judge):
                        phases.append(await _guarded(phase, running(phase)))
                    _print_phase(console, phase)
                    console.print(f"[bold]{redis_phase.title}[/]")
                    phases.append(redis_phase)
                    _print_phase(console, redis_phase)
                    continue
                phases.append(await _guarded(phase, running(phase)))
                _print_phase(console, phase)
        if target.ocpp is not None:
            console.print(f"[bold]{ocpp_phase.title}[/]")
            phases.append(ocpp_phase)
            _print_phase(console, ocpp_phase)
    finally:
        await probe.aclose()
    judge.pipeline.end()
    cases = [case for phase in phases for case in phase.cases]
    checks = judge.checks.results()
    if target.strict:
        cases = [replace(c, warning=False) for c in cases]
        if warnings.count:
            counted = ", ".join(f"{rule} {n}" for rule, n in warnings.counts.items())
            cases.append(Case("warnings", "no warnings (--strict)", False, f"{warnings.count} warnings: {counted}",
                              spec="DESIGN ruling 9"))
    else:
        checks = _demoted(checks, warnings)
    for case in cases:
        if case.warning:
            warnings.add(f"case: {case.name}", case.message, case.spec)
    wall = time.monotonic() - began
    metrics = judge.metrics(RunEnd(wall_seconds=wall))
    metrics["cases"] = len(cases)
    metrics["fuzz"] = fuzz_summary(figures)
    document = results_document(checks, scenario=header.scenario, metrics=metrics, versions=versions(),
                                descriptions=CHECKS, coverage=judge.coverage.result(), cases=cases)
    document["warnings"] = warnings.results()
    document["strict"] = target.strict
    write_results(out, document, checks, cases=cases)
    report = _report(out)
    _print_warnings(console, warnings)
    failed_cases = [c for c in cases if not c.passed and not c.warning]
    judged = [c for c in checks if c.checked]
    console.print(f"[bold]checks[/] of every message ({judge.pipeline.observations:,} recorded):")
    for check in judged:
        mark = "[red]FAIL[/]" if check.violation_count else "[green]ok[/]"
        console.print(f"  {mark} {check.name}: {check.checked:,} checked, {check.violation_count:,} violations")
    verdict = "FAIL" if document["verdict"] == "fail" else "PASS"
    colour = "red" if verdict == "FAIL" else "green"
    console.print(f"[bold {colour}]check: {verdict}[/]: {len(cases) - len(failed_cases)} of {len(cases)} cases "
                  f"met, {sum(c.violation_count for c in checks):,} violations, {warnings.count:,} warnings"
                  f"{' (--strict)' if target.strict else ''}, {wall:.1f} s")
    console.print(f"results: {out / 'results.json'}  junit: {out / 'junit.xml'}  trace: {out / 'trace.ndjson'}",
                  markup=False, highlight=False)
    if report is not None:
        console.print(f"report: {report}  (open it in a browser: {report.resolve().as_uri()})", markup=False,
                      highlight=False)
    return 1 if verdict == "FAIL" else 0


class _RedisSeen(Consumer):
    """Messages seen on each user's Redis channels."""

    def __init__(self) -> None:
        self.by_user: dict[int, int] = {}

    def on_record(self, record: TraceRecord) -> Found:
        if record.hop == "redis":
            parts = record.channel.split(":")
            if len(parts) == 4 and parts[2].isdigit():
                self.by_user[int(parts[2])] = self.by_user.get(int(parts[2]), 0) + 1
        return None


@contextlib.asynccontextmanager
async def _redis_tapped(probe: Probe, url: str, phase: Phase, judge: Judge) -> AsyncIterator[None]:
    """Tap ``url``'s user channels into the pipeline meanwhile; the Redis phase's cases into ``phase``."""
    seen = _RedisSeen()
    judge.pipeline.subscribe(seen)
    ready = asyncio.Event()
    tap = asyncio.get_running_loop().create_task(tap_redis(
        url, lambda channel, message: probe.emit("redis", channel, "publish", message), ready,
        parse=parse_body))
    await asyncio.wait({tap, asyncio.ensure_future(ready.wait())}, timeout=10.0,
                       return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        phase.expect("subscribed to the users' channels", True, f"user:* on {redacted_url(url)}")
    else:
        why = f"{type(tap.exception()).__name__}: {tap.exception()}" if tap.done() and tap.exception() else \
            "no answer within 10 s"
        phase.expect("subscribed to the users' channels", False, f"cannot subscribe on {redacted_url(url)}: {why}")
    try:
        yield
    finally:
        await cancel_and_wait((tap,))
    if ready.is_set():
        users = sorted(seen.by_user)
        phase.expect("the sessions' messages went through Redis", bool(seen.by_user),
                     f"{sum(seen.by_user.values())} messages on the channels of users {users}" if users else
                     "nothing was published on any user's channel while sessions ran", spec="3. Redis")


async def _guarded(phase: Phase, running: Coroutine[Any, Any, Phase]) -> Phase:
    """``phase`` once ``running`` filled it; with a case not met when the target stopped answering midway."""
    try:
        return await running
    except (httpx.HTTPError, OSError, WebSocketException) as error:
        said = str(error) or "no answer"
        phase.expect("the target answered", False, f"the phase stopped: {type(error).__name__}: {said}")
        return phase


def _report(out: Path) -> Path | None:
    """``report.html`` beside the results; None (and why) when it cannot be written: the verdict stands."""
    from ...reports import ReportError, write_report

    try:
        return write_report(out / "results.json", out / "report.html")
    except (ReportError, OSError) as error:
        print(f"chargetwin: the HTML report could not be written: {error}", file=sys.stderr)
        return None


def _demoted(checks: list[CheckResult], warnings: SeedWarnings) -> list[CheckResult]:
    """``checks`` without the violations of :data:`RULING_ONLY_RULES`, which become ``warnings``."""
    kept = []
    for check in checks:
        moved = [v for v in check.violations if v.rule in RULING_ONLY_RULES]
        if not moved:
            kept.append(check)
            continue
        for violation in moved:
            warnings.add(violation.rule or check.name, violation.message, "DESIGN ruling 5",
                         violation.records[0] if violation.records else None)
        rules = {r: n for r, n in (check.rules or {}).items() if r not in RULING_ONLY_RULES}
        count = check.violation_count - sum(n for r, n in (check.rules or {}).items() if r in RULING_ONLY_RULES)
        kept.append(replace(check, violations=[v for v in check.violations if v.rule not in RULING_ONLY_RULES],
                            count=count, rules=rules))
    return kept


def _print_warnings(console: Console, warnings: SeedWarnings) -> None:
    if not warnings.count:
        return
    console.print("[bold]warnings[/]: what a ruling allows or asks for but the seed's examples do not show "
                  "(--strict makes them fail):")
    for rule, count in warnings.counts.items():
        first = warnings.kept[rule][0].message if warnings.kept.get(rule) else ""
        console.print(f"  [yellow]warning[/] {escape(rule)} ({count}): {escape(first)}")


def _print_phase(console: Console, phase: Phase) -> None:
    for case in phase.cases:
        _print_case(console, case)
    met = sum(1 for c in phase.cases if c.passed)
    warned = sum(1 for c in phase.cases if c.warning)
    console.print(f"  {phase.title}: {met} of {len(phase.cases)} cases met"
                  + (f", {warned} not met where only a ruling asks (warnings)" if warned else ""))


def _print_case(console: Console, case: Case) -> None:
    mark = "[green]ok[/]  " if case.passed else "[yellow]WARN[/]" if case.warning else "[red]FAIL[/]"
    console.print(f"  {mark} {escape(case.name)}: {escape(case.message)}")
