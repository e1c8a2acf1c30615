"""Simulated charge points: one OCPP 1.6J client per charge point of the world model.

Each :class:`SimulatedChargePoint` connects to ``ws://{host}:{ocpp_port}/{id}``
(subprotocol ``ocpp1.6``), sends BootNotification, then a StatusNotification
for connector 0 and for each connector with its current status, then
Heartbeat at the interval the central system gave. It turns the world's
events into OCPP requests, in order, one at a time (OCPP-J 1.6 section 4.1.1):

======================== ==============================================================
model event              OCPP 1.6 request
======================== ==============================================================
ConnectorStatusChanged   StatusNotification (errorCode from the event, else NoError)
Fault, Repair,           StatusNotification for connector 0 when the charge point's own
Maintenance*, a status   status changes: Faulted while it is faulted as a whole,
change                   Unavailable under maintenance or with every connector
                         inoperative, else Available (as at boot)
TransactionStarted       StartTransaction (the answer's transactionId is remembered)
MeterSample              MeterValues (Sample.Periodic: register Wh, power W, voltage V,
                         current A per phase on AC, SoC %)
TransactionStopped       StopTransaction (meterStop, reason)
======================== ==============================================================

and answers the central system's RemoteStartTransaction, RemoteStopTransaction
and ChangeAvailability with the world's commands. An answer always goes out
before the requests its command set off (the RemoteStartTransaction.conf
before the StartTransaction.req): the outbox holds while a request from the
central system is being handled.

The world calls the fleet's sink from inside its SimPy step; the sink only
queues. While the central system is away, requests wait in the queue and go
out after the next boot (status changes are replaced by the fresh statuses
sent after the boot); the client reconnects with exponential backoff.
Timestamps: ``clock.at(event.t)`` when the clock has ``at`` (a SimClock),
else ``clock.now()``. Timeouts and backoff are wall seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ocpp.exceptions import OCPPError
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action, ChargePointErrorCode
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

from ..clock import Clock
from ..model import events as ev
from ..model.exceptions import UnknownTargetError
from ._ocpp import SUBPROTOCOL, OcppChargePoint, after, on
from ._tasks import cancel_and_wait
from .settings import Settings
from .timestamps import format_timestamp

if TYPE_CHECKING:
    from ..model.world import World

__all__ = ["ChargePointFleet", "SimulatedChargePoint", "sampled_values"]

_LOG = logging.getLogger(__name__)

_OCPP_EVENTS = (ev.ConnectorStatusChanged, ev.TransactionStarted, ev.MeterSample, ev.TransactionStopped)
_WHOLE_EVENTS = (ev.Fault, ev.Repair, ev.ConnectorStatusChanged, ev.MaintenanceStarted, ev.MaintenanceEnded)
"""Events after which the charge point's own status (connector 0) may differ."""
_ERROR_CODES = frozenset(code.value for code in ChargePointErrorCode)
_CONTEXT = "Sample.Periodic"


def sampled_values(sample: ev.MeterSample) -> list[dict[str, str]]:
    """The sampledValue list of ``sample`` (OCPP 1.6 section 7.43).

    On AC (``phases`` > 0) voltage (L-N) and current are given per phase,
    as a meter measures them; on DC once.
    """
    values = [
        {"value": str(sample.register_wh), "context": _CONTEXT, "measurand": "Energy.Active.Import.Register",
         "unit": "Wh"},
        {"value": f"{sample.power_kw * 1000:.1f}", "context": _CONTEXT, "measurand": "Power.Active.Import",
         "unit": "W"},
    ]
    phases: list[tuple[str, str] | None] = [(f"L{n}-N", f"L{n}") for n in range(1, sample.phases + 1)]
    for phase in phases or [None]:
        voltage = {"value": f"{sample.voltage:.1f}", "context": _CONTEXT, "measurand": "Voltage", "unit": "V"}
        current = {"value": f"{sample.current:.2f}", "context": _CONTEXT, "measurand": "Current.Import", "unit": "A"}
        if phase is not None:
            voltage["phase"], current["phase"] = phase
        values += [voltage, current]
    values.append({"value": f"{sample.soc * 100:.1f}", "context": _CONTEXT, "measurand": "SoC", "location": "EV",
                   "unit": "Percent"})
    return values


