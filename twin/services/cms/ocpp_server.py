"""The CMS's OCPP 1.6J side: a WebSocket server at ``ws://host:port/{charge_point_id}``.

OCPP-J 1.6 section 3: the charge point's identity is the last path
segment, the subprotocol is ``ocpp1.6``. Unknown identities are refused in
the handshake (HTTP 404). A client that offers no ``ocpp1.6`` gets the
handshake completed without a subprotocol and is closed at once (1002), as
OCPP-J 1.6 section 3.1.2 says. A second connection of
the same identity replaces the first. Each message is handed to the
:class:`~.central.CentralSystem`; the events it returns go to ``submit`` in
the order the messages came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from ocpp.exceptions import OCPPError, PropertyConstraintViolationError
from ocpp.v16 import call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, DataTransferStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ...clock import Clock
from .._ocpp import SUBPROTOCOL, OcppChargePoint, on
from .._tasks import cancel_and_wait
from ..faults import malformed_ocpp
from ..timestamps import format_timestamp
from .central import CentralSystem, Event
from .exceptions import ChargePointOfflineError, ChargePointTimeoutError, CommandRejectedError

__all__ = ["OcppServer", "OcppTap"]

_LOG = logging.getLogger(__name__)

OcppTap = Callable[[str, str, str], None]
"""``tap(charge_point_id, direction, frame)``: every OCPP-J frame, ``direction`` "receive" or "send" (CMS side)."""


def charge_point_id(path: str) -> str | None:
    """The identity in ``/{id}`` (percent-decoded), or None for any other path."""
    segments = urlsplit(path).path.split("/")
    if len(segments) != 2 or not segments[1]:
        return None
    return unquote(segments[1])


def _ocpp16_or_none(_: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """``ocpp1.6`` when offered; else None: the handshake completes without one, then the socket is closed."""
    return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in offered else None


class _Link(OcppChargePoint):
    """One charge point's connection, seen from the central system."""

    def __init__(self, identity: str, websocket: ServerConnection, server: OcppServer) -> None:
        super().__init__(identity, websocket, response_timeout=server.call_timeout + 1.0)
        self.websocket = websocket
        self._server = server

    async def route_message(self, raw_msg: str) -> None:
        self._server.tap_frame(self.id, "receive", raw_msg)
        await super().route_message(raw_msg)

    async def _send(self, message: str) -> None:
        if self._server.fault == "malformed_ocpp":  # tests only (faults.py)
            message = malformed_ocpp(message)
        self._server.tap_frame(self.id, "send", message)
        await super()._send(message)

    async def request(self, payload: Any) -> Any:
        """``call(payload)``, failing fast when the connection closes before the answer."""
        answer = asyncio.ensure_future(self.call(payload, suppress=False))
        closed = asyncio.ensure_future(self.websocket.wait_closed())
        try:
            await asyncio.wait((answer, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait((answer, closed))
        action = type(payload).__name__
        if not answer.cancelled():
            error = answer.exception()
            if error is None:
                return answer.result()
            if isinstance(error, OCPPError):
                raise CommandRejectedError(f"charger {self.id} answered {action} with a CallError: {error}")
            if isinstance(error, TimeoutError):
                raise ChargePointTimeoutError(f"charger {self.id} did not answer {action} in time")
            if not isinstance(error, ConnectionClosed):
                raise error
        raise ChargePointOfflineError(f"charger {self.id} disconnected before answering {action}")

    # --- requests from the charge point (OCPP 1.6 section 4) -------------------------

    @on(Action.boot_notification)
    def on_boot_notification(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(current_time=self._server.now_text(),
                                            interval=self._server.heartbeat_interval,
                                            status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=self._server.now_text())

    @on(Action.status_notification)
    def on_status_notification(self, connector_id: int, error_code: str, status: str, info: str | None = None,
                               timestamp: str | None = None, **_: Any) -> call_result.StatusNotification:
        self._server.emit(self._server.central.on_status_notification(
            self.id, connector_id=connector_id, status=status, error_code=error_code, info=info,
            timestamp=timestamp, now=self._server.clock.now()))
        return call_result.StatusNotification()

    def _id_tag_info(self, id_tag: str) -> IdTagInfo:
        return IdTagInfo(status=self._server.central.id_tags.status(id_tag))

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **_: Any) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info=self._id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str,
                             **_: Any) -> call_result.StartTransaction:
        connectors = self._server.central.connectors.get(self.id, 0)
        if not 1 <= connector_id <= connectors:
            raise PropertyConstraintViolationError(details={
                "cause": f"{self.id} has connectors 1..{connectors}, not {connector_id}"})
        transaction, events = self._server.central.on_start_transaction(
            self.id, connector_id=connector_id, id_tag=id_tag, meter_start=meter_start, timestamp=timestamp,
            now=self._server.clock.now())
        self._server.emit(events)  # a tag not Accepted still started a transaction: the charge point ends it
        return call_result.StartTransaction(transaction_id=transaction.id, id_tag_info=self._id_tag_info(id_tag))

    @on(Action.meter_values)
    def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                        transaction_id: int | None = None, **_: Any) -> call_result.MeterValues:
        self._server.emit(self._server.central.on_meter_values(
            self.id, connector_id=connector_id, meter_value=meter_value, transaction_id=transaction_id,
            now=self._server.clock.now()))
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int, reason: str | None = None,
                            id_tag: str | None = None, **_: Any) -> call_result.StopTransaction:
        self._server.emit(self._server.central.on_stop_transaction(
            self.id, transaction_id=transaction_id, meter_stop=meter_stop, timestamp=timestamp, reason=reason,
            id_tag=id_tag, now=self._server.clock.now()))
        return call_result.StopTransaction(id_tag_info=self._id_tag_info(id_tag) if id_tag else None)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> call_result.DataTransfer:
        """No vendor's data is understood here (OCPP 1.6 section 4.3): UnknownVendorId, not a CALLERROR."""
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, status: str, **_: Any) -> call_result.DiagnosticsStatusNotification:
        _LOG.info("%s: diagnostics upload %s", self.id, status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, status: str, **_: Any) -> call_result.FirmwareStatusNotification:
        _LOG.info("%s: firmware %s", self.id, status)
        return call_result.FirmwareStatusNotification()


