"""The CMS stub as one service: OCPP server, REST API and event delivery in the running asyncio loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType

import httpx
from ocpp.v16 import call
from ocpp.v16.enums import AvailabilityType

from ...clock import Clock
from ...model.config import StationSpec
from .._http import EmbeddedHttpServer, bind
from ..settings import Settings
from .central import CentralSystem, Event, Transaction
from .delivery import EventDelivery
from .exceptions import CmsError, CmsStartError, CommandRejectedError, UnknownChargePointError
from .ocpp_server import OcppServer, OcppTap
from .rest import create_app

__all__ = ["Cms"]

_LOG = logging.getLogger(__name__)

EVENTS_PATH = "/internal/cms/events"

STOP_SETTLE_S = 1.0
"""Wall seconds a stop's answer waits, after RemoteStopTransaction.conf, for the charge point's StopTransaction
to reach the backend (see :meth:`Cms.remote_stop`)."""


class Cms:
    """The seed's "Python CMS": an OCPP 1.6J central system plus its REST API (``docs/stack.md``).

    ``stations`` is the network (which charge point ids and connectors
    exist); ``clock`` stamps what the CMS stamps. Ports 0 in ``settings``
    mean any free port; :attr:`ocpp_port` and :attr:`rest_port` tell the
    bound ones after :meth:`start`. Call order: ``await start()``, then
    ``await stop()`` (or ``async with Cms(...)``).

    ``heartbeat_interval`` (s) is what BootNotification.conf tells charge
    points; ``first_transaction_id`` the first id StartTransaction gets;
    ``ocpp_tap`` sees every OCPP frame; ``delivery_transport`` replaces the
    HTTP transport to the backend (tests); ``stop_settle_s`` bounds the wait
    of :meth:`remote_stop` for the StopTransaction. ``id_tags``: the users'
    tags, Accepted (any other gets Invalid); None accepts every tag.
    """

    def __init__(self, *, settings: Settings, stations: Sequence[StationSpec], clock: Clock,
                 heartbeat_interval: int = 300, first_transaction_id: int = 1, ocpp_tap: OcppTap | None = None,
                 delivery_transport: httpx.AsyncBaseTransport | None = None,
                 stop_settle_s: float = STOP_SETTLE_S, id_tags: Iterable[str] | None = None) -> None:
        self.settings = settings
        self._stop_settle_s = stop_settle_s
        self._stops: dict[tuple[str, int], asyncio.Future[Event]] = {}  # StopTransactions a stop waits for
        self.clock = clock
        self.central = CentralSystem(stations, first_transaction_id=first_transaction_id, id_tags=id_tags)
        self._heartbeat_interval = heartbeat_interval
        self._tap = ocpp_tap
        self._transport = delivery_transport
        self.delivery: EventDelivery | None = None
        self.ocpp: OcppServer | None = None
        self._rest: EmbeddedHttpServer | None = None
        self._rest_port = 0

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for OCPP and REST; returns once both accept connections."""
        settings = self.settings
        self.delivery = EventDelivery(settings.backend_url + EVENTS_PATH, settings.internal_token,
                                      transport=self._transport)
        self.ocpp = OcppServer(self.central, submit=self._submit, clock=self.clock,
                               heartbeat_interval=self._heartbeat_interval, call_timeout=settings.cms_timeout_s,
                               tap=self._tap, fault=settings.inject_fault)
        try:
            try:
                await self.ocpp.start(settings.host, settings.ocpp_port)
            except OSError as error:
                raise CmsStartError(f"the CMS cannot listen for OCPP on {settings.host}:{settings.ocpp_port}: "
                                    f"{error}; choose another port (CHARGETWIN_OCPP_PORT, 0 for any)") from error
            await self._start_rest()
        except BaseException:
            await self.stop()
            raise
        _LOG.info("CMS: OCPP on %s:%d, REST on %s:%d", settings.host, self.ocpp_port, settings.host, self.rest_port)

    async def _start_rest(self) -> None:
        host, port = self.settings.host, self.settings.cms_port
        try:
            sock = bind(host, port)
        except OSError as error:
            raise CmsStartError(f"the CMS cannot listen for REST on {host}:{port}: {error}; "
                                "choose another port (CHARGETWIN_CMS_PORT, 0 for any)") from error
        self._rest = EmbeddedHttpServer(create_app(self, max_body_bytes=self.settings.max_body_bytes), sock,
                                        name="cms-rest", graceful_s=2)
        self._rest_port = self._rest.port
        try:
            await self._rest.start()
        except RuntimeError as error:
            self._rest = None
            raise CmsStartError(str(error)) from error

    async def stop(self, *, drain_timeout: float = 2.0) -> None:
        """Close OCPP connections, stop the REST API, deliver what is queued within ``drain_timeout`` s."""
        if self.ocpp is not None:
            await self.ocpp.close()
        if self._rest is not None:
            await self._rest.stop()
            self._rest = None
        if self.delivery is not None:
            await self.delivery.aclose(drain_timeout=drain_timeout)
            self.delivery = None

    async def __aenter__(self) -> Cms:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.stop()

    @property
    def ocpp_port(self) -> int:
        if self.ocpp is None:
            raise RuntimeError("the CMS is not started")
        return self.ocpp.port

    @property
    def rest_port(self) -> int:
        if self._rest is None:
            raise RuntimeError("the CMS is not started")
        return self._rest_port

    @property
    def ocpp_url(self) -> str:
        return f"ws://{self.settings.host}:{self.ocpp_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.settings.host}:{self.rest_port}"

    def connected(self, charge_point_id: str) -> bool:
        """Whether ``charge_point_id`` has an OCPP connection now."""
        return self.ocpp is not None and self.ocpp.connected(charge_point_id)

    # --- commands (what the REST API calls; usable from Python too) ---------------------

    async def remote_start(self, charger_id: str, *, id_tag: str, connector_id: int = 1) -> int | None:
        """RemoteStartTransaction; returns the transaction id if StartTransaction already came, else None."""
        self.central.check_connector(charger_id, connector_id)
        answer = await self._ocpp().call(charger_id, call.RemoteStartTransaction(id_tag=id_tag,
                                                                                 connector_id=connector_id))
        if answer.status != "Accepted":
            raise CommandRejectedError(f"charger {charger_id} rejected RemoteStartTransaction "
                                       f"on connector {connector_id} for {id_tag}")
        running = self.central.transaction_on(charger_id, connector_id)
        return running.id if running is not None and running.id_tag == id_tag else None

    async def remote_stop(self, charger_id: str, *, connector_id: int | None = None,
                          transaction_id: int | None = None) -> Transaction:
        """RemoteStopTransaction of the transaction named (SPEC-NOTES N-13); returns it.

        Once the charge point accepted, the answer waits (up to ``stop_settle_s``)
        until its StopTransaction came and the ``session_stopped`` event reached
        the backend: the backend's answer to the app can then tell the charger's
        final energy and duration, the same as ``session_stopped`` (seed 1 and
        Example 4 show them equal). A charge point slower than that, or a
        backend away, delays nothing further: the answer goes out anyway.
        """
        transaction = self.central.find_for_stop(charger_id, connector_id=connector_id,
                                                 transaction_id=transaction_id)
        key = (charger_id, transaction.id)
        stopped = self._stops[key] = asyncio.get_running_loop().create_future()
        try:
            answer = await self._ocpp().call(charger_id, call.RemoteStopTransaction(transaction_id=transaction.id))
            if answer.status != "Accepted":
                raise CommandRejectedError(f"charger {charger_id} rejected RemoteStopTransaction of "
                                           f"transaction {transaction.id}")
            try:
                async with asyncio.timeout(self._stop_settle_s):
                    event = await stopped
                    if self.delivery is not None:
                        await self.delivery.wait_settled(event)
            except TimeoutError:
                _LOG.debug("%s: transaction %d not ended within %g s of the stop; answering", charger_id,
                           transaction.id, self._stop_settle_s)
        finally:
            if self._stops.get(key) is stopped:
                del self._stops[key]
        return transaction

    async def change_availability(self, charger_id: str, connector_id: int, *, operative: bool) -> str:
        """ChangeAvailability (connector 0: the whole charge point); the answer: Accepted, Scheduled or Rejected."""
        if connector_id != 0:
            self.central.check_connector(charger_id, connector_id)
        elif not self.central.knows(charger_id):
            raise UnknownChargePointError(f"there is no charger {charger_id!r} in this network")
        kind = AvailabilityType.operative if operative else AvailabilityType.inoperative
        answer = await self._ocpp().call(charger_id, call.ChangeAvailability(connector_id=connector_id, type=kind))
        return str(answer.status)

    def _ocpp(self) -> OcppServer:
        if self.ocpp is None:
            raise CmsError("the CMS is not started")
        return self.ocpp

    def _submit(self, event: Event) -> None:
        assert self.delivery is not None
        self.delivery.submit(event)
        if event["event"] == "session_stopped":
            waiting = self._stops.get((event["charger_id"], event["transaction_id"]))
            if waiting is not None and not waiting.done():
                waiting.set_result(event)
