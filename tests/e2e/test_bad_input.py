"""Bad input against a running stack: one test per row of docs/bad-input.md, read from the table itself.

Each row sends what the table says and checks the answer it gives; then a
well-formed login and health check must still succeed (nothing crashed,
nothing was left half done).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from stack_testkit import SECRET
from webapp_testkit import with_external_charge_point
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from chargetwin.twin.stack import Stack

TABLE = Path(__file__).resolve().parents[2] / "docs" / "bad-input.md"
START = "/api/charging/start"
LIMIT = 64 * 1024


def table_ids() -> list[str]:
    """The ids of docs/bad-input.md's table, in order."""
    found = re.findall(r"^\| ([a-z0-9-]+) \|", TABLE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return [row for row in found if row != "id"]  # not the header


ADMIN = "bad-input-admin-token"
EXTERNAL = "BAD1"
"""A charge point the twin does not simulate (added through the control API): the OCPP rows connect as it."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with with_external_charge_point(tmp_path_factory.mktemp("bad-input"), EXTERNAL, admin_token=ADMIN,
                                    gateway_open_timeout_s=1.0) as running:
        yield running


def how_it_ends(url: str, subprotocols: list[str] | None = None) -> tuple[int, str]:
    """How a server ends a WebSocket to ``url``: (close code, reason), or (HTTP status, "") at the handshake."""
    try:
        with connect(url, subprotocols=subprotocols, open_timeout=5) as socket_:  # type: ignore[arg-type]
            while True:
                socket_.recv(timeout=5)
    except InvalidStatus as refused:
        return refused.response.status_code, ""
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code, closed.rcvd.reason


class Client:
    """The calls a row makes: REST with a user's token, raw sockets, and the gateway."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.urls.backend, timeout=10)
        self.token = self.login()

    def login(self, password: str = "chargetwin") -> str:
        answer = self.http.post("/api/auth/login", json={"email": "user1@chargetwin.example", "password": password})
        if answer.status_code != 200:
            return ""
        token: str = answer.json()["data"]["token"]
        return token

    def start(self, body: bytes | Any, *, token: str | None = None, headers: dict[str, str] | None = None
              ) -> httpx.Response:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None or headers is None or "Authorization" not in headers:
            sent.setdefault("Authorization", f"Bearer {self.token if token is None else token}")
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(START, content=content, headers={k: v for k, v in sent.items() if v is not None})

    def gateway(self, path: str) -> tuple[int, str]:
        """How the gateway ends a connection to ``path``: (close code, reason), or (HTTP status, "")."""
        return how_it_ends(f"{self.stack.urls.gateway}{path}")

    def raw(self, request: bytes) -> tuple[float, bytes]:
        """Send ``request`` on a plain socket; the seconds until the first answer bytes, and the answer."""
        parts = urlsplit(self.stack.urls.backend)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as raw:
            started = time.monotonic()
            raw.sendall(request)
            answer = raw.recv(65536)
            seconds = time.monotonic() - started
            while chunk := raw.recv(65536):  # the rest, until the server closes
                answer += chunk
            return seconds, answer


def _token(claims: dict[str, Any], *, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": "1", "iat": int(now.timestamp()),
                              "exp": int((now + timedelta(hours=1)).timestamp())}
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    return ".".join((part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)))


def _refused(client: Client, answer: httpx.Response, status: int, error: str, *, mentions: str = "") -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["success"] is False and body["error"] == error, body
    assert mentions in body["message"], body


def _bad_token(token: str, backend_error: str = "Invalid authentication token") -> Callable[[Client], None]:
    def row(client: Client) -> None:
        _refused(client, client.start({"charger_id": "CP001"}, token=token), 401, backend_error)
        assert client.gateway(f"/?token={token}") == (1008, "Invalid authentication token")
    return row


def _socket(client: Client) -> Any:
    return connect(f"{client.stack.urls.gateway}/?token={client.token}", open_timeout=5)


def _welcomed(socket_: Any) -> None:
    for _ in range(3):  # connected, charger_list_update, active_session_update
        socket_.recv(timeout=5)


def _closed(socket_: Any, *, frames: int = 1000) -> tuple[int, str, int]:
    """Read until the gateway closes ``socket_``: its code and reason, and how many messages came before."""
    seen = 0
    try:
        for _ in range(frames):
            socket_.recv(timeout=5)
            seen += 1
    except ConnectionClosed as closed:
        assert closed.rcvd is not None
        return closed.rcvd.code, closed.rcvd.reason, seen
    raise AssertionError("the gateway did not close the socket")


