"""The central system's knowledge and decisions, without I/O.

:class:`CentralSystem` knows the network (which charge points and connectors
exist), assigns transaction ids, keeps the running transactions, and turns
each OCPP message from a charge point into the CMS -> backend events of
``docs/stack.md`` (schemas ``contracts/schemas/cms/events/*``; SPEC-NOTES
N-14). The OCPP server and the REST API are thin adapters around it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...model.config import StationSpec
from ..timestamps import format_timestamp, parse_timestamp
from ._meter import read_meter_value
from .exceptions import (
    AmbiguousTransactionError,
    NoTransactionError,
    UnknownChargePointError,
    UnknownConnectorError,
)

__all__ = ["ID_TAG_STATUSES", "CentralSystem", "Event", "IdTags", "Transaction"]

Event = dict[str, Any]
"""One CMS -> backend event, JSON-ready."""

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Transaction:
    """A running transaction: what StartTransaction said, and the id the CMS gave it."""

    id: int
    charge_point_id: str
    connector_id: int
    id_tag: str
    meter_start: int
    start_time: str


ID_TAG_STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid"})
"""OCPP 1.6 AuthorizationStatus values the central system gives (ConcurrentTx: another transaction runs)."""


class IdTags:
    """The id tags the central system knows, each with its AuthorizationStatus (OCPP 1.6 section 4.2).

    ``known`` None: every tag is accepted (a CMS told of no users). A tag it
    does not know is ``Invalid``; :meth:`set` blocks, expires or restores one.
    """

    def __init__(self, known: Iterable[str] | None = None) -> None:
        self._open = known is None
        self._status: dict[str, str] = {} if known is None else dict.fromkeys(known, "Accepted")

    def status(self, id_tag: str) -> str:
        found = self._status.get(id_tag)
        if found is not None:
            return found
        return "Accepted" if self._open else "Invalid"

    def set(self, id_tag: str, status: str) -> None:
        if status not in ID_TAG_STATUSES:
            raise ValueError(f"{status!r} is not one of {', '.join(sorted(ID_TAG_STATUSES))}")
        self._status[id_tag] = status


def _stamp(text: str | None, now: datetime) -> str:
    """The charge point's timestamp in canonical form; ``now`` if it sent none (or nonsense)."""
    if text:
        try:
            return format_timestamp(parse_timestamp(text))
        except ValueError:
            _LOG.warning("unreadable OCPP timestamp %r, using the receipt time", text)
    return format_timestamp(now)


