"""The fuzzing phase of ``chargetwin check``: request bodies generated from chargetwin's own OpenAPI document.

schemathesis turns each operation of ``contracts/openapi/backend.openapi.yaml``
(never the target's self-description) into a Hypothesis strategy: bodies
that fit the request schema (positive) and bodies that do not (negative).
Hypothesis runs in a worker thread; each body is sent by the probe on the
event loop, so every answer enters the pipeline and is judged by the
contracts like any other. Each operation and mode is one case:

- positive: no server error (5xx), and an error answer carries the envelope;
- negative: rejected with a 4xx and the error envelope (no 2xx, no 5xx).

A failing case names the smallest body Hypothesis shrank the failure to.
Bounded by ``max_examples`` per operation and mode and by ``max_seconds``
for the whole phase.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..http_tap import parse_body
from .phases import Phase, TestUser, login, stop_once_started
from .probe import Probe, Reply, redacted

__all__ = ["FUZZED", "FuzzFigures", "fuzz_phase", "fuzz_summary"]

FUZZED = ("/api/charging/start", "/api/charging/stop")
"""The operations fuzzed, with a logged-in user's token (login itself is the twin's test facility, N-25)."""


@dataclass
class FuzzFigures:
    """How many bodies were sent, by operation and mode."""

    sent: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.sent.values())


def _problem(reply: Reply, *, positive: bool) -> str | None:
    """What is wrong with an answer to a fuzzed body, or None."""
    if reply.status >= 500:
        return f"a server error: {reply.said()}"
    if reply.status >= 400 and reply.error is None:
        return f"an error without the envelope {{success: false, error, message}}: {reply.said()}"
    if not positive and reply.status < 400:
        return f"a body the contract rejects was accepted: {reply.said()}"
    return None


async def fuzz_phase(probe: Probe, user: TestUser, figures: FuzzFigures, *, max_examples: int,
                     max_seconds: float, wait_s: float, phase: Phase | None = None,
                     connectors: Sequence[tuple[str, int]] = ()) -> Phase:
    """Fuzz :data:`FUZZED` as ``user``; how many bodies went out is counted into ``figures``.

    With ``connectors``, a stateful part follows: schemathesis's state machine
    from the document's links (a start, then the stop its ``StopTheSession``
    link leads to), its starts aimed at the last connector given.
    """
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.core.result import Ok

    from ...contracts.schemas import CONTRACTS_DIR

    phase = phase or Phase("fuzz", "Fuzzing (schemathesis)")
    token = await login(probe, user)
    if token is None:
        phase.expect("login", False, f"user {user.user_id} ({user.email}) must log in to fuzz as a user")
        return phase
    schema = schemathesis.openapi.from_path(str(CONTRACTS_DIR / "openapi" / "backend.openapi.yaml"))
    found = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
    operations = {op.path: op for op in found if op.path in FUZZED}
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + max_seconds
    for path in FUZZED:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            key = f"{path} {mode.value}"
            sent, failure = await asyncio.to_thread(
                _run_hypothesis, operations[path], mode, loop=loop, max_examples=max_examples, deadline=deadline,
                send=lambda body, path=path: probe.post(path, content=_encoded(body), token=token,
                                                        user_id=user.user_id, record_request=False))
            figures.sent[key] = sent
            phase.expect(f"POST {path}, {mode.value} bodies", failure is None,
                         f"{sent} bodies: no server error, every error in the envelope"
                         + ("" if mode.is_positive else ", every body rejected with a 4xx")
                         if failure is None else f"{failure} (the smallest of {sent} bodies that fail)",
                         spec="DESIGN ruling 6, N-21")
    if connectors:
        steps, linked, failure = await asyncio.to_thread(
            _run_stateful, schema, loop=loop, probe=probe, token=token, user_id=user.user_id,
            connector=connectors[-1], max_examples=max(3, max_examples // 5))
        figures.sent["stateful steps"] = steps
        phase.expect("start then stop, through the OpenAPI link", failure is None,
                     f"{steps} calls; {linked} accepted starts followed by their stop through the link "
                     "StopTheSession" if failure is None else failure, spec="1. Start Charging, 2. Stop Charging")
    cleanup, _ = await stop_once_started(probe, token, user.user_id, min(wait_s, 10.0))  # a fuzzed start may stand
    if cleanup.status not in (200, 404):
        phase.expect("no session left behind", False, f"stopping user {user.user_id}'s session: {cleanup.said()}")
    return phase


def _encoded(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode() if body is not None else b""


def _run_hypothesis(operation: Any, mode: Any, *, loop: asyncio.AbstractEventLoop, max_examples: int,
                    deadline: float, send: Any) -> tuple[int, str | None]:
    """Run Hypothesis over ``operation``'s bodies in this (worker) thread; (bodies sent, the failure or None)."""
    from hypothesis import HealthCheck, given, settings

    positive = mode.is_positive
    sent = 0
    last: list[str] = []
    lock = threading.Lock()

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        nonlocal sent
        if time.monotonic() > deadline:
            return
        try:
            encoded = _encoded(case.body)
        except (TypeError, ValueError):  # not JSON (NaN, bytes): not a body an app could send
            return
        reply: Reply = asyncio.run_coroutine_threadsafe(send(case.body), loop).result(timeout=60)
        with lock:
            sent += 1
        problem = _problem(reply, positive=positive)
        if problem is not None:
            last[:] = [f"body {encoded.decode()[:200]}: {problem}"]
            raise AssertionError(last[0])

    try:
        fuzz()
    except AssertionError:
        return sent, last[0] if last else "a body failed"
    except Exception as error:  # the target went away mid-phase, say: a finding, not a crash of ours
        return sent, f"fuzzing stopped: {type(error).__name__}: {error}"
    return sent, None


