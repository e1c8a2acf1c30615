"""The spec-coverage universe: every message the contracts know, and which one a record is.

A run's coverage matrix (``chargetwin.harness.coverage``) counts, for each
:class:`SpecItem` of :data:`SPEC_ITEMS`, the trace records that are that
item. This module is data and pure functions: the items, in the order a
report shows them, and :func:`item_key`, which names the item of one
record (or None: the record fits no item).

The universe comes from :mod:`.catalog` (endpoints and the statuses each
answers, CMS events, WebSocket types and events, Redis channels, OCPP
actions) and ``close-codes.json``. Groups, in order (:data:`GROUPS`):

``REST``
    each backend and CMS endpoint: its request, and its response per HTTP status.
``CMS events``
    each CMS -> backend event: the event, and the backend's answer per status.
``WebSocket``
    each ``type`` the gateway sends (``session_update`` and ``charger_update``
    per ``event``; ``response`` per ``action`` and outcome), and a frame the
    app sends on the receive-only socket.
``Redis``
    each channel suffix with each message type (and event) it carries.
``Close codes``
    each code and reason of ``close-codes.json``.
``Heartbeat``
    the gateway's ping, the app's pong (counted by the apps, not in the trace).
``OCPP``
    each action's CALL and CALLRESULT, and a CALLERROR either way.

Keys are stable strings (``rest:backend:/api/charging/start:response:200``,
``websocket:session_update:meter_value``, ``ocpp:MeterValues:CALL``); a
report may keep them across runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from .catalog import (
    CMS_EVENTS,
    CMS_EVENTS_CHANNEL,
    ENDPOINTS,
    EVENT_TYPES,
    MESSAGE_SCHEMAS,
    OCPP_CALLS,
    OCPP_CHANNEL_PREFIX,
    REDIS_CHANNEL_TYPES,
    RESPONSE_STATUSES,
    WEBSOCKET_CHANNEL,
)
from .schemas import CONTRACTS_DIR, load_json

__all__ = [
    "CMS_EVENT_SPECS",
    "GROUPS",
    "HEARTBEAT_KEYS",
    "OCPP_ROUTE",
    "OCPP_SPEC",
    "REDIS_SPECS",
    "RESPONSE_ACTIONS",
    "SPEC_ITEMS",
    "WEBSOCKET_SPECS",
    "SpecItem",
    "item_key",
    "key_of",
    "route_of",
]

GROUPS: Final = ("REST", "CMS events", "WebSocket", "Redis", "Close codes", "Heartbeat", "OCPP")
"""Groups of :data:`SPEC_ITEMS`, in the order the items come."""

WEBSOCKET_SPECS: Final[dict[str, str]] = {
    "connected": "4.1 Connection Confirmation",
    "response": "4.2 Action Response",
    "notification": "4.3 Real-time Notification (from Redis)",
    "session_update": "4.4 Session Update (from Redis)",
    "charger_update": "4.5 Charger Update (from Redis)",
    "charger_status_update": "4.6 Charger Status Update (Pushed from Gateway)",
    "charger_list_update": "4.7 Charger List Update (Pushed from Gateway)",
    "active_session_update": "4.8 Active Session Update (Pushed from Gateway)",
    "error": "4.9 Error Message",
}
"""Seed section of each message type the gateway sends (seed 4.1 to 4.9)."""

_SEND_SPEC: Final = "2. Mobile App → Node.js Gateway (WebSocket Connection)"

REDIS_SPECS: Final[dict[str, str]] = {
    "notifications": "3.1 User Notifications Channel",
    "session_updates": "3.2 Session Updates Channel",
    "charger_updates": "3.3 Charger Updates Channel",
}
"""Seed section of each Redis channel suffix (seed 3.1 to 3.3)."""

CMS_EVENT_SPECS: Final[dict[str, str]] = {
    "session_started": "5. Example 2: Real-time Meter Value Updates",
    "meter_value": "5. Example 2: Real-time Meter Value Updates",
    "session_stopped": "5. Example 2: Real-time Meter Value Updates",
    "connector_status_changed": "5. Example 3: Charger Status Update (Pushed to Mobile)",
}
"""Seed section of each CMS event (the ``x-spec`` of its schema)."""

RESPONSE_ACTIONS: Final = ("start_charging", "stop_charging")
"""The ``action`` of a ``response`` message (seed 4.2; the schema's enum)."""

OCPP_SPEC: Final = "OCPP-J 1.6 section 4 (RPC framework; DESIGN ruling 7)"
"""Section of every OCPP item (the ``x-spec`` of the frame schema)."""

OCPP_ROUTE: Final = "ocpp"
"""The route (:func:`route_of`) of every ``ocpp:{chargePointId}`` channel."""

HEARTBEAT_KEYS: Final[dict[str, str]] = {"ping": "heartbeat:ping", "pong": "heartbeat:pong"}
"""Item key of each heartbeat count (``{"ping": n, "pong": n}``): ``websocket`` records of direction ``ping`` and
``pong`` (``catalog.HEARTBEAT_DIRECTIONS``)."""

_OUTCOMES: Final = ("success", "failure")
_OCPP_KINDS: Final = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}
_SIDES: Final = {"send": "charge point → CMS", "receive": "CMS → charge point"}
_OTHER_WAY: Final = {"send": "receive", "receive": "send"}
_REDIS_CHANNEL: Final = re.compile(r"redis:user:[0-9]+:(notifications|session_updates|charger_updates)")