_RESET_DELAY_S = 0.5
"""Seconds between answering a Reset and rebooting (closing the connection)."""

_TRIGGERED = frozenset({"BootNotification", "Heartbeat", "StatusNotification"})
"""What a TriggerMessage may ask for and get (the others are NotImplemented)."""

OcppTap = Callable[[str, str, str], None]
"""``(charge_point_id, direction, frame)``: a frame the charge point sent (``send``) or received (``receive``)."""


class _Client(OcppChargePoint):
    """One connection of a :class:`SimulatedChargePoint` to the central system."""

    def __init__(self, owner: SimulatedChargePoint, websocket: ClientConnection, response_timeout: float) -> None:
        super().__init__(owner.id, websocket, response_timeout=response_timeout)
        self._owner = owner
        self._websocket = websocket

    async def route_message(self, raw_msg: str) -> None:
        self._owner.tapped("receive", raw_msg)
        self._owner.hold()
        try:
            await super().route_message(raw_msg)
        finally:
            self._owner.release()

    async def _send(self, message: str) -> None:
        self._owner.tapped("send", message)
        await super()._send(message)

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                    **_: Any) -> call_result.RemoteStartTransaction:
        return call_result.RemoteStartTransaction(status=self._owner.remote_start(connector_id or 1, id_tag))

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> call_result.RemoteStopTransaction:
        return call_result.RemoteStopTransaction(status=self._owner.remote_stop(transaction_id))

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> call_result.ChangeAvailability:
        return call_result.ChangeAvailability(status=self._owner.change_availability(connector_id, type))

    # The other calls a central system may send (OCPP 1.6 section 5). Any call without a handler
    # here gets the ocpp package's CALLERROR NotImplemented.

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> call_result.GetConfiguration:
        known = self._owner.configuration
        wanted = key or list(known)
        found = [{"key": k, "readonly": known[k][0], "value": known[k][1]} for k in wanted if k in known]
        unknown = [k for k in wanted if k not in known]
        return call_result.GetConfiguration(configuration_key=found or None, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> call_result.ChangeConfiguration:
        known = self._owner.configuration
        if key not in known:
            return call_result.ChangeConfiguration(status="NotSupported")
        if known[key][0]:
            return call_result.ChangeConfiguration(status="Rejected")
        known[key] = (False, value)
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None,
                           **_: Any) -> call_result.TriggerMessage:
        accepted = requested_message in _TRIGGERED
        return call_result.TriggerMessage(status="Accepted" if accepted else "NotImplemented")

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> None:
        if requested_message in _TRIGGERED:
            self._owner.spawn(self._owner.send_triggered(self, requested_message, connector_id))

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        self._owner.spawn(self._reboot(type))

    async def _reboot(self, kind: str) -> None:
        """Leave a moment for the answer to be read (a close right behind it can overtake it on the central
        system's side), then close: the charge point reconnects and boots again."""
        await asyncio.sleep(_RESET_DELAY_S)
        await self._websocket.close(1000, f"{kind} reset")

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        exists = any(c.id == connector_id for c in self._owner.connectors)
        return call_result.UnlockConnector(status="Unlocked" if exists else "NotSupported")

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        return call_result.ClearCache(status="Accepted")


