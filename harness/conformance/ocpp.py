"""The OCPP phase of ``chargetwin check``: the twin's charge points on someone else's central system.

With ``--ocpp URL``, one simulated charge point per charging point of the
network connects to ``URL/{charge_point_id}`` (OCPP 1.6J), boots and
reports its connectors' statuses, and stays connected while the other
phases run: their sessions go app -> backend -> the target's CMS -> our
charge point -> the target's CMS -> backend -> Redis -> gateway -> app.
Every frame both ways is recorded into the pipeline and its payload
validated against the OCPP 1.6J JSON schema of its action, as the ``ocpp``
package ships them (:class:`OcppPayloads`); a CALLRESULT is validated
against the ``...Response`` schema of the CALL it answers.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..pipeline import Consumer, Found
from ..trace import TraceRecord
from .phases import Phase
from .probe import Probe

__all__ = ["OcppPayloads", "ocpp_attached"]

_PENDING_KEPT = 10_000
"""CALLs remembered until answered (by charge point and unique id); the oldest are forgotten beyond this."""

_SHOWN = 3
"""Invalid frames named in the case's message."""


def _schemas_dir() -> Path:
    import ocpp.v16

    return Path(ocpp.v16.__file__).parent / "schemas"


class OcppPayloads(Consumer):
    """Validates each OCPP frame's payload against the OCPP 1.6J schema of its action; counts what it saw.

    ``calls[(action, direction)]``: CALLs by action and by who sent them
    (``send``: the charge point; ``receive``: the central system);
    ``answered[(action, direction)]``: their CALLRESULTs, by who answered;
    ``errors``: CALLERRORs by error code; ``invalid``: the first frames
    that broke their schema, in words, and ``invalid_count`` all of them.
    """

    def __init__(self) -> None:
        self._validators: dict[str, Any] = {}
        self._pending: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.frames = 0
        self.calls: Counter[tuple[str, str]] = Counter()
        self.answered: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[str] = Counter()
        self.invalid: list[str] = []
        self.invalid_count = 0

    def on_record(self, record: TraceRecord) -> Found:
        if record.hop != "ocpp":
            return None
        self.frames += 1
        frame = record.message
        if not isinstance(frame, list) or not frame or frame[0] not in (2, 3, 4):
            self._bad(record, "?", "not an OCPP-J frame")
            return None
        if frame[0] == 2 and len(frame) == 4 and isinstance(frame[1], str) and isinstance(frame[2], str):
            action = frame[2]
            self._pending[(record.channel, frame[1])] = action
            while len(self._pending) > _PENDING_KEPT:
                self._pending.popitem(last=False)
            self.calls[(action, record.direction)] += 1
            self._validate(record, action, action, frame[3])
        elif frame[0] == 3 and len(frame) == 3 and isinstance(frame[1], str):
            action = self._pending.pop((record.channel, frame[1]), "")
            if not action:
                self._bad(record, "?", f"a CALLRESULT to no CALL seen (unique id {frame[1]!r})")
                return None
            self.answered[(action, record.direction)] += 1
            self._validate(record, action, f"{action}Response", frame[2])
        elif frame[0] == 4 and len(frame) == 5 and isinstance(frame[1], str):
            self._pending.pop((record.channel, frame[1]), None)
            self.errors[str(frame[2])] += 1
        else:
            self._bad(record, "?", f"a malformed frame: {json.dumps(frame)[:120]}")
        return None

    def _validate(self, record: TraceRecord, action: str, schema: str, payload: Any) -> None:
        validator = self._validator(schema)
        if validator is None:
            self._bad(record, action, f"no OCPP 1.6J action {action!r}")
            return
        for error in validator.iter_errors(payload):
            self._bad(record, action, f"{schema}: {error.message}")
            break

    def _validator(self, schema: str) -> Any:
        if schema not in self._validators:
            import jsonschema_rs

            path = _schemas_dir() / f"{schema}.json"
            self._validators[schema] = (jsonschema_rs.validator_for(json.loads(path.read_text(encoding="utf-8")))
                                        if path.is_file() else None)
        return self._validators[schema]

    def _bad(self, record: TraceRecord, action: str, why: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < _SHOWN:
            who = "the charge point" if record.direction == "send" else "the central system"
            self.invalid.append(f"{record.channel} from {who}, {action}: {why}")


@contextlib.asynccontextmanager
async def ocpp_attached(probe: Probe, url: str, scenario: Any, phase: Phase, *, speed: float,
                        boot_timeout: float = 30.0) -> AsyncIterator[OcppPayloads]:
    """The network's charge points connected to ``url`` meanwhile; the OCPP phase's cases into ``phase``."""
    from ...twin.clock import SimClock
    from ...twin.model.world import World
    from ...twin.runner import ModelRunner
    from ...twin.services.chargepoints import ChargePointFleet
    from ...twin.services.settings import Settings

    quiet = replace(scenario, demand=replace(scenario.demand, scale=0.0))  # only the check's users charge
    world = World(quiet)
    clock = SimClock(datetime.now(scenario.run.start.tzinfo).replace(microsecond=0), speed=speed, held=True)
    payloads = OcppPayloads()
    probe.pipeline.subscribe(payloads)

    def tap(charge_point_id: str, direction: str, frame: str) -> None:
        try:
            message: Any = json.loads(frame)
        except ValueError:
            message = frame
        probe.emit("ocpp", f"ocpp:{charge_point_id}", direction, message, charger_id=charge_point_id)

    fleet = ChargePointFleet(world, Settings(), clock, ocpp_url=url.rstrip("/"), tap=tap, reconnect_max=2.0)
    runner: ModelRunner | None = None
    await fleet.start()
    try:
        total = len(fleet.charge_points)
        with contextlib.suppress(TimeoutError):
            await fleet.wait_ready(boot_timeout)
        booted = [cp for cp in fleet.charge_points.values() if cp.ready.is_set()]
        missing = sorted(set(fleet.charge_points) - {cp.id for cp in booted})
        phase.expect("every charge point connects and boots", not missing,
                     f"{total} charge points connected to {url}, BootNotification accepted" if not missing else
                     f"{len(missing)} of {total} did not connect and boot within {boot_timeout:g} s: "
                     f"{', '.join(missing[:5])}", spec="DESIGN ruling 7, OCPP 1.6 section 4.2")
        statuses = payloads.answered[("StatusNotification", "receive")]
        connectors = sum(len(cp.connectors) + 1 for cp in booted)
        phase.expect("statuses reported and answered", statuses >= connectors,
                     f"{statuses} StatusNotifications answered" if statuses >= connectors else
                     f"{statuses} StatusNotifications answered, {connectors} sent", spec="OCPP 1.6 section 4.9")
        clock.begin()
        runner = ModelRunner(world, clock)
        runner.start()
        yield payloads
    finally:
        if runner is not None:
            await runner.stop()
        await fleet.stop()
    _judge_sessions(phase, payloads)


def _judge_sessions(phase: Phase, payloads: OcppPayloads) -> None:
    calls, answered = payloads.calls, payloads.answered
    chain = [("RemoteStartTransaction", "receive", "from the central system"),
             ("StartTransaction", "send", "answered with a transactionId"),
             ("MeterValues", "send", "answered"),
             ("RemoteStopTransaction", "receive", "from the central system"),
             ("StopTransaction", "send", "answered")]
    missing = [f"{action} {what}" for action, direction, what in chain
               if not answered[(action, "send" if direction == "receive" else "receive")]]
    phase.expect("the sessions went through our charge points", not missing,
                 "RemoteStartTransaction, StartTransaction, MeterValues, RemoteStopTransaction, StopTransaction"
                 if not missing else f"never seen: {'; '.join(missing)}", spec="DESIGN ruling 7")
    asked = sorted({action for action, direction in calls if direction == "receive"})
    phase.expect("every frame conforms to the OCPP 1.6J schema of its action", payloads.invalid_count == 0,
                 f"{payloads.frames} frames; the central system called {', '.join(asked) or 'nothing'}"
                 if payloads.invalid_count == 0 else
                 f"{payloads.invalid_count} of {payloads.frames} frames do not: {'; '.join(payloads.invalid)}",
                 spec="OCPP-J 1.6, the ocpp package's JSON schemas")
