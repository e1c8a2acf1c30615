"""The reference gateway: JWT in the query string, per-user routing of Redis messages, heartbeat, close codes.

The decisions are pure (:mod:`.routing`, :mod:`.messages`, :mod:`.presence`);
:class:`Gateway` (:mod:`.server`) is the asyncio adapter on ``websockets``
and ``redis.asyncio``. See ``docs/stack.md``, section Gateway.
"""

from __future__ import annotations

from .exceptions import GatewayError, GatewayStartError
from .routing import (
    AT_CAPACITY,
    AUTHENTICATION_REQUIRED,
    CHANNEL_PATTERNS,
    CLIENT_TOO_SLOW,
    INVALID_TOKEN,
    Admitted,
    Rejection,
    Router,
    Routing,
    parse_channel,
    path_allowed,
    token_from_path,
    user_rejection,
)
from .server import ACTIVE_SESSION_KEY, CHARGER_LIST_KEY, CONNECTED_USERS_KEY, USERS_KEY, Gateway, GatewayMetrics

__all__ = [
    "ACTIVE_SESSION_KEY",
    "AT_CAPACITY",
    "AUTHENTICATION_REQUIRED",
    "CHANNEL_PATTERNS",
    "CHARGER_LIST_KEY",
    "CLIENT_TOO_SLOW",
    "CONNECTED_USERS_KEY",
    "INVALID_TOKEN",
    "USERS_KEY",
    "Admitted",
    "Gateway",
    "GatewayError",
    "GatewayMetrics",
    "GatewayStartError",
    "Rejection",
    "Router",
    "Routing",
    "parse_channel",
    "path_allowed",
    "token_from_path",
    "user_rejection",
]
