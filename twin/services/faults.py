"""Fault injection, for tests only: the reference services break one rule on purpose.

A run with ``Settings.inject_fault`` set (or ``CHARGETWIN_INJECT_FAULT``)
proves that the harness's checks can fail: each fault breaks one rule, and
the named check must catch it. Never set it outside tests.

=====================  ====================================================  ======================
fault                  what the service does wrong                            caught by
=====================  ====================================================  ======================
wrong_display          backend: ``display`` "9/9" on every available station  schema_and_rules
                                                                              (display_matches_status)
missing_field          backend: meter_value updates without station_name      schema_and_rules (required)
wrong_user             backend: session updates also to every other           isolation
                       connected user
late_session_started   backend: session_started held back until after the     causality_and_latency
                       session's first meter_value
meter_backwards        backend: a session's third meter_value 100 Wh lower    meters_monotonic
dropped_message        gateway: every third meter_value not forwarded         no_message_lost
stale_active_session   gateway: ``has_active_session: false, data: null`` on  active_session_restored
                       connect, even while the user has an active session
bare_error             backend: REST errors as ``{"error": title}``, without  check: REST contract
                       the envelope's ``success`` and ``message``
wrong_close_code       gateway: a refused token closed with 4001              check: WebSocket contract
                       "Unauthorized" instead of 1008
no_connected           gateway: no ``connected`` on connect                   check: WebSocket contract
server_error           backend: HTTP 500 for a start on a connector id of 10  check: fuzzing
                       or more (a body the schema allows)
malformed_ocpp         CMS: StartTransaction answered with a transactionId    check: OCPP
                       that is a string
=====================  ====================================================  ======================

The first seven break what a run's checks judge (:data:`RUN_FAULTS`); the
last five what ``chargetwin check`` asks of a target (:data:`CHECK_FAULTS`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["BACKEND_FAULTS", "CHECK_FAULTS", "FAULTS", "GATEWAY_FAULTS", "REST_FAULTS", "RUN_FAULTS", "BackendFault",
           "GatewayFault", "check_fault", "malformed_ocpp", "server_error"]

BACKEND_FAULTS = ("wrong_display", "missing_field", "wrong_user", "late_session_started", "meter_backwards")
"""The backend's faults in what it publishes (:class:`BackendFault`)."""
REST_FAULTS = ("bare_error", "server_error")
"""The backend's faults in how it answers REST calls."""
GATEWAY_FAULTS = ("dropped_message", "stale_active_session", "wrong_close_code", "no_connected")
RUN_FAULTS = (*BACKEND_FAULTS, "dropped_message", "stale_active_session")
CHECK_FAULTS = ("bare_error", "wrong_close_code", "no_connected", "server_error", "malformed_ocpp")
FAULTS = RUN_FAULTS + CHECK_FAULTS

Delivery = tuple[str, dict[str, Any]]


def check_fault(name: str | None) -> str | None:
    """``name`` if it is a known fault (or None); ValueError naming the known ones otherwise."""
    if name is not None and name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    return name


def _event(message: dict[str, Any]) -> str | None:
    return message.get("event") if message.get("type") == "session_update" else None


class BackendFault:
    """Rewrites the backend's deliveries (channel, message) before they are published."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._held: dict[int, list[Delivery]] = {}  # session_started held back, by session
        self._meters: dict[int, int] = {}

    def apply(self, deliveries: Sequence[Delivery], connected: Sequence[int]) -> list[Delivery]:
        out: list[Delivery] = []
        for channel, message in deliveries:
            out.extend(getattr(self, f"_{self.name}")(channel, message, connected))
        return out

    def _wrong_display(self, channel: str, message: dict[str, Any], connected: Sequence[int]) -> list[Delivery]:
        if message.get("type") == "charger_status_update" and message.get("status") == "available":
            message = copy.deepcopy(message)
            message["data"]["display"] = "9/9"
        return [(channel, message)]

    def _missing_field(self, channel: str, message: dict[str, Any], connected: Sequence[int]) -> list[Delivery]:
        if _event(message) == "meter_value":
            message = copy.deepcopy(message)
            del message["data"]["station_name"]
        return [(channel, message)]

    def _wrong_user(self, channel: str, message: dict[str, Any], connected: Sequence[int]) -> list[Delivery]:
        if message.get("type") != "session_update":
            return [(channel, message)]
        owner = channel.split(":")[1]
        return [(channel, message)] + [(f"user:{user}:session_updates", message)
                                       for user in connected if str(user) != owner]

    def _late_session_started(self, channel: str, message: dict[str, Any],
                              connected: Sequence[int]) -> list[Delivery]:
        event, session = _event(message), message.get("session_id")
        if event == "session_started" and isinstance(session, int):
            self._held[session] = [(channel, message)]
            return []
        if event is not None and isinstance(session, int) and session in self._held:
            return [(channel, message), *self._held.pop(session)]
        return [(channel, message)]

    def _meter_backwards(self, channel: str, message: dict[str, Any], connected: Sequence[int]) -> list[Delivery]:
        session = message.get("session_id")
        if _event(message) != "meter_value" or not isinstance(session, int):
            return [(channel, message)]
        count = self._meters[session] = self._meters.get(session, 0) + 1
        if count == 3:
            message = copy.deepcopy(message)
            data = message["data"]
            data["meter_value"] = max(0, data["meter_value"] - 100)
            data["energy_consumed"] = data["energy_delivered"] = round(data["meter_value"] / 1000, 3)
        return [(channel, message)]


def malformed_ocpp(frame: str) -> str:
    """``malformed_ocpp``: a CALLRESULT's ``transactionId`` number sent as a string (OCPP 1.6 wants an integer)."""
    if frame.startswith("[3,") and '"transactionId":' in frame:
        return re.sub(r'"transactionId": ?(-?\d+)', r'"transactionId": "\1"', frame)
    return frame


def server_error(body: Any) -> None:
    """``server_error``: fail (an unhandled error, so HTTP 500) on a start body whose connector id is 10 or more."""
    connector = body.get("connector_id") if isinstance(body, dict) else None
    if isinstance(connector, int) and not isinstance(connector, bool) and connector >= 10:
        raise RuntimeError(f"injected fault server_error: connector_id {connector}")


class GatewayFault:
    """Decides which Redis messages the gateway does not forward, and what it says on connect."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._meters = 0

    def drop(self, payload: bytes) -> bool:
        if self.name != "dropped_message" or b'"event":"meter_value"' not in payload:
            return False
        self._meters += 1
        return self._meters % 3 == 0

    def session_on_connect(self, session: dict[str, Any] | None) -> dict[str, Any] | None:
        """The active session to announce on connect: none at all under ``stale_active_session``."""
        return None if self.name == "stale_active_session" else session

    def close_refused(self, code: int, reason: str) -> tuple[int, str]:
        """The close frame for a refused token: 4001 "Unauthorized" under ``wrong_close_code``."""
        return (4001, "Unauthorized") if self.name == "wrong_close_code" and code == 1008 else (code, reason)

    def welcome(self, texts: list[str]) -> list[str]:
        """The messages sent on connect: without ``connected`` (the first) under ``no_connected``."""
        return texts[1:] if self.name == "no_connected" else texts
