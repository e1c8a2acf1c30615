"""Private helpers: reading ids and fields out of trace records without trusting their shape.

Invariant checks run on traces whose messages may break the contracts (the
``schema_and_rules`` check reports that); these helpers never raise on a
malformed message, they answer ``None`` or an empty mapping.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ._interning import ByIdentity
from .trace import TraceRecord

SESSION_END_EVENTS = frozenset({"session_stopped", "session_completed", "session_error"})


def message_dict(record: TraceRecord) -> Mapping[str, Any]:
    message = record.message
    return message if isinstance(message, dict) else {}


def data_of(message: Mapping[str, Any]) -> Mapping[str, Any]:
    data = message.get("data")
    return data if isinstance(data, dict) else {}


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def is_ws_receive(record: TraceRecord) -> bool:
    return record.hop == "gateway-app" and record.direction == "receive"


def is_session_update(record: TraceRecord) -> bool:
    """A ``session_update`` published on Redis or received on an app socket."""
    if not (record.hop == "redis" or is_ws_receive(record)):
        return False
    message = record.message
    return isinstance(message, dict) and message.get("type") == "session_update"


def session_of(record: TraceRecord) -> int | None:
    """The session a record belongs to: its ``session_id`` correlation id, else the message's own."""
    if record.session_id is not None:
        return record.session_id
    message = message_dict(record)
    found = as_int(message.get("session_id"))
    return found if found is not None else as_int(data_of(message).get("session_id"))


def redis_user(channel: str) -> int | None:
    """The user id of ``redis:user:{id}:...``, or None."""
    parts = channel.split(":", 3)
    if len(parts) == 4 and parts[0] == "redis" and parts[1] == "user" and parts[2].isdigit():
        return int(parts[2])
    return None


def socket_user(record: TraceRecord) -> int | None:
    """The user of the socket that received a ``gateway-app`` record."""
    return record.user_id


def canonical(message: Any) -> str:
    """One text per JSON value, whatever its key order: equal texts, equal messages."""
    return json.dumps(message, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(message: Any) -> bytes:
    """A short digest of :func:`canonical`: equal digests, equal messages (128 bits: no collision in a run).

    Remembered per message object, so a fan-out's copies (read into one
    object) are encoded once, and the indexes keyed by it stay small.
    """
    return _FINGERPRINTS.get(message)


_FINGERPRINTS: ByIdentity[bytes] = ByIdentity(
    lambda message, _: hashlib.blake2b(canonical(message).encode(), digest_size=16).digest())


def route_key(channel: str) -> str:
    """What the contracts' verdict on a message depends on: a Redis channel's kind, not its user."""
    return channel.rpartition(":")[2] if channel.startswith("redis:") else channel


def successful_start(record: TraceRecord) -> int | None:
    """The session id of a successful ``POST /api/charging/start`` response the app received, else None."""
    if record.hop != "app-backend" or record.direction != "response" \
            or record.channel != "backend:/api/charging/start":
        return None
    if record.status is not None and not 200 <= record.status < 300:
        return None
    message = message_dict(record)
    if message.get("success") is not True:
        return None
    return as_int(data_of(message).get("session_id"))


def describe(record: TraceRecord) -> str:
    where = f"line {record.line}, " if record.line else ""
    socket = f", socket {record.socket_id}" if record.socket_id is not None else ""
    return f"{where}{record.hop} {record.channel} {record.direction} at t_sim={record.t_sim:g}{socket}"
