"""What the contracts know: every message, where it travels, which schema fits.

This module is data. It names each schema by its path under ``schemas/``
without the ``.schema.json`` suffix (``messages/connected``), lists the
HTTP endpoints of the backend and of the CMS, the WebSocket message types,
and which types travel on which Redis channel. The validator routes by it;
the AsyncAPI and OpenAPI documents are tested against it.

Channels of a captured record (see ``docs/traffic-format.md``):

``backend:/api/charging/start``, ``cms:/api/charging/remote_start``, ...
    HTTP, direction ``request`` or ``response``.
``websocket``
    The gateway's socket, direction ``receive`` (gateway to app), ``send``
    (app to gateway) or ``close`` (the close frame the gateway sent).
``redis:user:{userId}:notifications`` (and ``session_updates``, ``charger_updates``)
    A Redis pub/sub message, direction ``publish``.
``ocpp:{chargePointId}``
    An OCPP-J frame between a charge point and the CMS, direction ``send``
    (charge point to CMS) or ``receive`` (CMS to charge point).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CLOSE_SCHEMA",
    "CMS_EVENTS",
    "CMS_EVENTS_CHANNEL",
    "DIRECTIONS",
    "ENDPOINTS",
    "ERROR_SCHEMA",
    "EVENT_TYPES",
    "HEARTBEAT_DIRECTIONS",
    "MESSAGE_SCHEMAS",
    "OCPP_CALLS",
    "OCPP_CHANNEL_PREFIX",
    "OCPP_FRAME_SCHEMA",
    "REDIS_CHANNEL_TYPES",
    "RESPONSE_STATUSES",
    "SCHEMA_BASE",
    "WEBSOCKET_CHANNEL",
    "Endpoint",
    "message_schema",
]

SCHEMA_BASE = "https://chargetwin.example/contracts/schemas/"
"""Base of every schema ``$id``; ``SCHEMA_BASE + name + ".schema.json"``."""


ERROR_SCHEMA = "rest/error"
"""The error envelope of every REST answer (DESIGN ruling 6)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One HTTP endpoint: the schemas of its request, success and error bodies."""

    service: str
    path: str
    request: str
    response: str
    error: str = ERROR_SCHEMA
    spec: str = ""

    @property
    def channel(self) -> str:
        return f"{self.service}:{self.path}"


ENDPOINTS: dict[str, Endpoint] = {
    e.channel: e
    for e in (
        Endpoint("backend", "/api/charging/start", "rest/charging-start.request",
                 "rest/charging-start.response", spec="1. Start Charging"),
        Endpoint("backend", "/api/charging/stop", "rest/charging-stop.request",
                 "rest/charging-stop.response", spec="1. Stop Charging"),
        Endpoint("backend", "/api/auth/login", "rest/login.request", "rest/login.response",
                 spec="2. Connection"),
        Endpoint("cms", "/api/charging/remote_start", "cms/remote-start.request",
                 "cms/remote-start.response", spec="5. Example 1: Start Charging Flow"),
        Endpoint("cms", "/api/charging/stop", "cms/stop.request", "cms/stop.response",
                 spec="5. Example 4: Stop Charging Flow"),
    )
}
"""HTTP endpoints by channel name (``service:path``)."""

CMS_EVENTS_CHANNEL = "backend:/internal/cms/events"
"""The backend's internal endpoint that receives the CMS's events (SPEC-NOTES N-14)."""

CMS_EVENTS = ("session_started", "meter_value", "session_stopped", "connector_status_changed")
"""CMS -> backend events; the schema of each is ``cms/events/<event>``."""

RESPONSE_STATUSES: dict[str, tuple[int, ...]] = {
    "backend:/api/charging/start": (200, 401, 404, 409, 422, 502, 503),
    "backend:/api/charging/stop": (200, 401, 404, 409, 422, 502, 503),
    "backend:/api/auth/login": (200, 401, 422),
    "cms:/api/charging/remote_start": (200, 404, 409, 422, 503, 504),
    "cms:/api/charging/stop": (200, 404, 409, 422, 503, 504),
    CMS_EVENTS_CHANNEL: (202, 401, 422),
}
"""HTTP statuses each endpoint answers with, by channel, ascending (DESIGN ruling 6).

The OpenAPI documents' ``responses`` in data form; a test holds them equal.
"""

WEBSOCKET_CHANNEL = "websocket"
CLOSE_SCHEMA = "websocket/close"

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "session_update": ("session_started", "session_stopped", "meter_value",
                       "session_error", "session_completed"),
    "charger_update": ("status_changed", "connector_status_changed", "error",
                       "configuration_changed", "maintenance_mode"),
}
"""Message types whose schema depends on their ``event``."""

MESSAGE_SCHEMAS: tuple[str, ...] = (
    "connected", "response", "notification", "session_update", "charger_update",
    "charger_status_update", "charger_list_update", "active_session_update", "error",
)
"""Every ``type`` the gateway may send (seed section 4)."""

REDIS_CHANNEL_TYPES: dict[str, frozenset[str]] = {
    "notifications": frozenset({"notification", "response"}),
    "session_updates": frozenset({"session_update", "active_session_update"}),
    "charger_updates": frozenset({"charger_status_update", "charger_update", "charger_list_update"}),
}
"""Message types allowed on ``user:{userId}:<suffix>`` (seed 3, SPEC-NOTES N-03, N-04)."""

OCPP_CHANNEL_PREFIX = "ocpp:"
"""``ocpp:{chargePointId}``: the OCPP-J connection of one charge point (DESIGN ruling 7)."""

OCPP_FRAME_SCHEMA = "ocpp/frame"
"""Every OCPP-J frame (CALL, CALLRESULT, CALLERROR) is checked against this schema."""

OCPP_CALLS: dict[str, str] = {
    "BootNotification": "send",
    "StatusNotification": "send",
    "Heartbeat": "send",
    "Authorize": "send",
    "StartTransaction": "send",
    "MeterValues": "send",
    "StopTransaction": "send",
    "DataTransfer": "send",
    "DiagnosticsStatusNotification": "send",
    "FirmwareStatusNotification": "send",
    "RemoteStartTransaction": "receive",
    "RemoteStopTransaction": "receive",
    "ChangeAvailability": "receive",
    "GetConfiguration": "receive",
    "ChangeConfiguration": "receive",
    "TriggerMessage": "receive",
    "Reset": "receive",
    "UnlockConnector": "receive",
    "ClearCache": "receive",
}
"""OCPP 1.6 actions the twin's charge points and CMS handle, each with the direction of its CALL
on ``ocpp:{chargePointId}`` (``send``: charge point to CMS; ``receive``: CMS to charge point);
the CALLRESULT travels the other way (DESIGN ruling 7). A test holds it equal to the handlers."""

DIRECTIONS: dict[str, tuple[str, ...]] = {
    "http": ("request", "response"),
    "cms_events": ("request", "response"),
    "websocket": ("receive", "send", "close", "ping", "pong"),
    "redis": ("publish",),
    "ocpp": ("send", "receive"),
}
"""Directions a record may have, by kind of channel."""

HEARTBEAT_DIRECTIONS: tuple[str, ...] = ("ping", "pong")
"""A ping the gateway sent an app and the pong that answered it (seed "Heartbeat"): control frames,
recorded as ``websocket`` records with any message (the trace writes ``{}``), never judged."""


def message_schema(message_type: str, event: str | None = None) -> str:
    """Schema name of a gateway/Redis message of ``message_type`` (and ``event``)."""
    if event is None:
        return f"messages/{message_type}"
    return f"messages/{message_type}/{event}"
