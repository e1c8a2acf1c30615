"""Options shared by the commands that start reference services: ``serve``, ``backend``, ``cms``, ``gateway``.

Every option also comes from the environment (``CHARGETWIN_<FIELD>``,
``REDIS_URL``: :meth:`Settings.from_env`); a flag given wins. Secrets (the
JWT secret, the internal token) come from the environment only, never from
a flag: a flag shows in ``ps`` and in CI logs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from .twin.services.settings import Settings
from .twin.services.users import PASSWORD, TestUser

__all__ = ["DEFAULT_PORTS", "RESERVED_USERS", "add_listen_options", "settings_from", "user_lines"]

DEFAULT_PORTS = {"backend": 8000, "cms": 8001, "ocpp": 9000, "gateway": 8080}
"""DESIGN.md's default ports."""

RESERVED_USERS = 10
"""Test users 1..10 are for people: the simulated drivers never use them, so they are always free."""

_PEERS = {"backend": "cms", "cms": "backend"}


def add_listen_options(parser: argparse.ArgumentParser, roles: Sequence[str], *, peers: Iterable[str] = (),
                       database: bool = False, redis: bool = False) -> None:
    """``--host``, a ``--ROLE-port`` per role, ``--PEER-url`` per peer, ``--database``, ``--redis``."""
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    for role in roles:
        parser.add_argument(f"--{role}-port", type=int, metavar="PORT",
                            help=f"port of the {role} (default {DEFAULT_PORTS[role]}; 0: any free)")
    for peer in peers:
        parser.add_argument(f"--{peer}-url", metavar="URL",
                            help=f"where the {peer} is (default http://HOST:{DEFAULT_PORTS[peer]}; also "
                                 f"CHARGETWIN_{peer.upper()}_BASE_URL)")
    if database:
        parser.add_argument("--database", help="SQLite file of the backend (default: chargetwin.sqlite3; for "
                                               "serve, backend.sqlite3 in its state folder)")
    if redis:
        parser.add_argument("--redis", metavar="URL",
                            help="Redis to use (default REDIS_URL; without either, a private Redis is started)")


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings with the flags ``args`` has applied; ValueError names a bad variable."""
    settings = Settings.from_env()
    changes: dict[str, Any] = {}
    for role in DEFAULT_PORTS:
        port = getattr(args, f"{role}_port", None)
        if port is not None:
            changes[f"{role}_port"] = port
    for peer in _PEERS.values():
        url = getattr(args, f"{peer}_url", None)
        if url:
            changes[f"{peer}_base_url"] = url.rstrip("/")
    for flag, field in (("host", "host"), ("database", "database"), ("redis", "redis_url")):
        value = getattr(args, flag, None)
        if value:
            changes[field] = value
    return replace(settings, **changes)


def user_lines(users: Sequence[TestUser], token: Callable[[int], str], show: int) -> list[str]:
    """The first ``show`` test users with a token each, as plain lines easy to copy."""
    lines = [f'test users (password "{PASSWORD}"; users 1-{RESERVED_USERS} are yours, the simulated drivers never '
             "use them; a token for any user: chargetwin token USER_ID):"]
    for user in users[:show]:
        lines.append(f"  user {user.user_id:<5} {user.email:<32} id tag {user.id_tag}")
        lines.append(f"    token {token(user.user_id)}")
    return lines