def _malformed_query(client: Client) -> None:
    assert client.gateway("/?tok=abc") == (1008, "Authentication required")
    assert client.gateway("/?&&=") == (1008, "Authentication required")
    assert client.gateway("/?token=%ZZ") == (1008, "Invalid authentication token")


def _binary(client: Client) -> None:
    with _socket(client) as socket_:
        _welcomed(socket_)
        socket_.send(b"\x00\x01binary")
        answer = json.loads(socket_.recv(timeout=5))
        assert answer["type"] == "error" and "receive-only" in json.dumps(answer).lower(), answer
        socket_.send(b"\x00")  # still open, still answering
        assert json.loads(socket_.recv(timeout=5))["type"] == "error"


def _oversized(client: Client) -> None:
    with _socket(client) as socket_:
        _welcomed(socket_)
        socket_.send("x" * 10_000)
        code, _, _ = _closed(socket_)
        assert code == 1009


def _flood(client: Client) -> None:
    with _socket(client) as socket_:
        _welcomed(socket_)
        for _ in range(30):
            try:
                socket_.send('{"type": "ping"}')
            except ConnectionClosed:
                break
        code, reason, errors = _closed(socket_)
        assert (code, reason) == (1008, "Too many messages") and errors == 20


def _per_user_limit(client: Client) -> None:
    with ExitStack() as sockets:
        held = [sockets.enter_context(_socket(client)) for _ in range(10)]
        for socket_ in held:
            _welcomed(socket_)
        assert client.gateway(f"/?token={client.token}") == (1008, "Too many connections")
        for socket_ in held:  # the first ten are untouched
            assert socket_.ping().wait(5)


def _slow_handshake(client: Client) -> None:
    parts = urlsplit(client.stack.urls.gateway)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as raw:
        started = time.monotonic()
        assert raw.recv(1024) == b""  # the gateway hung up on a handshake that never came
        assert time.monotonic() - started < 5


def _ocpp(client: Client, frames: list[Any]) -> list[Any]:
    """Each frame sent as the external charge point; the CMS's answer to each (None: no answer in 1 s)."""
    answers: list[Any] = []
    with connect(f"{client.stack.urls.ocpp}/{EXTERNAL}", subprotocols=[Subprotocol("ocpp1.6")],
                 open_timeout=5) as cms:
        for frame in frames:
            cms.send(frame if isinstance(frame, str) else json.dumps(frame))
            try:
                answers.append(json.loads(cms.recv(timeout=1)))
            except TimeoutError:
                answers.append(None)
        cms.send(json.dumps([2, "ok", "Heartbeat", {}]))  # still usable
        assert json.loads(cms.recv(timeout=5))[:2] == [3, "ok"]
    return answers


def _callerror(client: Client, frame: list[Any], *codes: str) -> None:
    (answer,) = _ocpp(client, [frame])
    assert answer is not None and answer[0] == 4 and answer[1] == frame[1] and answer[2] in codes, answer


def _ocpp_handshake(client: Client, path: str, offered: list[str] | None) -> tuple[int, str]:
    return how_it_ends(f"{client.stack.urls.ocpp}{path}", offered)


def _huge(client: Client) -> None:
    head = (f"POST {START} HTTP/1.1\r\nHost: twin\r\nAuthorization: Bearer {client.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n").encode()
    seconds, answer = client.raw(head + b"{" + b" " * 1000)  # 50 MB announced, a kilobyte sent
    assert answer.startswith(b"HTTP/1.1 413") and b"Body too large" in answer, answer[:200]
    assert seconds < 1.0


def _chunked(client: Client) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"charger_id": "CP001", "x": "'
        for _ in range(20):
            yield b"a" * 8192
        yield b'"}'
    answer = client.http.post(START, content=body(), headers={"Authorization": f"Bearer {client.token}",
                                                              "Content-Type": "application/json"})
    _refused(client, answer, 413, "Body too large")