class SimulatedChargePoint:
    """The OCPP side of one charge point of ``world``, connecting to ``url``.

    Call order: :meth:`enqueue` may be called at any time (the fleet's sink
    does); :meth:`run` until cancelled. ``ready`` is set while booted and
    connected; ``boots`` counts accepted BootNotifications.
    """

    def __init__(self, world: World, charge_point_id: str, *, url: str, clock: Clock, call_timeout: float,
                 vendor: str = "chargetwin", model: str = "simulated", reconnect_initial: float = 0.1,
                 reconnect_max: float = 5.0, tap: OcppTap | None = None) -> None:
        self.id = charge_point_id
        self._tap = tap
        self._spawned: set[asyncio.Task[Any]] = set()
        self.url = url
        self._world = world
        self._charge_point = world.charge_point(charge_point_id)
        self._clock = clock
        self._call_timeout = call_timeout
        self._boot = call.BootNotification(charge_point_model=model, charge_point_vendor=vendor)
        self._reconnect = (reconnect_initial, reconnect_max)
        self._outbox: deque[ev.Event] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._holds = 0
        self._transaction_ids: dict[int, int] = {}  # model session id -> OCPP transactionId
        self._sessions: dict[int, ev.TransactionStarted] = {}  # OCPP transactionId -> its start
        self._fault_code: str | None = None
        self._whole: str | None = None  # the charge point's own status (connector 0) last sent or queued
        self.ready = asyncio.Event()
        self.boots = 0
        self._online = asyncio.Event()  # cleared by disconnect(): stay away from the central system
        self._online.set()
        self._websocket: ClientConnection | None = None
        self.heartbeat_interval: int | None = None
        # The configuration keys (OCPP 1.6 section 9.1) a central system may read: key -> (read-only, value).
        # A change is remembered and read back; it changes nothing in the model.
        self.configuration: dict[str, tuple[bool, str]] = {
            "HeartbeatInterval": (False, "0"),
            "MeterValueSampleInterval": (False, "60"),
            "NumberOfConnectors": (True, str(len(self._charge_point.connectors))),
            "ConnectionTimeOut": (False, "60"),
            "AuthorizeRemoteTxRequests": (False, "false"),
            "MeterValuesSampledData": (False, "Energy.Active.Import.Register,Power.Active.Import,SoC"),
        }

    # --- what the central system may ask ----------------------------------------------

    @property
    def connectors(self) -> list[Any]:
        return list(self._charge_point.connectors)

    @property
    def station_id(self) -> str:
        return str(self._charge_point.station.id)

    def tapped(self, direction: str, frame: str) -> None:
        if self._tap is not None:
            self._tap(self.id, direction, frame)

    def spawn(self, coroutine: Any) -> None:
        """Run ``coroutine`` beside the connection (an after-hook's work), kept until done."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def send_triggered(self, client: _Client, message: str, connector_id: int | None) -> None:
        """Send what a TriggerMessage asked for."""
        try:
            if message == "BootNotification":
                await self._boot_notification(client)
            elif message == "Heartbeat":
                await client.call(call.Heartbeat(), suppress=False)
            else:
                timestamp = self._stamp(self._world.env.now)
                for connector, status, error_code in self._statuses():
                    if connector_id is None or connector == connector_id:
                        await client.call(call.StatusNotification(connector_id=connector, error_code=error_code,
                                                                  status=status, timestamp=timestamp), suppress=False)
        except (OCPPError, WebSocketException, TimeoutError) as error:
            _LOG.warning("%s: the triggered %s was not delivered: %s", self.id, message, error)

    # --- the model side --------------------------------------------------------------

    def enqueue(self, event: ev.Event) -> None:
        """Queue an OCPP-bound event of this charge point (called from inside the SimPy step: no I/O)."""
        if isinstance(event, ev.Fault):
            self._fault_code = event.error_code
        elif isinstance(event, ev.Repair):
            self._fault_code = None
        elif isinstance(event, _OCPP_EVENTS):
            self._outbox.append(event)
            self._wakeup.set()
        if isinstance(event, ev.ConnectorStatusChanged) and event.connector_id == 0:
            self._whole = event.status  # the model reported it itself
        elif isinstance(event, _WHOLE_EVENTS):
            self._report_whole(event.t)

    def _report_whole(self, t: float) -> None:
        """Queue a StatusNotification for connector 0 if the charge point's own status changed (OCPP 1.6
        section 4.9: connectorId 0 is the charge point as a whole; SPEC-NOTES N-05)."""
        whole = self._whole_status()
        if whole == self._whole:
            return
        previous, self._whole = self._whole, whole
        cp = self._charge_point
        self._outbox.append(ev.ConnectorStatusChanged(t, cp.station.id, cp.id, 0, whole, previous or whole,
                                                      self._fault_code if whole == "Faulted" else None))
        self._wakeup.set()

    @property
    def pending(self) -> int:
        """Requests queued and not yet answered by the central system."""
        return len(self._outbox)

    def transaction_id(self, session_id: int) -> int | None:
        """The OCPP transactionId the central system gave the model's session, if it did."""
        return self._transaction_ids.get(session_id)

    def hold(self) -> None:
        self._holds += 1
        self._idle.clear()

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            self._idle.set()

    # --- commands from the central system -------------------------------------------

    def remote_start(self, connector_id: int, id_tag: str) -> str:
        try:
            accepted = self._world.remote_start(self.id, connector_id, id_tag)
        except UnknownTargetError:
            accepted = False
        return "Accepted" if accepted else "Rejected"

    def remote_stop(self, transaction_id: int) -> str:
        started = self._sessions.get(transaction_id)
        if started is None:
            return "Rejected"
        try:
            stopped = self._world.remote_stop(self.id, started.connector_id)
        except UnknownTargetError:
            stopped = False
        return "Accepted" if stopped else "Rejected"

    def change_availability(self, connector_id: int, kind: str) -> str:
        try:
            return self._world.change_availability(self.id, connector_id, operative=kind == "Operative")
        except UnknownTargetError:
            return "Rejected"

    # --- the connection --------------------------------------------------------------

    @property
    def online(self) -> bool:
        """False between :meth:`disconnect` and :meth:`reconnect`."""
        return self._online.is_set()

    async def disconnect(self) -> None:
        """Drop the OCPP connection and stay away (the model goes on; its messages queue up) until :meth:`reconnect`."""
        self._online.clear()
        websocket = self._websocket
        if websocket is not None:
            await websocket.close(1001, "disconnected by the twin's operator")

    def reconnect(self) -> None:
        """Connect again after :meth:`disconnect`: boot, then send what queued up meanwhile."""
        self._online.set()

    async def run(self) -> None:
        """Connect, boot, serve; reconnect with backoff whenever the connection ends. Runs until cancelled."""
        delay, failures = self._reconnect[0], 0
        while True:
            if not self._online.is_set():
                await self._online.wait()
                delay = self._reconnect[0]
            try:
                # no permessage-deflate: OCPP frames are small, and compressing each costs more than it saves
                async with connect(self.url, subprotocols=[Subprotocol(SUBPROTOCOL)], compression=None,
                                   open_timeout=self._call_timeout, close_timeout=1.0) as websocket:
                    delay, failures = self._reconnect[0], 0
                    await self._serve(websocket)
            except (OSError, TimeoutError, WebSocketException, OCPPError) as error:
                failures += 1
                log = _LOG.warning if failures == 1 else _LOG.debug
                log("%s: no OCPP connection to %s (%s: %s); retrying in %.2fs", self.id, self.url,
                    type(error).__name__, error, delay)
            except Exception:
                failures += 1
                _LOG.exception("%s: the OCPP connection failed; retrying in %.2fs", self.id, delay)
            finally:
                self.ready.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._reconnect[1])

    async def _serve(self, websocket: ClientConnection) -> None:
        """One connection: read in one task, boot and send in another; end when either ends."""
        client = _Client(self, websocket, response_timeout=self._call_timeout)
        reader = asyncio.ensure_future(client.start())
        work = asyncio.ensure_future(self._work(client))
        self._websocket = websocket
        try:
            await asyncio.wait((reader, work), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._websocket = None
            await cancel_and_wait((reader, work))
        for task in (work, reader):
            error = None if task.cancelled() else task.exception()
            if isinstance(error, BaseExceptionGroup):
                error = error.exceptions[0]
            if error is not None:
                raise error

    async def _work(self, client: _Client) -> None:
        interval = await self._boot_notification(client)
        await self._send_statuses(client)
        self.ready.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._send_outbox(client))
            if interval > 0:
                group.create_task(self._heartbeat(client, interval))

    async def _boot_notification(self, client: _Client) -> int:
        """BootNotification until Accepted (OCPP 1.6 section 4.2: Pending/Rejected mean try again later)."""
        while True:
            answer = await client.call(self._boot, suppress=False)
            if answer.status == "Accepted":
                self.boots += 1
                self.heartbeat_interval = int(answer.interval)
                self.configuration["HeartbeatInterval"] = (False, str(self.heartbeat_interval))
                return self.heartbeat_interval
            await asyncio.sleep(answer.interval or 10)

    async def _send_statuses(self, client: _Client) -> None:
        """Connector 0 and every connector as they are now; queued status changes are superseded."""
        kept = [e for e in self._outbox if not isinstance(e, ev.ConnectorStatusChanged)]
        self._outbox.clear()
        self._outbox.extend(kept)
        timestamp = self._stamp(self._world.env.now)
        self._whole = self._whole_status()
        for connector_id, status, error_code in self._statuses():
            await client.call(call.StatusNotification(connector_id=connector_id, error_code=error_code,
                                                      status=status, timestamp=timestamp), suppress=False)

    def _whole_status(self) -> str:
        """The charge point's own status (connector 0), from the model."""
        cp = self._charge_point
        if cp.faulted:
            return "Faulted"
        if cp.station.under_maintenance or all(c.inoperative for c in cp.connectors):
            return "Unavailable"
        return "Available"

    def _statuses(self) -> list[tuple[int, str, str]]:
        cp = self._charge_point
        whole = self._whole_status()
        found = [(0, whole, self._error_code(whole, None)[0])]
        found += [(c.id, c.status, self._error_code(c.status, None)[0]) for c in cp.connectors]
        return found

    def _error_code(self, status: str, code: str | None) -> tuple[str, str | None]:
        """(errorCode, info): the event's code, the charge point's fault for Faulted, else NoError."""
        if code is None and status == "Faulted":
            code = self._fault_code or "OtherError"
        if code is None:
            return "NoError", None
        if code not in _ERROR_CODES:
            return "OtherError", code[:50]
        return code, None

    async def _heartbeat(self, client: _Client, interval: int) -> None:
        while True:
            await asyncio.sleep(interval)
            await client.call(call.Heartbeat(), suppress=False)

    async def _send_outbox(self, client: _Client) -> None:
        """Send queued requests one by one, never while a request of the central system is being handled."""
        while True:
            while not self._outbox:
                self._wakeup.clear()
                await self._wakeup.wait()
            while not self._idle.is_set():
                await self._idle.wait()
            event = self._outbox[0]
            try:
                await self._send(client, event)
            except OCPPError as error:
                _LOG.warning("%s: the central system refused %s: %s", self.id, type(event).__name__, error)
            if self._outbox and self._outbox[0] is event:
                self._outbox.popleft()

    async def _send(self, client: _Client, event: ev.Event) -> None:
        if isinstance(event, ev.ConnectorStatusChanged):
            code, info = self._error_code(event.status, event.error_code)
            await client.call(call.StatusNotification(
                connector_id=event.connector_id, error_code=code, status=event.status, info=info,
                timestamp=self._stamp(event.t)), suppress=False)
        elif isinstance(event, ev.TransactionStarted):
            await self._start_transaction(client, event)
        elif isinstance(event, ev.MeterSample):
            transaction_id = self._transaction_ids.get(event.session_id)
            if transaction_id is None:
                _LOG.debug("%s: meter sample of session %d without a transaction dropped", self.id, event.session_id)
                return
            await client.call(call.MeterValues(
                connector_id=event.connector_id, transaction_id=transaction_id,
                meter_value=[{"timestamp": self._stamp(event.t), "sampled_value": sampled_values(event)}]),
                suppress=False)
        elif isinstance(event, ev.TransactionStopped):
            await self._stop_transaction(client, event)

    async def _start_transaction(self, client: _Client, event: ev.TransactionStarted) -> None:
        answer = await client.call(call.StartTransaction(
            connector_id=event.connector_id, id_tag=event.id_tag, meter_start=event.meter_start,
            timestamp=self._stamp(event.t)), suppress=False)
        transaction_id = int(answer.transaction_id)
        self._transaction_ids[event.session_id] = transaction_id
        self._sessions[transaction_id] = event
        status = (answer.id_tag_info or {}).get("status")
        if status != "Accepted":  # OCPP 1.6 StopTransactionOnInvalidId (true by default): end it at once
            _LOG.info("%s: transaction %d of %s not authorized (%s); stopping it", self.id, transaction_id,
                      event.id_tag, status)
            with contextlib.suppress(UnknownTargetError):
                self._world.remote_stop(self.id, event.connector_id, reason="DeAuthorized")

    async def _stop_transaction(self, client: _Client, event: ev.TransactionStopped) -> None:
        transaction_id = self._transaction_ids.get(event.session_id)
        if transaction_id is None:
            _LOG.warning("%s: stop of session %d without a transaction dropped", self.id, event.session_id)
            return
        started = self._sessions[transaction_id]
        await client.call(call.StopTransaction(
            meter_stop=event.meter_stop, timestamp=self._stamp(event.t), transaction_id=transaction_id,
            reason=event.reason, id_tag=started.id_tag), suppress=False)
        del self._transaction_ids[event.session_id], self._sessions[transaction_id]

    def _stamp(self, t: float) -> str:
        at = getattr(self._clock, "at", None)
        return format_timestamp(at(t) if at is not None else self._clock.now())