class OcppServer:
    """The OCPP endpoint of the central system; :meth:`call` sends a request to a connected charge point.

    Call order: :meth:`start`, any number of :meth:`call`, :meth:`close`.
    ``call_timeout`` and ``heartbeat_interval`` are wall seconds.
    """

    def __init__(self, central: CentralSystem, *, submit: Callable[[Event], None], clock: Clock,
                 heartbeat_interval: int, call_timeout: float, tap: OcppTap | None = None,
                 fault: str | None = None) -> None:
        self.central = central
        self.fault = fault
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.call_timeout = call_timeout
        self._submit = submit
        self._tap = tap
        self.links: dict[str, _Link] = {}
        self._server: Server | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the OCPP server is not started")
        port: int = next(iter(self._server.sockets)).getsockname()[1]
        return port

    def now_text(self) -> str:
        return format_timestamp(self.clock.now())

    def emit(self, events: list[Event]) -> None:
        for event in events:
            self._submit(event)

    def tap_frame(self, identity: str, direction: str, frame: str) -> None:
        if self._tap is not None:
            self._tap(identity, direction, frame)

    def connected(self, identity: str) -> bool:
        return identity in self.links

    async def start(self, host: str, port: int) -> None:
        self._server = await serve(self._handle, host, port, subprotocols=[Subprotocol(SUBPROTOCOL)],
                                   select_subprotocol=_ocpp16_or_none, process_request=self._process_request)

    async def close(self) -> None:
        """Stop listening and close every connection (1001 going away)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def call(self, identity: str, payload: Any) -> Any:
        """Send ``payload`` (an ``ocpp.v16.call`` request) to ``identity``; its answer, or a CmsError."""
        link = self.links.get(identity)
        if link is None:
            raise ChargePointOfflineError(f"charger {identity} is not connected to the CMS")
        try:
            async with asyncio.timeout(self.call_timeout):
                return await link.request(payload)
        except TimeoutError:
            raise ChargePointTimeoutError(f"charger {identity} did not answer {type(payload).__name__} "
                                          f"within {self.call_timeout:g} s") from None

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        identity = charge_point_id(request.path)
        if identity is None or not self.central.knows(identity):
            _LOG.warning("refused an OCPP connection to %s: no such charge point", request.path)
            return connection.respond(HTTPStatus.NOT_FOUND, f"Unknown charge point at {request.path}\n")
        return None

    async def _handle(self, websocket: ServerConnection) -> None:
        identity = charge_point_id(websocket.request.path if websocket.request else "") or ""
        if websocket.subprotocol != SUBPROTOCOL:
            _LOG.warning("closed the OCPP connection of %s: it did not offer %s", identity, SUBPROTOCOL)
            await websocket.close(1002, f"OCPP-J 1.6 needs the {SUBPROTOCOL} subprotocol")
            return
        link = _Link(identity, websocket, self)
        previous, self.links[identity] = self.links.get(identity), link
        _LOG.info("charge point %s connected", identity)
        if previous is not None:
            await previous.websocket.close(1000, "replaced by a new connection")
        try:
            with contextlib.suppress(ConnectionClosed):
                await link.start()
        finally:
            if self.links.get(identity) is link:
                del self.links[identity]
            _LOG.info("charge point %s disconnected", identity)
