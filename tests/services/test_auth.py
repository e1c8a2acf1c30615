"""JWTs of the twin (DESIGN ruling 8, SPEC-NOTES N-25) and ``chargetwin token``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargetwin._token_cmd import add_token_parser
from chargetwin.twin.services.auth import (
    AuthError,
    ExpiredTokenError,
    InvalidTokenError,
    MissingTokenError,
    issue_token,
    verify_token,
)

SECRET = "auth-tests-secret-long-enough-for-hs256-and-for-the-hs512-case-below"
NOW = datetime(2025, 1, 29, 12, 0, tzinfo=UTC)


def _claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


@given(user_id=st.integers(min_value=1, max_value=10**18 - 1), ttl=st.integers(min_value=1, max_value=10**7))
def test_a_token_names_its_user_for_its_lifetime(user_id: int, ttl: int) -> None:
    token = issue_token(user_id, secret=SECRET, ttl_s=ttl, now=NOW)
    claims = _claims(token)
    assert claims["sub"] == str(user_id)  # RFC 7519: sub is a string
    assert claims["exp"] == claims["iat"] + ttl  # type: ignore[operator]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert verify_token(token, secret=SECRET, now=NOW) == user_id
    assert verify_token(token, secret=SECRET, now=NOW + timedelta(seconds=ttl - 1)) == user_id
    with pytest.raises(ExpiredTokenError):
        verify_token(token, secret=SECRET, now=NOW + timedelta(seconds=ttl))


def test_expiry_is_checked_in_wall_time_by_default() -> None:
    fresh = issue_token(7, secret=SECRET, ttl_s=60, now=datetime.now(UTC))
    stale = issue_token(7, secret=SECRET, ttl_s=60, now=datetime.now(UTC) - timedelta(hours=1))
    assert verify_token(fresh, secret=SECRET) == 7
    with pytest.raises(ExpiredTokenError, match="expired"):
        verify_token(stale, secret=SECRET)


@pytest.mark.parametrize("token", [None, ""])
def test_no_token(token: str | None) -> None:
    with pytest.raises(MissingTokenError, match="Authorization: Bearer"):
        verify_token(token, secret=SECRET)


def _signed(claims: dict[str, object], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


@pytest.mark.parametrize(("token", "why"), [
    ("not-a-jwt", "not valid"),
    (_signed({"sub": "1", "exp": 4102444800}, secret="another-secret-of-at-least-32-bytes!!"), "not valid"),
    (_signed({"sub": "1", "exp": 4102444800}, algorithm="HS512"), "not valid"),
    (_signed({"sub": "1"}), "not valid"),  # no exp
    (_signed({"exp": 4102444800}), "not valid"),  # no sub
    (_signed({"sub": 1, "exp": 4102444800}), "not valid"),  # sub must be a string
    (_signed({"sub": "0042", "exp": 4102444800}), "user id"),
    (_signed({"sub": "0", "exp": 4102444800}), "user id"),
    (_signed({"sub": "user42", "exp": 4102444800}), "user id"),
    (_signed({"sub": "9" * 5000, "exp": 4102444800}), "user id"),
])
def test_bad_tokens_are_refused_with_a_reason(token: str, why: str) -> None:
    with pytest.raises(InvalidTokenError, match=why) as caught:
        verify_token(token, secret=SECRET)
    assert not isinstance(caught.value, ExpiredTokenError)


def test_a_string_exp_is_refused_when_checking_against_a_given_time() -> None:
    with pytest.raises(InvalidTokenError, match="exp"):
        verify_token(_signed({"sub": "1", "exp": "soon"}), secret=SECRET, now=NOW)


def test_the_exception_tree() -> None:
    assert issubclass(ExpiredTokenError, InvalidTokenError)
    assert all(issubclass(e, AuthError) for e in (MissingTokenError, InvalidTokenError, ExpiredTokenError))


@pytest.mark.parametrize(("user_id", "ttl", "now"), [
    (0, 60, NOW), (-3, 60, NOW), (True, 60, NOW), (1, 0, NOW), (1, 60, NOW.replace(tzinfo=None)),
])
def test_issue_refuses_bad_arguments(user_id: int, ttl: float, now: datetime) -> None:
    with pytest.raises(ValueError):
        issue_token(user_id, secret=SECRET, ttl_s=ttl, now=now)


# --- chargetwin token ----------------------------------------------------------------------------


def _token_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chargetwin")
    add_token_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


def test_token_command_prints_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert _token_cli(["token", "42", "--secret", SECRET, "--ttl", "2h"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token(token, secret=SECRET) == 42
    claims = _claims(token)
    assert claims["exp"] == claims["iat"] + 7200  # type: ignore[operator]


def test_token_command_takes_the_secret_and_ttl_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHARGETWIN_JWT_SECRET", SECRET)
    monkeypatch.setenv("CHARGETWIN_JWT_TTL_S", "600")
    assert _token_cli(["token", "5"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token(token, secret=SECRET) == 5
    claims = _claims(token)
    assert claims["exp"] == claims["iat"] + 600  # type: ignore[operator]


@pytest.mark.parametrize(("argv", "problem"), [
    (["token", "abc"], "USER_ID must be an integer >= 1"),
    (["token", "0"], "USER_ID must be an integer >= 1"),
    (["token", "1", "--ttl", "soon"], "is not a duration"),
    (["token", "1", "--ttl", "0"], "--ttl must be above 0"),
    (["token", "1", "--secret", ""], "the secret must not be empty"),
])
def test_token_command_explains_bad_input(argv: list[str], problem: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert _token_cli([*argv[:2], "--secret", SECRET, *argv[2:]] if "--secret" not in argv else argv) == 2
    captured = capsys.readouterr()
    assert problem in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


def test_token_command_reports_a_bad_environment(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHARGETWIN_JWT_TTL_S", "a day")
    assert _token_cli(["token", "1", "--secret", SECRET]) == 2
    assert "CHARGETWIN_JWT_TTL_S" in capsys.readouterr().err