class ChargePointFleet:
    """One :class:`SimulatedChargePoint` per charge point of ``world``, all connected to one central system.

    The fleet subscribes to ``world`` when made, so no event is missed
    between then and :meth:`start`. Call order: make it, ``await start()``,
    optionally ``await wait_ready()``, ``await stop()``. ``ocpp_url``
    overrides ``settings.ocpp_url`` (an external CMS); ``call_timeout``
    defaults to ``settings.cms_timeout_s``. ``tap`` is told every frame each
    charge point sends and receives.
    """

    def __init__(self, world: World, settings: Settings, clock: Clock, *, ocpp_url: str | None = None,
                 call_timeout: float | None = None, vendor: str = "chargetwin", model: str = "simulated",
                 reconnect_initial: float = 0.1, reconnect_max: float = 5.0,
                 charge_point_ids: Iterable[str] | None = None, tap: OcppTap | None = None) -> None:
        base = (ocpp_url or settings.ocpp_url).rstrip("/")
        ids = list(world.charge_points) if charge_point_ids is None else list(charge_point_ids)
        self.charge_points = {
            cp_id: SimulatedChargePoint(
                world, cp_id, url=f"{base}/{quote(cp_id, safe='')}", clock=clock,
                call_timeout=settings.cms_timeout_s if call_timeout is None else call_timeout,
                vendor=vendor, model=model, reconnect_initial=reconnect_initial, reconnect_max=reconnect_max,
                tap=tap)
            for cp_id in ids
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False
        self._base_url = base
        self._options: dict[str, Any] = {
            "call_timeout": settings.cms_timeout_s if call_timeout is None else call_timeout, "vendor": vendor,
            "model": model, "reconnect_initial": reconnect_initial, "reconnect_max": reconnect_max, "tap": tap}
        world.subscribe(self._on_event)

    def _on_event(self, event: ev.Event) -> None:
        if self._stopped:
            return
        target = self.charge_points.get(getattr(event, "charge_point_id", ""))
        if target is not None:
            target.enqueue(event)
        elif isinstance(event, ev.MaintenanceStarted | ev.MaintenanceEnded):
            for cp in self.charge_points.values():
                if cp.station_id == event.station_id:
                    cp.enqueue(event)

    def add(self, world: World, clock: Clock, charge_point_ids: Iterable[str]) -> None:
        """Simulate more charge points of ``world`` (a station added while running) and connect them."""
        loop = asyncio.get_running_loop()
        for cp_id in charge_point_ids:
            simulated = SimulatedChargePoint(world, cp_id, url=f"{self._base_url}/{quote(cp_id, safe='')}",
                                             clock=clock, **self._options)
            self.charge_points[cp_id] = simulated
            self._tasks.append(loop.create_task(simulated.run(), name=f"chargepoint-{cp_id}"))

    async def remove(self, charge_point_ids: Iterable[str]) -> None:
        """Disconnect charge points for good (their station left the network)."""
        ids = set(charge_point_ids)
        for cp_id in ids:
            self.charge_points.pop(cp_id, None)
        leaving = [t for t in self._tasks if t.get_name().removeprefix("chargepoint-") in ids]
        self._tasks = [t for t in self._tasks if t not in leaving]
        await cancel_and_wait(leaving)

    async def start(self) -> None:
        """Start every charge point's connection (returns at once; see :meth:`wait_ready`)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(cp.run(), name=f"chargepoint-{cp.id}") for cp in self.charge_points.values()]

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every charge point is connected and booted (TimeoutError after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            for cp in self.charge_points.values():
                await cp.ready.wait()

    @property
    def pending(self) -> int:
        """OCPP requests queued over all charge points."""
        return sum(cp.pending for cp in self.charge_points.values())

    @property
    def backlog(self) -> int:
        """OCPP requests queued at the charge points that are connected (a disconnected one's queue waits)."""
        return sum(cp.pending for cp in self.charge_points.values() if cp.ready.is_set())

    async def stop(self) -> None:
        """Close every connection; later events of the world are ignored."""
        self._stopped = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
