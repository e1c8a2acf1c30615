"""The messages the gateway writes itself, as JSON text, without I/O.

On connect (DESIGN ruling 5, seed 4.1, 4.7, 4.8): ``connected``, then
``charger_list_update`` built from the Redis key ``chargetwin:charger_list``,
then ``active_session_update`` from ``chargetwin:active_session:{userId}``
(``docs/stack.md``). For any frame an app sends: ``error`` (ruling 4, seed
4.9). Everything else the gateway sends is a Redis message, forwarded as
received. Timestamps come from the twin's clock, written by
:func:`chargetwin.twin.services.timestamps.format_timestamp`.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "RECEIVE_ONLY",
    "ChargerListCache",
    "SnapshotError",
    "active_session_update",
    "charger_list_update",
    "connected",
    "error",
    "parse_active_session",
    "welcome",
]

RECEIVE_ONLY: Final = ("This WebSocket is receive-only: use the REST API "
                       "(POST /api/charging/start, POST /api/charging/stop)")
"""The ``error`` text for a frame from an app (seed 2, "WebSocket is RECEIVE-ONLY")."""


class SnapshotError(ValueError):
    """A Redis key read on connect does not hold what ``docs/stack.md`` says it holds."""


def _encode(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def connected(user_id: int, timestamp: str) -> str:
    return _encode({"type": "connected", "timestamp": timestamp, "userId": user_id})


def charger_list_update(chargers_json: str, timestamp: str) -> str:
    """``charger_list_update`` around an already checked JSON list, embedded as it is (no re-encoding)."""
    return (f'{{"type":"charger_list_update","action":"update","data":{{"chargers":{chargers_json},'
            f'"timestamp":"{timestamp}"}},"timestamp":"{timestamp}"}}')


def active_session_update(session: dict[str, Any] | None, timestamp: str) -> str:
    return _encode({"type": "active_session_update", "has_active_session": session is not None,
                    "data": session, "timestamp": timestamp})


def error(text: str, timestamp: str) -> str:
    return _encode({"type": "error", "message": text, "timestamp": timestamp})


def welcome(user_id: int, timestamp: str, *, chargers_json: str, session: dict[str, Any] | None) -> list[str]:
    """The three messages of a new connection, in the order of DESIGN ruling 5."""
    return [connected(user_id, timestamp), charger_list_update(chargers_json, timestamp),
            active_session_update(session, timestamp)]


def parse_active_session(raw: bytes | None) -> dict[str, Any] | None:
    """The session in ``chargetwin:active_session:{userId}``: None when the key is absent."""
    if raw is None:
        return None
    try:
        session = json.loads(raw)
    except ValueError as exc:
        raise SnapshotError(f"the active session key does not hold JSON: {exc}") from None
    if not isinstance(session, dict):
        raise SnapshotError(f"the active session key holds a {type(session).__name__}, not an object")
    return session


class ChargerListCache:
    """``chargetwin:charger_list`` checked once per value, not once per connection.

    Apps reconnect in storms; the list is the biggest message they get. Its
    text is parsed only when the key's value changes, and is then embedded in
    every ``charger_list_update`` as it is.
    """

    def __init__(self) -> None:
        self._raw: bytes | None = None
        self._text = "[]"

    def chargers_json(self, raw: bytes | None) -> str:
        """The JSON list text to embed: ``[]`` when the key is absent; :class:`SnapshotError` if malformed."""
        if raw is None:
            return "[]"
        if raw != self._raw:
            try:
                text = raw.decode("utf-8")
                chargers = json.loads(text)
            except ValueError as exc:
                raise SnapshotError(f"chargetwin:charger_list does not hold JSON: {exc}") from None
            if not isinstance(chargers, list):
                raise SnapshotError(f"chargetwin:charger_list holds a {type(chargers).__name__}, not a list")
            self._raw, self._text = raw, text
        return self._text
