"""``chargetwin token USER_ID``: print a JWT for a test user of the twin (DESIGN ruling 8)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from .twin.scenario.durations import parse_duration
from .twin.services.auth import issue_token
from .twin.services.settings import Settings

__all__ = ["add_token_parser"]


def add_token_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "token",
        help="print a JWT for a user of the twin's backend and gateway",
        description="Print an HS256 JWT whose 'sub' is USER_ID, for 'Authorization: Bearer' on the backend "
                    "and '?token=' on the gateway. The secret is CHARGETWIN_JWT_SECRET, else the twin's "
                    "default; the token expires after --ttl (wall time).",
        epilog="Exit codes: 0 printed, 2 bad arguments.",
    )
    parser.add_argument("user_id", metavar="USER_ID", help="the user id (an integer >= 1)")
    parser.add_argument("--secret", help="signing secret (default: CHARGETWIN_JWT_SECRET or the twin's default)")
    parser.add_argument("--ttl", metavar="DURATION",
                        help="lifetime, e.g. 24h, 90m, 3600 (default: CHARGETWIN_JWT_TTL_S or 24h)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
        user_id = _user_id(args.user_id)
        ttl_s = settings.jwt_ttl_s if args.ttl is None else _duration(args.ttl)
        if ttl_s <= 0:
            raise ValueError(f"--ttl must be above 0, got {args.ttl!r}")
        secret = settings.jwt_secret if args.secret is None else args.secret
        if not secret:
            raise ValueError("the secret must not be empty")
    except ValueError as error:
        print(f"chargetwin token: {error}", file=sys.stderr)
        return 2
    print(issue_token(user_id, secret=secret, ttl_s=ttl_s, now=datetime.now(UTC)))
    return 0


def _duration(text: str) -> float:
    """Seconds of ``24h``, ``90m``, ``1h30m`` or a plain number of seconds."""
    return float(parse_duration(float(text) if text.replace(".", "", 1).isdigit() else text))


def _user_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ValueError(f"USER_ID must be an integer >= 1, got {text!r}")
    return int(text)