ROWS: dict[str, Callable[[Client], None]] = {
    "rest-json": lambda c: _refused(c, c.start(b'{"charger_id":'), 422, "Invalid request body"),
    "rest-not-object": lambda c: _refused(c, c.start([]), 422, "Invalid request body"),
    "rest-wrong-type": lambda c: _refused(c, c.start({"charger_id": 5}), 422, "Invalid request body",
                                          mentions="/charger_id"),
    "rest-unknown-field": lambda c: _refused(c, c.start({"charger_id": "CP001", "power": 50}), 422,
                                             "Invalid request body", mentions="power"),
    "rest-no-auth": lambda c: (
        _refused(c, answer := c.start({"charger_id": "CP001"}, headers={"Authorization": None}),  # type: ignore[dict-item]
                 401, "Authentication required"),
        answer.headers.get("www-authenticate") == "Bearer" or pytest.fail("no WWW-Authenticate: Bearer")),
    "rest-basic-auth": lambda c: _refused(c, c.start({"charger_id": "CP001"},
                                                     headers={"Authorization": "Basic dXNlcjpwdw=="}),
                                          401, "Invalid authentication token"),
    "rest-too-large": lambda c: _refused(c, c.start(b'{"charger_id": "' + b"a" * 100_000 + b'"}'), 413,
                                         "Body too large"),
    "rest-huge": _huge,
    "rest-chunked-too-large": _chunked,
    "login-wrong-password": lambda c: (
        c.login("wrong") == "" or pytest.fail("a wrong password logged in"),
        _refused(c, c.http.post("/api/auth/login", json={"email": "user1@chargetwin.example", "password": "x"}),
                 401, "Invalid credentials")),
    "jwt-alg-none": _bad_token(_unsigned({"alg": "none", "typ": "JWT"}, _claims())),
    "jwt-wrong-key": _bad_token(_token(_claims(), key="another-secret-of-more-than-thirty-two-bytes-long")),
    "jwt-rs256-header": _bad_token(_unsigned({"alg": "RS256", "typ": "JWT"}, _claims(), b"\x00" * 256)),
    "jwt-expired": _bad_token(_token(_claims(exp=int(time.time()) - 60)), "Authentication token expired"),
    "jwt-not-yet-valid": _bad_token(_token(_claims(nbf=int(time.time()) + 3600))),
    "jwt-no-sub": _bad_token(_token(_claims(sub=None))),
    "jwt-sub-not-numeric": _bad_token(_token(_claims(sub="admin"))),
    "jwt-no-exp": _bad_token(_token(_claims(exp=None))),
    "jwt-deleted-user": _bad_token(_token(_claims(sub="99999"))),
    "ws-no-token": lambda c: c.gateway("/") == (1008, "Authentication required") or pytest.fail(
        f"gateway answered {c.gateway('/')}"),
    "ws-other-path": lambda c: c.gateway(f"/admin?token={c.token}") == (404, "") or pytest.fail(
        f"gateway answered {c.gateway(f'/admin?token={c.token}')}"),
    "ws-malformed-query": _malformed_query,
    "ws-binary-frame": _binary,
    "ws-oversized-frame": _oversized,
    "ws-flood": _flood,
    "ws-per-user-limit": _per_user_limit,
    "ws-slow-handshake": _slow_handshake,
    "ocpp-unknown-id": lambda c: _ocpp_handshake(c, "/NOPE", ["ocpp1.6"]) == (404, "") or pytest.fail("not 404"),
    "ocpp-no-subprotocol": lambda c: _ocpp_handshake(c, f"/{EXTERNAL}", None)[0] == 1002 or pytest.fail("not 1002"),
    "ocpp-not-json": lambda c: _ocpp(c, ["hello"]) == [None] or pytest.fail("the CMS answered non-JSON"),
    "ocpp-wrong-type": lambda c: _callerror(c, [2, "t1", "StatusNotification", {
        "connectorId": "one", "errorCode": "NoError", "status": "Available"}], "TypeConstraintViolation"),
    "ocpp-missing-field": lambda c: _callerror(c, [2, "m1", "BootNotification", {}],
                                               "OccurenceConstraintViolation", "OccurrenceConstraintViolation",
                                               "FormationViolation", "ProtocolError"),
    "ocpp-unknown-action": lambda c: _callerror(c, [2, "u1", "MakeCoffee", {}], "NotImplemented"),
    "ocpp-unsupported-action": lambda c: _callerror(c, [2, "r1", "ReserveNow", {
        "connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "T", "reservationId": 1}], "NotSupported"),
}


def test_every_row_of_the_table_has_a_test_and_every_test_a_row() -> None:
    assert table_ids() == list(ROWS)


@pytest.mark.parametrize("row", table_ids())
def test_bad_input(stack: Stack, row: str) -> None:
    client = Client(stack)
    assert client.token, "the test user cannot log in"
    try:
        ROWS[row](client)
        # still serving, unharmed: a good login, the health check, a good socket
        assert client.login() and client.http.get("/api/health").status_code == 200
        with connect(f"{stack.urls.gateway}/?token={client.token}", open_timeout=5) as good:
            assert json.loads(good.recv(timeout=5))["type"] == "connected"
    finally:
        client.http.close()
