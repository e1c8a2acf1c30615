"""What an app may send to the twin, checked without I/O: REST requests, WebSocket handshakes, client frames.

The seed's contract for the app's side: ``POST /api/charging/start`` and
``/api/charging/stop`` with ``Authorization: Bearer {JWT}`` and
``Content-Type: application/json`` and a body of the request schema (seed
1; the login of SPEC-NOTES N-25 likewise, without the token); the socket at
``ws://host:port?token=JWT`` (seed 2, N-32), on which the app sends nothing
(seed 2, ruling D4, N-22). Each function here takes what arrived and
returns the :class:`~chargetwin.contracts.Violation` s of the app, each
named by a rule of :data:`APP_RULES` or by the contracts' validator
(``schema.<keyword>``, ``receive_only``); :mod:`.appwatch` is the asyncio
adapter that feeds them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from chargetwin.contracts import Validator, Violation, default_validator
from chargetwin.contracts.catalog import ENDPOINTS, WEBSOCKET_CHANNEL
from chargetwin.contracts.validator_rules import ROUTING_RULES

from . import auth
from ._http import read_json
from .auth import AuthError

__all__ = [
    "APP_RULES",
    "BACKEND_CHANNELS",
    "PROTOCOL_CLOSE_CODES",
    "AppRule",
    "ClientFrame",
    "Handshake",
    "Headers",
    "RestRequest",
    "check_client_frame",
    "check_closed_by_protocol",
    "check_handshake",
    "check_rest_request",
    "frame_message",
    "parse_body",
]

Verify = Callable[[str], int]
"""A token -> its user id; raises :class:`~.auth.AuthError` when it is not valid."""


Headers = Mapping[str, str]
"""Request headers, read by lower-case name (a case-insensitive mapping, or a dict with lower-case keys)."""


@dataclass(frozen=True, slots=True)
class AppRule:
    """One thing an app must do: its name, one line for people, the seed section it comes from."""

    name: str
    summary: str
    spec: str


_REST = "1. Mobile App -> Laravel Backend (REST API for Start/Stop)"
_HEADERS = "1. Start Charging / Stop Charging (Headers)"
_SOCKET = "2. Mobile App -> Node.js Gateway (WebSocket Connection)"

APP_RULES: Final = {rule.name: rule for rule in (
    AppRule("method_is_post", "Start, stop and login are POST requests.", _REST),
    AppRule("authorization_present", "A start or stop request carries an Authorization header.", _HEADERS),
    AppRule("authorization_is_bearer", "The Authorization header is 'Bearer <JWT>'.", _HEADERS),
    AppRule("token_valid", "The request's JWT is well formed, signed with the twin's secret and not expired "
                           "(D8, SPEC-NOTES N-25).", _HEADERS),
    AppRule("content_type_json", "A request carries 'Content-Type: application/json'.", _HEADERS),
    AppRule("body_is_json", "A request's body is JSON (an object of the request schema).", _REST),
    AppRule("handshake_is_websocket", "The gateway is reached with a WebSocket handshake (Upgrade: websocket).",
            _SOCKET),
    AppRule("handshake_path", "The socket's URL has no path: ws://host:port?token=JWT.", _SOCKET),
    AppRule("handshake_query_wellformed", "The socket URL's query string is name=value pairs, with one token.",
            _SOCKET),
    AppRule("handshake_token_present", "The socket URL carries the JWT as ?token= (SPEC-NOTES N-32).", _SOCKET),
    AppRule("handshake_token_valid", "The socket's JWT is well formed, signed with the twin's secret and not "
                                     "expired (D8).", _SOCKET),
    AppRule("frames_well_formed", "The app's WebSocket frames follow RFC 6455: the gateway never has to close "
                                  "with 1002, 1007 or 1009 (SPEC-NOTES N-56).", "Error Handling"),
)}
"""Every rule of the app's side that is not a rule of a message (those are the validator's), by name."""

BACKEND_CHANNELS: Final = {e.path: e.channel for e in ENDPOINTS.values() if e.service == "backend"}
"""The backend's endpoints an app calls, by path: ``/api/charging/start`` -> ``backend:/api/charging/start``."""

