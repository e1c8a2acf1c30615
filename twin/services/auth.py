"""JSON Web Tokens of the twin: HS256, ``sub`` = the user id, ``exp`` required (DESIGN ruling 8).

The backend issues them (``POST /api/auth/login``, ``chargetwin token``); the
backend (REST ``Authorization: Bearer``) and the gateway (``?token=``) verify
them with the same secret (``Settings.jwt_secret``). ``sub`` is the decimal
string of the integer user id, because RFC 7519 makes ``sub`` a string
(SPEC-NOTES N-25).

Token expiry protects real sockets, so tokens live in wall time, not in the
twin's simulated time: issue with ``now=datetime.now(UTC)``.

Exceptions::

    AuthError                 any token problem; str() says what to do
    ├── MissingTokenError     no token was sent
    └── InvalidTokenError     malformed, badly signed, wrong claims
        ├── ExpiredTokenError past its ``exp``
        └── NotBearerError    an Authorization header that is not ``Bearer <token>``
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import jwt

__all__ = [
    "ALGORITHM",
    "AuthError",
    "ExpiredTokenError",
    "InvalidTokenError",
    "MissingTokenError",
    "NotBearerError",
    "bearer_token",
    "issue_token",
    "verify_token",
]

ALGORITHM = "HS256"

_USER_ID = re.compile(r"[1-9][0-9]{0,17}")
"""``sub``: a decimal user id without leading zeros, as the gateway accepts it."""


class AuthError(Exception):
    """A request could not be authenticated."""


class MissingTokenError(AuthError):
    """No token was sent."""


class InvalidTokenError(AuthError):
    """The token is malformed, badly signed, or lacks a valid ``sub`` / ``exp``."""


class ExpiredTokenError(InvalidTokenError):
    """The token's ``exp`` has passed."""


class NotBearerError(InvalidTokenError):
    """An ``Authorization`` header of another scheme, or ``Bearer`` without a token."""


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; :class:`MissingTokenError` without a
    header, :class:`NotBearerError` for any other form."""
    if not authorization or not authorization.strip():
        raise MissingTokenError("no token: send 'Authorization: Bearer <token>' "
                                "(get one from POST /api/auth/login or 'chargetwin token USER_ID')")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotBearerError("Use 'Authorization: Bearer <token>'.")
    return token.strip()


def issue_token(user_id: int, *, secret: str, ttl_s: float, now: datetime) -> str:
    """A signed token for ``user_id``, valid from ``now`` for ``ttl_s`` seconds.

    ``now`` must be timezone-aware (wall time; see the module docstring).
    """
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id < 1:
        raise ValueError(f"a user id is an integer >= 1, got {user_id!r}")
    if ttl_s <= 0:
        raise ValueError(f"a token's lifetime must be above 0 s, got {ttl_s}")
    if now.tzinfo is None:
        raise ValueError("issue_token needs a timezone-aware 'now'")
    claims = {"sub": str(user_id), "iat": int(now.timestamp()),
              "exp": int((now + timedelta(seconds=ttl_s)).timestamp())}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str | None, *, secret: str, now: datetime | None = None) -> int:
    """The user id of a valid ``token``; raises an :class:`AuthError` otherwise.

    ``now`` defaults to the wall clock; tests pass one to check expiry.
    """
    if not token:
        raise MissingTokenError("no token: send 'Authorization: Bearer <token>' "
                                "(get one from POST /api/auth/login or 'chargetwin token USER_ID')")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                            options={"require": ["exp", "sub"], "verify_exp": now is None})
    except jwt.ExpiredSignatureError:
        raise ExpiredTokenError("the token has expired: log in again for a new one") from None
    except jwt.PyJWTError as error:
        raise InvalidTokenError(f"the token is not valid: {error}") from None
    expires = claims["exp"]
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise InvalidTokenError(f"the token's 'exp' must be a number of seconds, got {expires!r}")
    if now is not None and now.timestamp() >= expires:
        raise ExpiredTokenError("the token has expired: log in again for a new one")
    return _user_id(claims["sub"])


def _user_id(sub: Any) -> int:
    if not isinstance(sub, str) or not _USER_ID.fullmatch(sub):
        raise InvalidTokenError(f"the token's 'sub' must be a user id such as \"123\", got {sub!r}")
    return int(sub)
