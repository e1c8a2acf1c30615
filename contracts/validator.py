"""One entry point to check any message of the protocol: :class:`Validator`.

Given a message and where it was seen (an HTTP endpoint and direction, the
WebSocket, a Redis channel), the validator picks the schema (by endpoint,
or by ``type`` and ``event``), validates it, runs the semantic rules of
that schema, and returns the :class:`Violation` s found. Schemas are
compiled once, when the validator is made; routes are cached per channel.
The routing checks and JSON Schema keywords that name its violations are
listed, with their words (and the routing checks' spec sections), in
:mod:`.validator_rules`.

Call order: make one :class:`Validator` (or use :func:`default_validator`)
and call :meth:`Validator.validate` for every message, from any number of
places. It keeps no state between calls.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import jsonschema_rs

from . import catalog
from .catalog import CMS_EVENTS, CMS_EVENTS_CHANNEL, ENDPOINTS, EVENT_TYPES, MESSAGE_SCHEMAS
from .exceptions import ContractLoadError, UnknownChannelError
from .rules import DEFAULT_RULES, RULES_BY_SCHEMA, Rule
from .schemas import close_codes, schema_documents
from .validator_rules import ROUTING_RULES
from .violations import Violation

__all__ = ["Validator", "default_validator", "json_pointer"]

_REDIS_CHANNEL = re.compile(r"redis:user:([0-9]+):(notifications|session_updates|charger_updates)")


def json_pointer(path: Any) -> str:
    """RFC 6901 pointer of a sequence of keys and indices."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@dataclass(frozen=True, slots=True)
class _Route:
    kind: str  # "http", "cms_events", "websocket", "redis", "ocpp"
    directions: tuple[str, ...]
    endpoint: catalog.Endpoint | None = None
    allowed_types: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Compiled:
    name: str
    spec: str | None
    validator: Any  # a jsonschema_rs validator
    rules: tuple[Rule, ...]


def _rules_of(name: str) -> tuple[Rule, ...]:
    """Semantic rules of a schema; OCPP frames are arrays, outside the object rules (timestamps, ...)."""
    if name == catalog.OCPP_FRAME_SCHEMA:
        return ()
    return RULES_BY_SCHEMA.get(name, DEFAULT_RULES)


def _routing(rule: str, pointer: str, message: str, expected: Any, actual: Any) -> Violation:
    """A violation of the routing check ``rule`` (a key of :data:`ROUTING_RULES`), citing its spec section."""
    return Violation(rule=rule, pointer=pointer, message=message, expected=expected,
                     actual=actual, spec=ROUTING_RULES[rule].spec)


