"""The app's side of the contract, without sockets: each rule of the live checks, the bounded list, the log's rate."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from chargetwin.contracts import Violation
from chargetwin.twin.services._appwatch_checks import (
    APP_RULES,
    check_client_frame,
    check_closed_by_protocol,
    check_handshake,
    check_rest_request,
)
from chargetwin.twin.services.appwatch import AppWatch, RateLimit
from chargetwin.twin.services.auth import issue_token, verify_token

SECRET = "unit-tests-secret-of-more-than-thirty-two-bytes-length"
verify = partial(verify_token, secret=SECRET)
START = "backend:/api/charging/start"
JSON = {"content-type": "application/json"}


def token(user_id: int = 7, *, expired: bool = False, secret: str = SECRET) -> str:
    now = datetime.now(UTC) - timedelta(hours=2 if expired else 0)
    return issue_token(user_id, secret=secret, ttl_s=600, now=now)


def rest(headers: dict[str, str], body: bytes = b'{"charger_id": "CP001"}', *, channel: str = START,
         method: str = "POST") -> tuple[list[str], int | None]:
    checked = check_rest_request(channel, method=method, headers=headers, body=body, verify=verify)
    return [v.rule for v in checked.violations], checked.user_id


def test_a_good_start_stop_and_login_break_nothing() -> None:
    bearer = {**JSON, "authorization": f"Bearer {token()}"}
    assert rest(bearer) == ([], 7)
    assert rest({**bearer, "content-type": "application/json; charset=utf-8"}, b"{}",
                channel="backend:/api/charging/stop") == ([], 7)
    assert rest({**bearer, "authorization": f"bearer {token()}"}) == ([], 7)  # the scheme is case-insensitive
    login = b'{"email": "user7@chargetwin.example", "password": "chargetwin"}'
    assert rest(JSON, login, channel="backend:/api/auth/login") == ([], None)


@pytest.mark.parametrize(("headers", "body", "method", "rule"), [
    (JSON, b'{"charger_id": "CP001"}', "POST", "authorization_present"),
    ({**JSON, "authorization": "Token abc"}, b'{"charger_id": "CP001"}', "POST", "authorization_is_bearer"),
    ({**JSON, "authorization": "Bearer"}, b'{"charger_id": "CP001"}', "POST", "authorization_is_bearer"),
    ({**JSON, "authorization": f"Bearer {token(secret='another-secret-of-more-than-thirty-two-bytes')}"},
     b'{"charger_id": "CP001"}', "POST", "token_valid"),
    ({**JSON, "authorization": f"Bearer {token(expired=True)}"}, b'{"charger_id": "CP001"}', "POST", "token_valid"),
    ({"authorization": "Bearer {t}", "content-type": "text/plain"}, b'{"charger_id": "CP001"}', "POST",
     "content_type_json"),
    ({"authorization": "Bearer {t}"}, b'{"charger_id": "CP001"}', "POST", "content_type_json"),
    ({**JSON, "authorization": "Bearer {t}"}, b"", "POST", "body_is_json"),
    ({**JSON, "authorization": "Bearer {t}"}, b"charger_id=CP001", "POST", "body_is_json"),
    ({**JSON, "authorization": "Bearer {t}"}, b'{"charger_id": NaN}', "POST", "body_is_json"),
    ({**JSON, "authorization": "Bearer {t}"}, b'{"charger_id": 1}', "POST", "schema.type"),
    ({**JSON, "authorization": "Bearer {t}"}, b'{"charger_id": "CP001"}', "PUT", "method_is_post"),
])
def test_each_rule_of_a_request_fails_alone(headers: dict[str, str], body: bytes, method: str, rule: str) -> None:
    headers = {k: v.replace("{t}", token()) for k, v in headers.items()}
    rules, _ = rest(headers, body, method=method)
    assert rules == [rule]
    assert rule.startswith("schema.") or APP_RULES[rule].spec


def handshake(path: str, **headers: str) -> tuple[list[str], int | None]:
    checked = check_handshake(path, {"upgrade": "websocket", **headers}, verify=verify)
    return [v.rule for v in checked.violations], checked.user_id


def test_a_good_handshake_breaks_nothing() -> None:
    assert handshake(f"/?token={token()}") == ([], 7)
    assert handshake(f"/?token={token()}&v=2&") == ([], 7)  # other parameters, a trailing '&': fine


@pytest.mark.parametrize(("path", "headers", "rules", "hint"), [
    ("/", {}, ["handshake_token_present"], ""),
    ("/?token=", {}, ["handshake_token_present"], ""),
    ("/?access_token={t}", {}, ["handshake_token_present"], "'access_token'"),
    ("/", {"authorization": "Bearer {t}"}, ["handshake_token_present"], "Authorization header"),
    ("/?token=abc", {}, ["handshake_token_valid"], ""),
    ("/?token=Bearer%20{t}", {}, ["handshake_token_valid"], "without 'Bearer '"),
    ("/ws?token={t}", {}, ["handshake_path"], ""),
    ("/?token={t}&token={t}", {}, ["handshake_query_wellformed"], "2 times"),
    ("/?token={t}&debug", {}, ["handshake_query_wellformed"], "no '='"),
    ("/?token={t}&x=%zz", {}, ["handshake_query_wellformed"], "two hex digits"),
    ("/?token={t}", {"upgrade": ""}, ["handshake_is_websocket"], ""),
])
def test_each_rule_of_a_handshake_fails_alone(path: str, headers: dict[str, str], rules: list[str],
                                              hint: str) -> None:
    t = token()
    checked = check_handshake(path.replace("{t}", t), {"upgrade": "websocket",
                                                      **{k: v.replace("{t}", t) for k, v in headers.items()}},
                              verify=verify)
    assert [v.rule for v in checked.violations] == rules
    assert hint in checked.violations[0].message


@pytest.mark.parametrize(("frame", "recorded"), [
    ('{"type": "ping"}', {"type": "ping"}), ("[1, 2]", [1, 2]), ("hello", "hello"),
    (b"\x00\xff", "<binary frame of 2 bytes>"),
])
def test_any_frame_of_the_app_is_a_receive_only_violation(frame: str | bytes, recorded: Any) -> None:
    checked = check_client_frame(frame)
    assert [v.rule for v in checked.violations] == ["receive_only"]
    assert checked.message == recorded
    assert checked.violations[0].spec is not None


def test_a_protocol_close_blames_the_app_and_a_normal_one_does_not() -> None:
    assert [v.rule for v in check_closed_by_protocol(1009, "message too big")] == ["frames_well_formed"]
    assert check_closed_by_protocol(1008, "Authentication required") == []
    assert check_closed_by_protocol(1001, "") == []


def _found(n: int) -> list[Violation]:
    return [Violation(rule=f"rule_{i % 3}", pointer="", message=f"number {i}") for i in range(n)]


def test_the_watch_keeps_the_newest_and_counts_all(caplog: pytest.LogCaptureFixture) -> None:
    watch = AppWatch(secret=SECRET, limit=5, burst=3, now=lambda: datetime(2025, 1, 29, 12, tzinfo=UTC))
    with caplog.at_level(logging.WARNING, logger="chargetwin.appwatch"):
        watch.add("rest", START, _found(12), 7)
    data = watch.snapshot()
    assert data["total"] == 12 and sum(data["by_rule"].values()) == 12
    assert [v["seq"] for v in data["violations"]] == [8, 9, 10, 11, 12]
    assert data["violations"][0] == {"seq": 8, "at": "2025-01-29T12:00:00.000Z", "source": "rest", "channel": START,
                                      "direction": "request", "rule": "rule_1", "pointer": "", "message": "number 7",
                                      "user_id": 7}
    assert [v.seq for v in watch.violations(since=10)] == [11, 12]
    assert len(caplog.records) == 3  # the burst; the rest waits for the next window


def test_the_rate_limit_tells_what_it_held_back() -> None:
    now = [0.0]
    limit = RateLimit(burst=2, window_s=10.0, clock=lambda: now[0])
    assert [limit.admit() for _ in range(4)] == [(True, 0), (True, 0), (False, 0), (False, 0)]
    now[0] = 10.0
    assert limit.admit() == (True, 2)
    assert limit.admit() == (True, 0)


def test_a_watch_needs_a_way_to_read_tokens() -> None:
    with pytest.raises(ValueError, match="secret"):
        AppWatch()
    with pytest.raises(ValueError, match="limit"):
        AppWatch(secret=SECRET, limit=0)