def _run_stateful(schema: Any, *, loop: asyncio.AbstractEventLoop, probe: Probe, token: str, user_id: int,
                  connector: tuple[str, int], max_examples: int) -> tuple[int, int, str | None]:
    """schemathesis's state machine over the charging operations, sent with ``requests`` from this thread and
    recorded into the probe's pipeline on the loop; (calls, starts followed by their stop, the failure or None).

    Bounded by ``max_examples`` sequences of at most four calls.
    """
    import hypothesis

    machine = schema.include(path_regex="^/api/charging/").as_state_machine()
    base = str(probe.backend_url)
    counts = {"calls": 0, "linked": 0}
    started = {"last": False}

    def record(*args: Any, **kwargs: Any) -> None:
        loop.call_soon_threadsafe(lambda: probe.emit(*args, **kwargs))

    class Probing(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base, "headers": {"Authorization": f"Bearer {token}"}}

        def before_call(self, case: Any) -> None:
            if case.operation.path == "/api/charging/start":  # aimed at a real connector, so the link can be followed
                case.body = {"charger_id": connector[0], "connector_id": connector[1]}
            record("app-backend", f"backend:{case.operation.path}", "request", case.body, user_id=user_id)

        def after_call(self, response: Any, case: Any) -> None:
            counts["calls"] += 1
            path = case.operation.path
            if path == "/api/charging/stop" and started["last"]:
                counts["linked"] += 1
            started["last"] = path == "/api/charging/start" and response.status_code == 200
            record("app-backend", f"backend:{path}", "response", redacted(parse_body(response.content)),
                   status=response.status_code, user_id=user_id)

        def validate_response(self, response: Any, case: Any, **_: Any) -> None:
            problem = _problem(Reply(response.status_code, parse_body(response.content)), positive=True)
            if problem is not None:
                raise AssertionError(f"POST {case.operation.path} {json.dumps(case.body)[:120]}: {problem}")

    try:
        Probing.run(settings=hypothesis.settings(max_examples=max_examples, stateful_step_count=4, deadline=None,
                                                 database=None, derandomize=True,
                                                 suppress_health_check=list(hypothesis.HealthCheck)))
    except AssertionError as error:
        return counts["calls"], counts["linked"], str(error).splitlines()[0][:300]
    except Exception as error:  # the target went away mid-phase, say
        return counts["calls"], counts["linked"], f"the stateful part stopped: {type(error).__name__}: {error}"
    return counts["calls"], counts["linked"], None


def fuzz_summary(figures: FuzzFigures) -> dict[str, Any]:
    """results.json's ``metrics.fuzz``: bodies sent by operation and mode, and in all."""
    return {"bodies": figures.total, "by_operation": dict(figures.sent)}