PROTOCOL_CLOSE_CODES: Final = frozenset({1002, 1003, 1007, 1009})
"""Close codes with which a WebSocket endpoint answers frames that break RFC 6455 (SPEC-NOTES N-56)."""

_LOGIN = "backend:/api/auth/login"
_TOKEN_LIKE = re.compile(r"(?i)^(token|access_token|jwt|auth|authorization)$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_EXCERPT = 120


def _violation(rule: str, message: str, *, pointer: str = "", expected: Any = None, actual: Any = None) -> Violation:
    return Violation(rule=rule, pointer=pointer, message=message, expected=expected, actual=actual,
                     spec=APP_RULES[rule].spec)


def _excerpt(value: Any) -> str:
    """``value`` as JSON (control characters escaped: it goes to a terminal), cut to a line."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _EXCERPT else text[:_EXCERPT - 3] + "..."


# --- REST ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestRequest:
    """A request as judged: its violations, the user its token names (None if none is valid), its body as JSON
    (else its text; None when empty), as a trace records it."""

    violations: list[Violation]
    user_id: int | None
    message: Any


def parse_body(raw: bytes) -> tuple[bool, Any]:
    """``(is JSON, value)``: the JSON of ``raw`` as the backend reads it (no NaN), else its text; None if empty."""
    if not raw.strip():
        return False, None
    try:
        return True, read_json(raw)
    except ValueError:
        return False, raw.decode("utf-8", errors="replace")


def check_rest_request(channel: str, *, method: str, headers: Headers, body: bytes, verify: Verify,
                       validator: Validator | None = None) -> RestRequest:
    """Judge one request of an app to a backend endpoint (``channel``, one of :data:`BACKEND_CHANNELS`)."""
    found: list[Violation] = []
    user_id = None if channel == _LOGIN else _bearer(headers.get("authorization"), found, verify)
    if method.upper() != "POST":  # the rest was not meant as a request of this endpoint: not judged
        return RestRequest([_violation("method_is_post", f"{method} {channel.partition(':')[2]}: this endpoint "
                                       "takes POST", expected="POST", actual=method)], user_id, parse_body(body)[1])
    media = headers.get("content-type")
    if (media or "").partition(";")[0].strip().lower() != "application/json":
        found.append(_violation("content_type_json", "send 'Content-Type: application/json'"
                                + (f", not {media!r}" if media else " (the request has none)"),
                                expected="application/json", actual=media))
    is_json, message = parse_body(body)
    if not is_json:
        problem = "the body is empty" if message is None else f"the body is not JSON: {_excerpt(message)}"
        found.append(_violation("body_is_json", f"{problem}; send a JSON object of the request schema",
                                expected="a JSON object", actual=message))
    else:
        found.extend((validator or default_validator()).validate(message, channel=channel, direction="request"))
    return RestRequest(found, user_id, message)


def _bearer(authorization: str | None, found: list[Violation], verify: Verify) -> int | None:
    """The user id of ``Authorization: Bearer <JWT>``; else None, with the violation added to ``found``."""
    try:
        token = auth.bearer_token(authorization)
    except auth.MissingTokenError:
        found.append(_violation("authorization_present", "no Authorization header: send 'Authorization: Bearer "
                                "<token>' (from POST /api/auth/login)", expected="Bearer <token>"))
        return None
    except auth.NotBearerError:
        found.append(_violation("authorization_is_bearer", f"the Authorization header is not 'Bearer <token>': "
                                f"{_excerpt(authorization)}", expected="Bearer <token>", actual=authorization))
        return None
    try:
        return verify(token)
    except AuthError as error:
        found.append(_violation("token_valid", str(error), actual=_excerpt(token)))
        return None


# --- WebSocket ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handshake:
    """A WebSocket handshake as judged: its violations and the user its token names (None if none is valid)."""

    violations: list[Violation]
    user_id: int | None


def check_handshake(path: str, headers: Headers, *, verify: Verify) -> Handshake:
    """Judge the request line (path and query) and headers of an app's handshake with the gateway."""
    found: list[Violation] = []
    if "websocket" not in (headers.get("upgrade") or "").lower():
        found.append(_violation("handshake_is_websocket", "not a WebSocket handshake (no 'Upgrade: websocket'): "
                                "open the gateway's URL with a WebSocket client", actual=headers.get("upgrade")))
    split = urlsplit(path)
    if split.path not in ("", "/"):
        found.append(_violation("handshake_path", f"the gateway's URL has no path: connect to ws://host:port?token=..."
                                f", not {_excerpt(split.path)}", expected="/", actual=split.path))
    query = parse_qs(split.query, keep_blank_values=True)
    _query_problems(split.query, query, found)
    tokens = query.get("token", [])
    if not tokens or not tokens[0]:
        found.append(_violation("handshake_token_present", "no token: connect to ws://host:port?token=<JWT>"
                                + _token_hint(query, headers), expected="?token=<JWT>"))
        return Handshake(found, None)
    token = tokens[0]
    try:
        return Handshake(found, verify(token))
    except AuthError as error:
        hint = " (the query holds the JWT alone, without 'Bearer ')" if token.lower().startswith("bearer") else ""
        found.append(_violation("handshake_token_valid", f"{error}{hint}", actual=_excerpt(token)))
        return Handshake(found, None)


def _query_problems(raw: str, query: dict[str, list[str]], found: list[Violation]) -> None:
    fields = [f for f in raw.split("&") if f]
    bare = [f for f in fields if "=" not in f]
    problems = [f"{_excerpt(f)} has no '='" for f in bare]
    if _BAD_PERCENT.search(raw):
        problems.append("a '%' is not followed by two hex digits (percent-encode the token)")
    if len(query.get("token", [])) > 1:
        problems.append(f"token is given {len(query['token'])} times")
    if problems:
        found.append(_violation("handshake_query_wellformed", "the query string: " + "; ".join(problems),
                                expected="token=<JWT>", actual=_excerpt(raw)))


def _token_hint(query: dict[str, list[str]], headers: Headers) -> str:
    """Where an app that sent its token elsewhere put it."""
    named = [name for name in query if name != "token" and _TOKEN_LIKE.match(name)]
    if named:
        return f" (the query names it {named[0]!r}; the gateway reads 'token')"
    if headers.get("authorization"):
        return " (the gateway reads the query string, not the Authorization header)"
    if headers.get("sec-websocket-protocol"):
        return " (the gateway reads the query string, not Sec-WebSocket-Protocol)"
    return ""


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """A frame the app sent as judged: its violations, and the frame as a trace records it (its JSON, else text)."""

    violations: list[Violation]
    message: Any


def frame_message(data: str | bytes) -> Any:
    """A frame's JSON, else its text (a binary frame that is not UTF-8: a note of its size)."""
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            return f"<binary frame of {len(data)} bytes>"
    try:
        return read_json(data)
    except ValueError:
        return data


def check_client_frame(data: str | bytes, *, validator: Validator | None = None) -> ClientFrame:
    """Judge a message the app sent on the receive-only socket (channel ``websocket``, direction ``send``)."""
    message = frame_message(data)
    if isinstance(message, dict):
        found = (validator or default_validator()).validate(message, channel=WEBSOCKET_CHANNEL, direction="send")
    else:  # the validator takes objects only; any frame breaks the same rule
        found = [Violation("receive_only", "", "the WebSocket is receive-only: apps must not send frames (use the "
                           "REST API)", expected="no frame", actual=message, spec=ROUTING_RULES["receive_only"].spec)]
    return ClientFrame([_with_excerpt(v, message) for v in found], message)


def _with_excerpt(violation: Violation, message: Any) -> Violation:
    if violation.rule != "receive_only":
        return violation
    return Violation(violation.rule, violation.pointer, f"{violation.message}; got {_excerpt(message)}",
                     violation.expected, violation.actual, violation.schema, violation.spec)


def check_closed_by_protocol(code: int | None, reason: str) -> list[Violation]:
    """The gateway's close frame of a socket: a violation of the app when the app's frames broke RFC 6455."""
    if code not in PROTOCOL_CLOSE_CODES:
        return []
    return [_violation("frames_well_formed", f"the gateway closed the socket with {code} {reason!r}: a frame of "
                       "the app broke the WebSocket protocol (the app should send nothing at all)",
                       expected="no frame", actual=code)]