@dataclass(frozen=True, slots=True)
class SpecItem:
    """One thing the contracts know that a run may exercise.

    ``key`` is a stable id, ``group`` one of :data:`GROUPS`, ``label`` what a
    person reads, ``spec`` the section of the protocol document (or of a
    DESIGN ruling) it comes from, in the style of the schemas' ``x-spec``.
    """

    key: str
    group: str
    label: str
    spec: str


Signature = tuple[Any, ...]
"""What :func:`key_of` reads of a record, as an index key of :data:`_INDEX`."""


# --- the universe ------------------------------------------------------------------------


def _rest() -> Iterator[tuple[Signature | None, SpecItem]]:
    """Seed 1 and 5 (steps 2): each endpoint's request, then its answer per status."""
    for channel, endpoint in ENDPOINTS.items():
        name = f"{'CMS ' if endpoint.service == 'cms' else ''}POST {endpoint.path}"
        yield (channel, "request"), SpecItem(f"rest:{channel}:request", "REST", f"{name} (request)",
                                            endpoint.spec)
        for status in RESPONSE_STATUSES[channel]:
            yield (channel, "response", status), SpecItem(f"rest:{channel}:response:{status}", "REST",
                                                          f"{name} → {status}", endpoint.spec)


def _cms_events() -> Iterator[tuple[Signature | None, SpecItem]]:
    """Seed 5, Example 2 step 1 (docs/stack.md): each event, then the backend's answer per status."""
    for event in CMS_EVENTS:
        spec = CMS_EVENT_SPECS[event]
        yield (CMS_EVENTS_CHANNEL, "request", event), SpecItem(
            f"cms-event:{event}:request", "CMS events", f"{event} (CMS → backend)", spec)
        for status in RESPONSE_STATUSES[CMS_EVENTS_CHANNEL]:
            yield (CMS_EVENTS_CHANNEL, "response", status, event), SpecItem(
                f"cms-event:{event}:response:{status}", "CMS events", f"{event} → {status}", spec)


def _subtypes(message_type: str) -> tuple[tuple[str | None, str | None], ...]:
    """The items of one gateway message type: per event, per action and outcome, or the type alone."""
    if message_type in EVENT_TYPES:
        return tuple((event, None) for event in EVENT_TYPES[message_type])
    if message_type == "response":
        return tuple((action, outcome) for action in RESPONSE_ACTIONS for outcome in _OUTCOMES)
    return ((None, None),)


def _sublabel(message_type: str, sub: str | None, outcome: str | None) -> str:
    if sub is None:
        return message_type
    return f"{message_type} / {sub}" + (f", {outcome}" if outcome else "")


def _subkey(message_type: str, sub: str | None, outcome: str | None) -> str:
    return ":".join(part for part in (message_type, sub, outcome) if part)


def _websocket() -> Iterator[tuple[Signature | None, SpecItem]]:
    """Seed 4: every type the gateway sends; then a frame the app sends (seed 2, DESIGN ruling 4)."""
    for message_type in MESSAGE_SCHEMAS:
        for sub, outcome in _subtypes(message_type):
            label = _sublabel(message_type, sub, outcome)
            if message_type == "error":
                label += " (answer to a frame the app sent)"
            yield ("websocket", "receive", message_type, sub, outcome), SpecItem(
                f"websocket:{_subkey(message_type, sub, outcome)}", "WebSocket", label,
                WEBSOCKET_SPECS[message_type])
    yield ("websocket", "send"), SpecItem("websocket:send", "WebSocket",
                                          "a frame the app sent (the socket is receive-only)", _SEND_SPEC)


