"""Build synthetic traces for the harness tests: messages from the seed's examples, records by hop.

:class:`TraceKit` makes conforming records (they pass ``schema_and_rules``)
so that each invariant test breaks exactly the one thing it tests.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from chargetwin.contracts.schemas import CONTRACTS_DIR
from chargetwin.harness.trace import TraceRecord

TARIFF = 7.5
"""Price per kWh of STATION001 in these traces."""

_SEED = {json.loads(line)["source"]["line"]: json.loads(line)["message"]
         for line in (CONTRACTS_DIR / "examples" / "seed.ndjson").read_text(encoding="utf-8").splitlines()
         if line.strip()}


SEED_LINES = tuple(_SEED)
"""The seed lines with an example message."""


def seed(line: int) -> Any:
    return copy.deepcopy(_SEED[line])


def start_response(session: int, *, transaction_id: int | None = None, charger: str = "CP001",
                   connector: int = 1) -> dict[str, Any]:
    return {"success": True, "data": {"session_id": session, "transaction_id": transaction_id,
                                      "charger_id": charger, "connector_id": connector, "status": "initiated",
                                      "message": "Charging session started"}}


def session_started(session: int, transaction: int = 789) -> dict[str, Any]:
    message = seed(900)
    message.update(session_id=session, transaction_id=transaction)
    return dict(message)


def meter_value(session: int, kwh: float, *, transaction: int = 789, cost: float | None = None,
                timestamp: str = "2025-01-29T12:05:00Z") -> dict[str, Any]:
    message = seed(974)
    message.update(session_id=session, transaction_id=transaction, timestamp=timestamp)
    data = message["data"]
    data.update(energy_consumed=kwh, energy_delivered=kwh, meter_value=round(kwh * 1000),
                cost=round(kwh * TARIFF, 2) if cost is None else cost, timestamp=timestamp)
    return dict(message)


def session_stopped(session: int, kwh: float = 14.5, transaction: int = 789) -> dict[str, Any]:
    message = seed(1147)
    message.update(session_id=session, transaction_id=transaction)
    message["data"]["energy_delivered"] = kwh
    return dict(message)


def session_error(session: int, transaction: int = 789) -> dict[str, Any]:
    message = session_stopped(session, transaction=transaction)
    message["event"] = "session_error"
    message["data"] = {"charger_id": "CP001", "connector_id": 1, "error": "ConnectorLockFailure",
                       "message": "The connector could not be locked", "error_code": "ConnectorLockFailure",
                       "timestamp": "2025-01-29T12:00:00Z"}
    return message


def connected(user: int) -> dict[str, Any]:
    return {"type": "connected", "timestamp": "2025-01-29T12:00:00Z", "userId": user}


def notification(session: int, title: str = "Charging Started") -> dict[str, Any]:
    message = seed(535)
    message["title"] = title
    message["data"]["session_id"] = session
    return dict(message)


def charger_status(*, available: int = 3, total: int = 4) -> dict[str, Any]:
    """The seed's charger_status_update of STATION001 (3/4 available), or all in use."""
    message = seed(614)
    if available == 0:
        message = seed(658)
    assert message["data"]["available_connectors"] == available and message["data"]["total_connectors"] == total
    return dict(message)


_CHANNEL_OF = {"session_update": "session_updates", "active_session_update": "session_updates",
               "notification": "notifications", "response": "notifications",
               "charger_status_update": "charger_updates", "charger_update": "charger_updates",
               "charger_list_update": "charger_updates"}


class TraceKit:
    """Records of one synthetic run, in the order they are added."""

    def __init__(self) -> None:
        self.records: list[TraceRecord] = []

    def add(self, record: TraceRecord) -> TraceRecord:
        self.records.append(record)
        return record

    def start(self, user: int, session: int, t: float, **fields: Any) -> TraceRecord:
        return self.add(TraceRecord("app-backend", "backend:/api/charging/start", "response",
                                    start_response(session, **fields), t, t, status=200, user_id=user,
                                    session_id=session))

    def publish(self, user: int, message: dict[str, Any], t: float) -> TraceRecord:
        channel = f"redis:user:{user}:{_CHANNEL_OF[message['type']]}"
        return self.add(TraceRecord("redis", channel, "publish", message, t, t,
                                    session_id=message.get("session_id")))

    def receive(self, user: int, socket: int, message: dict[str, Any], t: float) -> TraceRecord:
        return self.add(TraceRecord("gateway-app", "websocket", "receive", message, t, t, user_id=user,
                                    socket_id=socket, session_id=message.get("session_id")))

    def connect(self, user: int, socket: int, t: float) -> TraceRecord:
        return self.receive(user, socket, connected(user), t)

    def close(self, user: int, socket: int, t: float, code: int = 1000, reason: str = "") -> TraceRecord:
        return self.add(TraceRecord("gateway-app", "websocket", "close", {"code": code, "reason": reason}, t, t,
                                    user_id=user, socket_id=socket))

    def push(self, user: int, sockets: list[int], message: dict[str, Any], t: float,
             latency: float = 0.1) -> None:
        """Publish on Redis and deliver to each of ``sockets``, ``latency`` later."""
        self.publish(user, message, t)
        for socket in sockets:
            self.receive(user, socket, copy.deepcopy(message), t + latency)


def good_session(kit: TraceKit | None = None, *, user: int = 1, socket: int = 10, session: int = 456,
                 t0: float = 0.0) -> TraceKit:
    """One conforming session: connect, start, session_started, three meter values, stop."""
    kit = kit or TraceKit()
    kit.connect(user, socket, t0)
    kit.start(user, session, t0 + 1)
    kit.push(user, [socket], session_started(session), t0 + 2)
    for i, kwh in enumerate((1.0, 2.0, 3.0)):
        kit.push(user, [socket], meter_value(session, kwh, timestamp=f"2025-01-29T12:0{i + 1}:00Z"),
                 t0 + 60 * (i + 1))
    kit.push(user, [socket], session_stopped(session, kwh=3.0), t0 + 240)
    return kit