class Validator:
    """Checks messages against the bundled contracts.

    >>> v = Validator()
    >>> v.validate({"type": "error", "message": "Invalid message format",
    ...             "timestamp": "2025-01-29T12:00:00Z"}, channel="websocket", direction="receive")
    []
    """

    def __init__(self) -> None:
        documents = schema_documents()
        try:
            registry = jsonschema_rs.Registry([(doc["$id"], doc) for doc in documents.values()])
            self._compiled = {
                name: _Compiled(name, doc.get("x-spec"),
                                jsonschema_rs.validator_for(doc, registry=registry, validate_formats=False),
                                _rules_of(name))
                for name, doc in documents.items() if name != "defs"
            }
        except (ValueError, jsonschema_rs.ValidationError) as error:
            raise ContractLoadError(f"a bundled schema does not compile: {error}") from error
        self._close_codes = close_codes()
        self._routes: dict[str, _Route] = {}

    @property
    def schema_names(self) -> tuple[str, ...]:
        """Names of every compiled schema (``messages/connected``, ...)."""
        return tuple(self._compiled)

    def validate(self, message: Any, *, channel: str, direction: str,
                 status: int | None = None) -> list[Violation]:
        """Violations of ``message``, seen on ``channel`` going ``direction``.

        ``status`` is the HTTP status of a response, when known. Raises
        :class:`UnknownChannelError` for a channel or direction the contracts
        do not know; a message that breaks the contract is never an exception.
        """
        route = self._routes.get(channel) or self._route(channel)
        if direction not in route.directions:
            raise UnknownChannelError(
                f"direction {direction!r} is not known on channel {channel!r}; "
                f"use one of {', '.join(route.directions)}"
            )
        if route.kind == "cms_events" and direction == "response":
            return self._validate_cms_event_answer(message, status)
        if direction in catalog.HEARTBEAT_DIRECTIONS:  # a control frame: nothing of it is a message (seed "Heartbeat")
            return []
        if not isinstance(message, dict):
            if route.kind == "ocpp":  # an OCPP-J frame is a JSON array
                return self.check(catalog.OCPP_FRAME_SCHEMA, message)
            return [_routing("message_is_object", "", "a message must be a JSON object",
                             "object", type(message).__name__)]
        kind = route.kind
        if kind == "websocket" or kind == "redis":
            return self._validate_push(message, route, direction)
        if kind == "http":
            return self._validate_http(message, route, direction, status)
        if kind == "ocpp":
            return self.check(catalog.OCPP_FRAME_SCHEMA, message)
        return self._validate_cms_event(message)

    def check(self, name: str, message: Any) -> list[Violation]:
        """Validate ``message`` against the schema ``name`` and its semantic rules."""
        compiled = self._compiled[name]
        if compiled.validator.is_valid(message):
            found: list[Violation] = []
            for rule in compiled.rules:
                found.extend(rule.check(message))
            return [replace(v, schema=compiled.name) for v in found] if found else found
        return [v for error in compiled.validator.iter_errors(message)
                for v in _schema_violations(error, compiled)]

    # --- routing ---------------------------------------------------------------------

    def _route(self, channel: str) -> _Route:
        if channel == catalog.WEBSOCKET_CHANNEL:
            route = _Route("websocket", catalog.DIRECTIONS["websocket"])
        elif channel in ENDPOINTS:
            route = _Route("http", catalog.DIRECTIONS["http"], endpoint=ENDPOINTS[channel])
        elif channel == CMS_EVENTS_CHANNEL:
            route = _Route("cms_events", catalog.DIRECTIONS["cms_events"])
        elif match := _REDIS_CHANNEL.fullmatch(channel):
            route = _Route("redis", catalog.DIRECTIONS["redis"],
                           allowed_types=catalog.REDIS_CHANNEL_TYPES[match.group(2)])
            if len(self._routes) > 100_000:  # one entry per user: keep the cache bounded
                self._routes.clear()
        elif channel.startswith(catalog.OCPP_CHANNEL_PREFIX) and len(channel) > len(catalog.OCPP_CHANNEL_PREFIX):
            route = _Route("ocpp", catalog.DIRECTIONS["ocpp"])
            if len(self._routes) > 100_000:  # one entry per charge point: keep the cache bounded
                self._routes.clear()
        else:
            raise UnknownChannelError(
                f"unknown channel {channel!r}; known: 'websocket', "
                "'redis:user:{userId}:notifications|session_updates|charger_updates', "
                "'ocpp:{chargePointId}', "
                + ", ".join(repr(c) for c in (*ENDPOINTS, CMS_EVENTS_CHANNEL))
            )
        self._routes[channel] = route
        return route

    def _validate_http(self, message: dict[str, Any], route: _Route, direction: str,
                       status: int | None) -> list[Violation]:
        endpoint = route.endpoint
        assert endpoint is not None
        if direction == "request":
            return self.check(endpoint.request, message)
        failed = message.get("success") is False or ("success" not in message and "error" in message)
        found = self.check(endpoint.error if failed else endpoint.response, message)
        if status is not None and (status >= 400) != failed:
            expected = "a 4xx or 5xx status" if failed else "a 2xx status"
            found.append(_routing("envelope_matches_status", "/success",
                                  f"HTTP {status} with success={message.get('success')!r}: "
                                  f"the error envelope goes with 4xx/5xx, success with 2xx",
                                  expected, status))
        return found

    def _validate_cms_event_answer(self, message: Any, status: int | None) -> list[Violation]:
        """The backend's answer to an event: 202 and no body, or an error envelope with 4xx/5xx (stack.md)."""
        if status is not None and status < 400:
            if message is None:
                return []
            return [_routing("event_answer_empty", "", "an accepted CMS event is answered with no body",
                             None, type(message).__name__)]
        if not isinstance(message, dict):
            return [_routing("message_is_object", "", "a refused CMS event is answered with the error envelope",
                             "object", type(message).__name__)]
        return self.check(catalog.ERROR_SCHEMA, message)

    def _validate_cms_event(self, message: dict[str, Any]) -> list[Violation]:
        event = message.get("event")
        if event not in CMS_EVENTS:
            return [_routing("message_event_known", "/event", "unknown CMS event",
                             list(CMS_EVENTS), event)]
        return self.check(f"cms/events/{event}", message)

    def _validate_push(self, message: dict[str, Any], route: _Route, direction: str) -> list[Violation]:
        if direction == "send":
            return [_routing("receive_only", "", "the WebSocket is receive-only: apps must not send "
                             "frames (use the REST API)", "no frame", message)]
        if direction == "close":
            return self._validate_close(message)
        message_type = message.get("type")
        if message_type not in MESSAGE_SCHEMAS:
            return [_routing("message_type_known", "/type", "unknown message type",
                             list(MESSAGE_SCHEMAS), message_type)]
        found: list[Violation] = []
        if route.kind == "redis" and message_type not in route.allowed_types:
            found.append(_routing("type_allowed_on_channel", "/type",
                                  f"{message_type!r} is not published on this channel",
                                  sorted(route.allowed_types), message_type))
        events = EVENT_TYPES.get(message_type)
        if events is None:
            found.extend(self.check(f"messages/{message_type}", message))
            return found
        event = message.get("event")
        if event not in events:
            found.append(_routing("message_event_known", "/event",
                                  f"unknown event of {message_type}", list(events), event))
            return found
        found.extend(self.check(f"messages/{message_type}/{event}", message))
        return found

    def _validate_close(self, message: dict[str, Any]) -> list[Violation]:
        found = self.check(catalog.CLOSE_SCHEMA, message)
        if found:
            return found
        code, reason = message["code"], message["reason"]
        if code not in self._close_codes:
            found.append(_routing("close_code_known", "/code", "the gateway does not close with this code",
                                  sorted(self._close_codes), code))
        else:
            reasons = self._close_codes[code]
            if reasons is not None and reason not in reasons:
                found.append(_routing("close_code_known", "/reason",
                                      f"close code {code} is sent with one of these reasons",
                                      sorted(reasons), reason))
        return found


def _schema_violations(error: Any, compiled: _Compiled) -> list[Violation]:
    keyword = error.kind.name
    details = error.kind.as_dict()
    path = list(error.instance_path)
    common = {"schema": compiled.name, "spec": compiled.spec}
    rule = f"schema.{keyword}"
    if keyword == "required":
        return [Violation(rule, json_pointer([*path, details["property"]]), error.message,
                          expected="present", actual=None, **common)]
    if keyword in ("additionalProperties", "unevaluatedProperties"):
        return [Violation(rule, json_pointer([*path, extra]),
                          f"{extra!r} is not a property of this message", expected="absent",
                          actual=error.instance.get(extra) if isinstance(error.instance, dict) else None,
                          **common)
                for extra in details["unexpected"]]
    expected = next(iter(details.values())) if len(details) == 1 else (details or None)
    return [Violation(rule, json_pointer(path), error.message, expected=expected,
                      actual=error.instance, **common)]


@cache
def default_validator() -> Validator:
    """The process-wide validator over the bundled contracts (made on first use)."""
    return Validator()