def _redis() -> Iterator[tuple[Signature | None, SpecItem]]:
    """Seed 3 and "Redis Channel Summary": each channel suffix with the types it carries."""
    for suffix, allowed in REDIS_CHANNEL_TYPES.items():
        for message_type in (t for t in MESSAGE_SCHEMAS if t in allowed):
            for event in EVENT_TYPES.get(message_type, (None,)):
                label = f"user:{{userId}}:{suffix}: {_sublabel(message_type, event, None)}"
                yield (f"redis:{suffix}", message_type, event), SpecItem(
                    f"redis:{suffix}:{_subkey(message_type, event, None)}", "Redis", label, REDIS_SPECS[suffix])


def _closes() -> Iterator[tuple[Signature | None, SpecItem]]:
    """Seed "Error Handling" and "Heartbeat": each code and reason of close-codes.json, by code."""
    entries = load_json(CONTRACTS_DIR / "close-codes.json")["codes"]
    for entry in sorted(entries, key=lambda e: int(e["code"])):
        code, reason = entry["code"], entry["reason"]
        key = f"close:{code}" if reason is None else f"close:{code}:{reason}"
        label = f"{code} {reason}" if reason is not None else f"{code} (any reason)"
        yield ("websocket", "close", code, reason), SpecItem(key, "Close codes", label, entry["spec"])


def _heartbeat() -> Iterator[tuple[Signature | None, SpecItem]]:
    """Seed "Heartbeat": the gateway pings, the app answers with a pong."""
    yield None, SpecItem(HEARTBEAT_KEYS["ping"], "Heartbeat", "ping (gateway → app)", "Heartbeat")
    yield None, SpecItem(HEARTBEAT_KEYS["pong"], "Heartbeat", "pong (app → gateway)", "Heartbeat")


def _ocpp() -> Iterator[tuple[Signature | None, SpecItem]]:
    """DESIGN ruling 7: each action's CALL and CALLRESULT, each the way it travels; CALLERROR either way."""
    for action, way in OCPP_CALLS.items():
        back = _OTHER_WAY[way]
        yield (OCPP_ROUTE, way, 2, action), SpecItem(
            f"ocpp:{action}:CALL", "OCPP", f"{action} CALL ({_SIDES[way]})", OCPP_SPEC)
        yield (OCPP_ROUTE, back, 3, action), SpecItem(
            f"ocpp:{action}:CALLRESULT", "OCPP", f"{action} CALLRESULT ({_SIDES[back]})", OCPP_SPEC)
    for way, side in _SIDES.items():
        yield (OCPP_ROUTE, way, 4), SpecItem(f"ocpp:CALLERROR:{way}", "OCPP", f"CALLERROR ({side})", OCPP_SPEC)


def _universe() -> tuple[tuple[SpecItem, ...], dict[Signature, str]]:
    """The items in order, and the key of each signature a record may have."""
    pairs = [*_rest(), *_cms_events(), *_websocket(), *_redis(), *_closes(), *_heartbeat(), *_ocpp()]
    return tuple(item for _, item in pairs), {sig: item.key for sig, item in pairs if sig is not None}


SPEC_ITEMS, _INDEX = _universe()
"""Every item, grouped in the order of :data:`GROUPS`, a fixed order within each group."""


# --- a record's item -----------------------------------------------------------------------

_ROUTES: dict[str, str | None] = {}


def route_of(channel: str) -> str | None:
    """The route of a channel: the channel itself for HTTP and ``websocket``, ``redis:<suffix>``, ``ocpp``.

    None for a channel the contracts do not know. Remembered per channel
    (one entry per user and charge point: bounded).
    """
    route = _ROUTES.get(channel, "")
    if route == "":
        route = _route(channel)
        if len(_ROUTES) > 100_000:
            _ROUTES.clear()
        _ROUTES[channel] = route
    return route


