"""What each rule and check says, in words, and where in the protocol document it comes from.

Semantic rules speak for themselves (``chargetwin.contracts.RULES``: one
summary line and a spec section each). JSON Schema keywords and the
validator's routing checks get a short text here. Cross-message checks are
described by results.json itself (``checks[].description`` and
``checks[].spec``, written by the runner); a file without them shows the
check's name alone.

Spec sections are cited as strings ("3.2 Session Updates Channel"); the
report turns each into an anchor of its appendix (:func:`spec_anchor`) and,
given the base URL of the published protocol document, an outbound link
whose fragment is the heading's GitHub-style slug (:func:`spec_slug`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from chargetwin.contracts import RULES

__all__ = ["ROUTING_RULES", "SCHEMA_KEYWORDS", "SpecRef", "normal_section", "rule_words", "spec_anchor", "spec_ref",
           "spec_slug"]

SCHEMA_KEYWORDS: Final[dict[str, str]] = {
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
"""One line per JSON Schema keyword, for violations named ``schema.<keyword>``."""

ROUTING_RULES: Final[dict[str, str]] = {
    "unknown_channel": "A message went on a channel or in a direction no contract covers.",
    "message_is_object": "A message is not a JSON object (or a refused CMS event lacks the error envelope).",
    "message_type_known": "A message has a ``type`` the spec does not define.",
    "message_event_known": "A message has an ``event`` the spec does not define for its type.",
    "type_allowed_on_channel": "A message type went on a Redis channel that does not carry it.",
    "receive_only": "The app sent a frame on the receive-only WebSocket (ruling 4).",
    "close_code_known": "A socket was closed with a code or reason the spec does not list.",
    "envelope_matches_status": "The REST envelope (``success``) does not fit the HTTP status.",
    "event_answer_empty": "An accepted CMS event was answered with a body; it takes none.",
}
"""The validator's routing checks (``chargetwin.contracts.validator``), one line each."""


@dataclass(frozen=True, slots=True)
class SpecRef:
    """A cited section: its text, the report's anchor for it, and an outbound link when a spec URL is known."""

    section: str
    anchor: str
    url: str | None


def rule_words(rule: str | None, check: str, description: str | None) -> str:
    """What ``rule`` (of ``check``) asserts, in one line; ``code`` in double backquotes (reStructuredText)."""
    if rule is None:
        return description or f"The {check} check."
    if rule in RULES:
        summary: str = RULES[rule].summary
        return summary
    if rule.startswith("schema."):
        keyword = rule.removeprefix("schema.")
        return SCHEMA_KEYWORDS.get(keyword, f"The message breaks the JSON Schema keyword ``{keyword}``.")
    return ROUTING_RULES.get(rule, f"The message breaks the rule ``{rule}``.")


def normal_section(section: str) -> str:
    """One spelling per section: the validator writes ``->`` where the document has ``→``."""
    return " ".join(section.replace("->", "→").split())


def spec_slug(section: str) -> str:
    """The GitHub-style slug of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", normal_section(section).lower())
    return text.replace(" ", "-")


def spec_anchor(section: str) -> str:
    """The id of the section's entry in the report's appendix."""
    return "spec-" + (spec_slug(section) or "unnamed")


def spec_ref(section: str | None, spec_url: str | None) -> SpecRef | None:
    """The reference to ``section`` (None when no section is given)."""
    if not section:
        return None
    text = normal_section(section)
    url = f"{spec_url.split('#')[0]}#{spec_slug(text)}" if spec_url else None
    return SpecRef(text, spec_anchor(text), url)
