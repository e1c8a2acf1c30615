"""The validator's own rules, in words: its routing checks and the JSON Schema keywords.

Semantic rules carry their words and spec section themselves
(:data:`~.rules.RULES`). The other violations the validator returns are
named here, one table per kind:

- :data:`ROUTING_RULES`: each routing check (where a message went, whether
  its ``type`` and ``event`` are known, the close codes, the REST envelope
  against the HTTP status) with one line of words and the spec section that
  the validator writes into its violations' ``spec``;
- :data:`SCHEMA_KEYWORDS`: one line per JSON Schema keyword, for violations
  named ``schema.<keyword>`` (their spec section is their schema's
  ``x-spec``).

Words are one line each; ``code`` is in double backquotes (reStructuredText).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["ROUTING_RULES", "SCHEMA_KEYWORDS", "RoutingRule"]


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """A routing check of the validator: its name, one line for people, its spec section.

    ``spec`` is None only for ``unknown_channel``: a channel or direction no
    contract covers is outside every section, and the validator raises
    :class:`~.exceptions.UnknownChannelError` for it instead of returning a
    violation; callers that report it as a violation name it so.
    """

    name: str
    summary: str
    spec: str | None


_WEBSOCKET_PUSH = "4. Node.js Gateway -> Mobile App (WebSocket)"

ROUTING_RULES: Final[Mapping[str, RoutingRule]] = {rule.name: rule for rule in (
    RoutingRule("unknown_channel", "A message went on a channel or in a direction no contract covers.", None),
    RoutingRule("message_is_object",
                "A message is not a JSON object (or a refused CMS event lacks the error envelope).", _WEBSOCKET_PUSH),
    RoutingRule("message_type_known", "A message has a ``type`` the spec does not define.", _WEBSOCKET_PUSH),
    RoutingRule("message_event_known", "A message has an ``event`` the spec does not define for its type.",
                _WEBSOCKET_PUSH),
    RoutingRule("type_allowed_on_channel", "A message type went on a Redis channel that does not carry it.",
                "Redis Channel Summary"),
    RoutingRule("receive_only", "The app sent a frame on the receive-only WebSocket (ruling 4).",
                "2. Mobile App -> Node.js Gateway (WebSocket Connection)"),
    RoutingRule("close_code_known", "A socket was closed with a code or reason the spec does not list.",
                "Error Handling"),
    RoutingRule("envelope_matches_status", "The REST envelope (``success``) does not fit the HTTP status.",
                "1. Mobile App -> Laravel Backend (REST API for Start/Stop)"),
    RoutingRule("event_answer_empty", "An accepted CMS event was answered with a body; it takes none.",
                "5. Example 2: Real-time Meter Value Updates (CMS -> backend internal event; docs/stack.md)"),
)}
"""Every routing check by name: its words and the spec section of its violations."""

SCHEMA_KEYWORDS: Final[Mapping[str, str]] = {
    "required": "A field the message must have is missing.",
    "type": "A value has the wrong JSON type.",
    "enum": "A value is not one of those the spec allows.",
    "const": "A value differs from the one value the spec allows.",
    "pattern": "A string does not have the shape the spec shows.",
    "format": "A string is not in its format (a date and time, ...).",
    "minimum": "A number is below its minimum.",
    "maximum": "A number is above its maximum.",
    "exclusiveMinimum": "A number is not above its lower bound.",
    "exclusiveMaximum": "A number is not below its upper bound.",
    "multipleOf": "A number is not a multiple of its step.",
    "minLength": "A string is shorter than allowed.",
    "maxLength": "A string is longer than allowed.",
    "minItems": "A list has fewer items than required.",
    "maxItems": "A list has more items than allowed.",
    "uniqueItems": "A list repeats an item that must be unique.",
    "contains": "A list lacks an item the spec requires.",
    "minProperties": "An object has fewer fields than required.",
    "maxProperties": "An object has more fields than allowed.",
    "additionalProperties": "The message has a field the spec does not define.",
    "unevaluatedProperties": "The message has a field the spec does not define.",
    "additionalItems": "A list has items the spec does not define.",
    "unevaluatedItems": "A list has items the spec does not define.",
    "propertyNames": "A field has a name the spec does not allow.",
    "dependentRequired": "A field that another field requires is missing.",
    "anyOf": "A value matches none of the shapes the spec allows.",
    "oneOf": "A value matches none, or more than one, of the shapes the spec allows.",
    "allOf": "A value breaks one of the shapes it must match.",
    "not": "A value has a shape the spec forbids.",
    "falseSchema": "A value is present where the spec allows none.",
    "contentEncoding": "A string is not in its content encoding.",
    "contentMediaType": "A string is not of its media type.",
}
"""One line per JSON Schema keyword, for violations named ``schema.<keyword>`` (jsonschema-rs's error kinds)."""