def _route(channel: str) -> str | None:
    if channel in ENDPOINTS or channel in (WEBSOCKET_CHANNEL, CMS_EVENTS_CHANNEL):
        return channel
    if match := _REDIS_CHANNEL.fullmatch(channel):
        return f"redis:{match.group(1)}"
    if channel.startswith(OCPP_CHANNEL_PREFIX) and len(channel) > len(OCPP_CHANNEL_PREFIX):
        return OCPP_ROUTE
    return None


def item_key(channel: str, direction: str, status: int | None, message: Any, *,
             answers: str | None = None) -> str | None:
    """The key of the :class:`SpecItem` a record is, or None when it fits no item.

    ``answers``: for an OCPP CALLRESULT, the action of the CALL it answers;
    for the backend's answer to a CMS event, that event. Only the caller
    can pair them (by the OCPP uniqueId, by the exchange's ``request_id``);
    without it such a record fits no item. A record fits no item when its
    channel, direction, status, type, event, action, close code or OCPP
    action is not in the universe: the contracts' checks judge it.
    """
    return key_of(route_of(channel), direction, status, message, answers=answers)


def key_of(route: str | None, direction: str, status: int | None, message: Any, *,
           answers: str | None = None) -> str | None:
    """:func:`item_key` of a record whose channel's route (:func:`route_of`) is known already."""
    if route is None:
        return None
    signature = _signature(route, direction, status, message, answers)
    return None if signature is None else _INDEX.get(signature)


def _signature(route: str, direction: str, status: int | None, message: Any,
               answers: str | None) -> Signature | None:
    if route == WEBSOCKET_CHANNEL:
        return _websocket_signature(direction, message)
    if route.startswith("redis:"):
        kind = _push_kind(message)
        return None if kind is None else (route, kind[0], kind[1])
    if route == OCPP_ROUTE:
        return _ocpp_signature(direction, message, answers)
    if route == CMS_EVENTS_CHANNEL:
        if direction == "request":
            event = message.get("event") if isinstance(message, dict) else None
            return (route, direction, event) if isinstance(event, str) else None
        return (route, direction, status, answers)
    return (route, direction) if direction == "request" else (route, direction, status)


def _websocket_signature(direction: str, message: Any) -> Signature | None:
    if direction == "receive":
        kind = _push_kind(message)
        if kind is None:
            return None
        if kind[0] == "response":
            return ("websocket", "receive", "response", *_action_outcome(message))
        return ("websocket", "receive", kind[0], kind[1], None)
    if direction == "close":
        return _close_signature(message)
    return ("websocket", direction)


def _push_kind(message: Any) -> tuple[str, str | None] | None:
    """``(type, event)`` of a gateway or Redis message (event None for a type without events); None if unreadable."""
    if type(message) is not dict:
        return None
    message_type = message.get("type")
    if type(message_type) is not str:
        return None
    if message_type not in EVENT_TYPES:
        return message_type, None
    event = message.get("event")
    return (message_type, event) if type(event) is str else None


def _action_outcome(message: dict[str, Any]) -> tuple[str | None, str | None]:
    """A ``response``'s ``action`` and ``success`` or ``failure`` (seed 4.2); None for what is unreadable."""
    action = message.get("action")
    data = message.get("data")
    success = data.get("success") if type(data) is dict else None
    outcome = "success" if success is True else "failure" if success is False else None
    return (action if type(action) is str else None), outcome


def _close_signature(message: Any) -> Signature | None:
    """Code and reason; a code whose reasons are open (``null`` in close-codes.json) takes any reason."""
    if type(message) is not dict:
        return None
    code, reason = message.get("code"), message.get("reason")
    if type(code) is not int or type(reason) is not str:
        return None
    exact = ("websocket", "close", code, reason)
    return exact if exact in _INDEX else ("websocket", "close", code, None)


def _ocpp_signature(direction: str, frame: Any, answers: str | None) -> Signature | None:
    """CALL ``[2, id, action, payload]``, CALLRESULT ``[3, id, payload]``, CALLERROR ``[4, id, code, ...]``."""
    if type(frame) is not list or len(frame) < 3:
        return None
    kind = frame[0]
    if type(kind) is not int or kind not in _OCPP_KINDS:
        return None
    if kind == 2:
        action = frame[2]
        return (OCPP_ROUTE, direction, 2, action) if type(action) is str else None
    if kind == 3:
        return (OCPP_ROUTE, direction, 3, answers)
    return (OCPP_ROUTE, direction, 4)