class CentralSystem:
    """The network's charge points and their running transactions.

    Transaction ids count up from ``first_transaction_id`` (OCPP 1.6
    StartTransaction.conf). Every ``on_*`` method takes one OCPP request's
    fields (snake_case, as the ``ocpp`` package hands them) and returns the
    events to deliver, in order.
    """

    def __init__(self, stations: Iterable[StationSpec], *, first_transaction_id: int = 1,
                 id_tags: Iterable[str] | None = None) -> None:
        self.connectors: dict[str, int] = {cp.id: cp.connectors for s in stations for cp in s.charge_points}
        self.id_tags = IdTags(id_tags)
        self.transactions: dict[int, Transaction] = {}
        self._ids = itertools.count(first_transaction_id)

    # --- the network -----------------------------------------------------------------

    def add(self, station: StationSpec) -> None:
        """Know the charge points of a station added to the network (the twin's control API)."""
        for cp in station.charge_points:
            self.connectors[cp.id] = cp.connectors

    def forget(self, charge_point_ids: Iterable[str]) -> None:
        """Charge points that left the network: refused at the next handshake."""
        for charge_point_id in charge_point_ids:
            self.connectors.pop(charge_point_id, None)

    def knows(self, charge_point_id: str) -> bool:
        return charge_point_id in self.connectors

    def check_connector(self, charge_point_id: str, connector_id: int) -> None:
        """Raise unless the network has this charge point and connector (1..n)."""
        count = self.connectors.get(charge_point_id)
        if count is None:
            raise UnknownChargePointError(f"there is no charger {charge_point_id!r} in this network")
        if not 1 <= connector_id <= count:
            raise UnknownConnectorError(f"charger {charge_point_id} has connectors 1..{count}, not {connector_id}")

    def transaction_on(self, charge_point_id: str, connector_id: int) -> Transaction | None:
        for transaction in self.transactions.values():
            if transaction.charge_point_id == charge_point_id and transaction.connector_id == connector_id:
                return transaction
        return None

    def find_for_stop(self, charge_point_id: str, *, connector_id: int | None = None,
                      transaction_id: int | None = None) -> Transaction:
        """The transaction a stop means: by id, else by connector, else the only one on the charger."""
        if not self.knows(charge_point_id):
            raise UnknownChargePointError(f"there is no charger {charge_point_id!r} in this network")
        if transaction_id is not None:
            transaction = self.transactions.get(transaction_id)
            if transaction is None or transaction.charge_point_id != charge_point_id:
                raise NoTransactionError(f"no transaction {transaction_id} is running on charger {charge_point_id}")
            return transaction
        if connector_id is not None:
            self.check_connector(charge_point_id, connector_id)
            found = self.transaction_on(charge_point_id, connector_id)
            if found is None:
                raise NoTransactionError(f"no transaction is running on charger {charge_point_id} "
                                         f"connector {connector_id}")
            return found
        running = [t for t in self.transactions.values() if t.charge_point_id == charge_point_id]
        if not running:
            raise NoTransactionError(f"no transaction is running on charger {charge_point_id}")
        if len(running) > 1:
            ids = ", ".join(str(t.id) for t in running)
            raise AmbiguousTransactionError(f"charger {charge_point_id} runs transactions {ids}: "
                                            "name one with transaction_id or connector_id")
        return running[0]

    # --- OCPP requests -> events -----------------------------------------------------

    def on_status_notification(self, charge_point_id: str, *, connector_id: int, status: str, error_code: str,
                               now: datetime, info: str | None = None, timestamp: str | None = None) -> list[Event]:
        """StatusNotification -> ``connector_status_changed`` (error_code null for NoError, SPEC-NOTES N-19)."""
        running = self.transaction_on(charge_point_id, connector_id) if connector_id else None
        return [{
            "event": "connector_status_changed",
            "charger_id": charge_point_id,
            "transaction_id": running.id if running else None,
            "data": {
                "connector_id": connector_id,
                "status": status,
                "error_code": None if error_code == "NoError" else error_code,
                "info": info,
                "timestamp": _stamp(timestamp, now),
            },
        }]

    def on_start_transaction(self, charge_point_id: str, *, connector_id: int, id_tag: str, meter_start: int,
                             timestamp: str, now: datetime) -> tuple[Transaction, list[Event]]:
        """StartTransaction: a new transaction id, and ``session_started``."""
        transaction = Transaction(next(self._ids), charge_point_id, connector_id, id_tag, meter_start,
                                  _stamp(timestamp, now))
        self.transactions[transaction.id] = transaction
        return transaction, [{
            "event": "session_started",
            "charger_id": charge_point_id,
            "transaction_id": transaction.id,
            "data": {"connector_id": connector_id, "id_tag": id_tag, "meter_start": meter_start,
                     "start_time": transaction.start_time},
        }]

    def on_meter_values(self, charge_point_id: str, *, connector_id: int, meter_value: Sequence[Mapping[str, Any]],
                        now: datetime, transaction_id: int | None = None) -> list[Event]:
        """MeterValues of a known transaction -> one ``meter_value`` per MeterValue (N-08: Wh of the session)."""
        transaction = self.transactions.get(transaction_id) if transaction_id is not None else None
        if transaction is None:
            if transaction_id is not None:
                _LOG.warning("%s: MeterValues for unknown transaction %s dropped", charge_point_id, transaction_id)
            return []
        events = []
        for entry in meter_value:
            event = self._meter_event(transaction, entry, now)
            if event is not None:
                events.append(event)
        return events

    def _meter_event(self, transaction: Transaction, entry: Mapping[str, Any], now: datetime) -> Event | None:
        reading = read_meter_value(entry.get("sampled_value") or ())
        if reading.register_wh is None:
            _LOG.warning("%s: a MeterValue without Energy.Active.Import.Register dropped",
                         transaction.charge_point_id)
            return None
        session_wh = max(0, round(reading.register_wh) - transaction.meter_start)
        soc = reading.soc_percent
        return {
            "event": "meter_value",
            "charger_id": transaction.charge_point_id,
            "transaction_id": transaction.id,
            "data": {
                "connector_id": transaction.connector_id,
                "energy_delivered": session_wh / 1000,
                "power": round(max(0.0, reading.power_w or 0.0) / 1000, 3),
                "voltage": round(max(0.0, reading.voltage_v or 0.0), 1),
                "current": round(max(0.0, reading.current_a or 0.0), 2),
                "meter_value": session_wh,
                "charge_percentage": None if soc is None else min(100, max(0, round(soc))),
                "time_remaining": None,
                "timestamp": _stamp(entry.get("timestamp"), now),
            },
        }

    def on_stop_transaction(self, charge_point_id: str, *, transaction_id: int, meter_stop: int, timestamp: str,
                            now: datetime, reason: str | None = None, id_tag: str | None = None) -> list[Event]:
        """StopTransaction -> ``session_stopped``; an absent reason is OCPP's default, Local."""
        transaction = self.transactions.pop(transaction_id, None)
        data: dict[str, Any] = {}
        if transaction is not None:
            data["connector_id"] = transaction.connector_id
        else:
            _LOG.warning("%s: StopTransaction of unknown transaction %s", charge_point_id, transaction_id)
        tag = id_tag or (transaction.id_tag if transaction else None)
        if tag:
            data["id_tag"] = tag
        data.update(meter_stop=meter_stop, stop_time=_stamp(timestamp, now), stop_reason=reason or "Local")
        return [{"event": "session_stopped", "charger_id": charge_point_id, "transaction_id": transaction_id,
                 "data": data}]
