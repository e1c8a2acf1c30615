"""The phases of ``chargetwin check``: each a list of cases, each case one expectation of the contracts.

A case holds what the contracts expect of one exchange (a status code, an
error envelope, a close code and reason, a push) and what the target did.
The messages themselves are judged by the pipeline the probe feeds (schema
and rules, the cross-message checks): a case need not repeat that.

Expectations come from the contracts' rulings: DESIGN ruling 6 and N-21
(REST errors: the envelope and the status), N-26 and N-48 (closing a
socket: complete the handshake, then close 1008 with the seed's reason),
ruling 4 and N-22 (a client frame gets ``type: error``, the socket stays
open), ruling 5 (``connected`` first).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .probe import Probe, Reply, Socket

__all__ = ["Case", "Phase", "TestUser", "Tokens", "cms_phase", "rest_phase", "websocket_phase"]

NO_SUCH_CHARGER = "CHARGETWIN-NO-SUCH-CHARGER"
"""A charger id no target knows."""

AUTH_REQUIRED = (1008, "Authentication required")
INVALID_TOKEN = (1008, "Invalid authentication token")


@dataclass(frozen=True, slots=True)
class Case:
    """One expectation and how the target met it: ``message`` says what was expected and what came.

    ``warning``: not met, but only a ruling asks for it, not the seed
    (DESIGN ruling 9): it does not fail the check unless ``--strict``.
    """

    phase: str
    name: str
    passed: bool
    message: str
    spec: str = ""
    warning: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "name": self.name, "passed": self.passed, "warning": self.warning,
                "message": self.message, "spec": self.spec}


@dataclass
class Phase:
    """A phase's cases, in the order they ran; ``skipped`` says why a phase could not run at all."""

    name: str
    title: str
    cases: list[Case] = field(default_factory=list)
    skipped: str | None = None

    def expect(self, name: str, passed: bool, message: str, *, spec: str = "", ruling: bool = False) -> bool:
        """One case; ``ruling``: only a ruling asks for it (not met, it is a warning)."""
        self.cases.append(Case(self.name, name, passed, message, spec, warning=ruling and not passed))
        return passed


@dataclass(frozen=True, slots=True)
class TestUser:
    """A user the target knows (seeded from ``chargetwin network export``): login credentials and id."""

    user_id: int
    email: str
    password: str
    id_tag: str = ""  # the OCPP idTag of the user's sessions


@dataclass(frozen=True, slots=True)
class Tokens:
    """Tokens that must be refused, made with the target's secret where a signature matters."""

    make: Callable[[int, datetime, float], str]  # (user_id, issued at, lifetime s) -> a token signed as theirs

    def expired(self, user_id: int) -> str:
        return self.make(user_id, datetime.now(UTC) - timedelta(days=2), 3600.0)

    def wrongly_signed(self, user_id: int) -> str:
        header, payload, _ = self.make(user_id, datetime.now(UTC), 3600.0).split(".")
        return f"{header}.{payload}.{_b64(b'not the signature of this token, not by this secret')}"

    @staticmethod
    def alg_none(user_id: int) -> str:
        now = int(datetime.now(UTC).timestamp())
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        payload = _b64(json.dumps({"sub": str(user_id), "iat": now, "exp": now + 3600}).encode())
        return f"{header}.{payload}."


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- REST --------------------------------------------------------------------------------------------


def _error(phase: Phase, name: str, reply: Reply, status: int, *, spec: str = "DESIGN ruling 6, N-21") -> bool:
    """An error answer: ``status`` and the error envelope (its schema is the pipeline's to judge).

    The seed shows the envelope and no status (N-21): another 4xx with the
    envelope breaks only ruling 6's choice of status, a warning.
    """
    if reply.status == status and reply.error is not None:
        return phase.expect(name, True, f"HTTP {status} {reply.error!r}", spec=spec)
    wanted = f"HTTP {status} with the error envelope {{success: false, error, message}}"
    other_4xx = 400 <= reply.status < 500 and reply.error is not None
    return phase.expect(name, False, f"expected {wanted}; got {reply.said()}", spec=spec, ruling=other_4xx)


async def login(probe: Probe, user: TestUser) -> str | None:
    """The user's token from ``POST /api/auth/login``, or None."""
    reply = await probe.post("/api/auth/login", {"email": user.email, "password": user.password},
                             user_id=user.user_id)
    data = reply.body.get("data") if isinstance(reply.body, dict) else None
    token = data.get("token") if isinstance(data, dict) else None
    return token if reply.status == 200 and isinstance(token, str) else None


async def start_somewhere(probe: Probe, token: str, user_id: int,
                          connectors: Sequence[tuple[str, int]]) -> tuple[Reply, tuple[str, int] | None]:
    """Start on the first free connector of ``connectors`` (another may be busy); the last answer and where."""
    reply = Reply(0, None)
    for charger_id, connector_id in connectors:
        reply = await probe.post("/api/charging/start", {"charger_id": charger_id, "connector_id": connector_id},
                                 token=token, user_id=user_id)
        if reply.status == 200:
            return reply, (charger_id, connector_id)
        if reply.status != 409:
            break
    return reply, None


async def stop_once_started(probe: Probe, token: str, user_id: int, wait_s: float) -> tuple[Reply, int]:
    """Stop the user's session, asking again while the answer is 409 (the charger has not started it yet).

    An app learns of the start from its socket; without one, asking again
    is what it can do. The last answer, and how many times it asked.
    """
    deadline = time.monotonic() + wait_s
    tries = 0
    while True:
        tries += 1
        reply = await probe.post("/api/charging/stop", {}, token=token, user_id=user_id)
        if reply.status != 409 or time.monotonic() >= deadline:
            return reply, tries
        await asyncio.sleep(0.5)


async def rest_phase(probe: Probe, users: Sequence[TestUser], connectors: Sequence[tuple[str, int]],
                     tokens: Tokens, *, wait_s: float, phase: Phase | None = None) -> Phase:
    """REST contract: the happy paths and every error ruling 6 lists, with two users (cases into ``phase``)."""
    phase = phase or Phase("rest", "REST contract")
    a, b = users[0], users[1]
    try:
        token_a, token_b = await login(probe, a), await login(probe, b)
        if not phase.expect("login", token_a is not None and token_b is not None,
                            f"users {a.user_id} and {b.user_id} log in (POST /api/auth/login)"
                            if token_a and token_b else
                            f"users {a.user_id} ({a.email}) and {b.user_id} ({b.email}) must log in with their "
                            "password: seed the target with chargetwin network export",
                            spec="N-25"):
            return phase
        assert token_a is not None and token_b is not None
        body = {"charger_id": connectors[0][0], "connector_id": connectors[0][1]}
        for name, token in (("start without a token", None), ("start with a malformed token", "not-a-jwt"),
                            ("start with a wrongly signed token", tokens.wrongly_signed(a.user_id)),
                            ("start with an alg none token", tokens.alg_none(a.user_id)),
                            ("start with an expired token", tokens.expired(a.user_id))):
            _error(phase, name, await probe.post("/api/charging/start", body, token=token), 401,
                   spec="DESIGN ruling 6, N-25")
        _error(phase, "stop without a token", await probe.post("/api/charging/stop", {}), 401,
               spec="DESIGN ruling 6, N-25")
        _error(phase, "start on an unknown charger",
               await probe.post("/api/charging/start", {"charger_id": NO_SUCH_CHARGER, "connector_id": 1},
                                token=token_a, user_id=a.user_id), 404)
        for name, bad in (("start without charger_id", b'{"connector_id": 1}'),
                          ("start with a charger_id that is a number", b'{"charger_id": 17, "connector_id": 1}'),
                          ("start with connector_id 0", b'{"charger_id": "%s", "connector_id": 0}'
                           % connectors[0][0].encode()),
                          ("start with a body that is not JSON", b"charger_id=CP001"),
                          ("start with a JSON array", b"[]")):
            _error(phase, name, await probe.post("/api/charging/start", token=token_a, user_id=a.user_id,
                                                 content=bad, record_request=False), 422)
        _error(phase, "stop with nothing active",
               await probe.post("/api/charging/stop", {}, token=token_b, user_id=b.user_id), 404)
        started, where = await start_somewhere(probe, token_a, a.user_id, connectors)
        if not phase.expect("start", where is not None,
                            f"user {a.user_id} started on {where[0]} connector {where[1]}" if where else
                            f"expected HTTP 200 on a free connector; got {started.said()}",
                            spec="1. Start Charging"):
            return phase
        assert where is not None
        _error(phase, "start on a busy connector",
               await probe.post("/api/charging/start", {"charger_id": where[0], "connector_id": where[1]},
                                token=token_b, user_id=b.user_id), 409)
        others = [c for c in connectors if c != where] or [where]
        _error(phase, "a second session of the same user",
               await probe.post("/api/charging/start", {"charger_id": others[0][0], "connector_id": others[0][1]},
                                token=token_a, user_id=a.user_id), 409)
        stopped, tries = await stop_once_started(probe, token_a, a.user_id, wait_s)
        asked = f" (asked {tries} times: 409 while the charger had not started it)" if tries > 1 else ""
        phase.expect("stop", stopped.status == 200 and isinstance(stopped.body, dict)
                     and stopped.body.get("success") is True,
                     f"HTTP 200 with the success envelope{asked}" if stopped.status == 200 else
                     f"expected HTTP 200 with the success envelope within {wait_s:g} s; got {stopped.said()}",
                     spec="2. Stop Charging")
    except httpx.HTTPError as error:
        phase.expect("backend reachable", False, f"the backend did not answer: {type(error).__name__}: {error}")
    return phase


# --- WebSocket --------------------------------------------------------------------------------------


def _closed_with(phase: Phase, name: str, socket: Socket, close: tuple[int, str] | None,
                 expected: tuple[int, str]) -> bool:
    if socket.refused is not None:
        return phase.expect(name, False, f"{socket.refused}; expected the handshake to complete and a close "
                                         f"{expected[0]} {expected[1]!r} (N-48)", spec="Error Handling, N-48")
    if close == expected:
        return phase.expect(name, True, f"closed {close[0]} {close[1]!r}", spec="Error Handling, N-26")
    said = "did not close" if close is None else f"closed {close[0]} {close[1]!r}"
    first = f" after sending {socket.received[0]!r:.80}" if socket.received else ""
    return phase.expect(name, False, f"expected close {expected[0]} {expected[1]!r}; {said}{first}",
                        spec="Error Handling, N-26")


def _is(kind: str, event: str | None = None) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, dict) and m.get("type") == kind and (event is None or m.get("event") == event)


async def websocket_phase(probe: Probe, users: Sequence[TestUser], connectors: Sequence[tuple[str, int]],
                          tokens: Tokens, *, wait_s: float, phase: Phase | None = None) -> Phase:
    """WebSocket contract: refusals, ``connected`` first, client frames, the heartbeat, and a session's pushes.

    ``wait_s``: how long a push may take (a meter value comes once per
    metering interval of the target's charge points).
    """
    phase = phase or Phase("websocket", "WebSocket contract")
    a, b = users[0], users[1]
    for name, query, expected in (
            ("no token: close 1008", "", AUTH_REQUIRED),
            ("a malformed token: close 1008", "?token=not-a-jwt", INVALID_TOKEN),
            ("a wrongly signed token: close 1008", f"?token={tokens.wrongly_signed(a.user_id)}", INVALID_TOKEN),
            ("an alg none token: close 1008", f"?token={tokens.alg_none(a.user_id)}", INVALID_TOKEN),
            ("an expired token: close 1008", f"?token={tokens.expired(a.user_id)}", INVALID_TOKEN)):
        socket = await probe.open_socket(None, user_id=None, query=query)
        _closed_with(phase, name, socket, await socket.wait_closed(10.0) if socket.refused is None else None,
                     expected)
    try:
        token_a, token_b = await login(probe, a), await login(probe, b)
    except httpx.HTTPError as error:
        phase.expect("backend reachable", False, f"the backend did not answer: {type(error).__name__}: {error}")
        return phase
    if token_a is None or token_b is None:
        phase.expect("login", False, f"users {a.user_id} and {b.user_id} must log in to open their sockets")
        return phase
    socket_a = await probe.open_socket(token_a, user_id=a.user_id)
    socket_b = await probe.open_socket(token_b, user_id=b.user_id)
    try:
        for user, socket in ((a, socket_a), (b, socket_b)):
            if socket.refused is not None:
                phase.expect(f"user {user.user_id} connects", False, socket.refused)
                return phase
            first = await socket.wait_for(lambda m: True, 10.0)
            phase.expect(f"connected first (user {user.user_id})", _is("connected")(first),
                         "the first message is connected" if _is("connected")(first) else
                         f"expected connected first; got {json.dumps(first)[:160] if first else 'nothing in 10 s'}",
                         spec="DESIGN ruling 5, 4.1 Connection Established")
        await probe.send_frame(socket_b, '{"action": "start_charging", "charger_id": "CP001"}')
        answer = await socket_b.wait_for(_is("error"), 10.0)
        phase.expect("a client frame gets type: error", answer is not None,
                     "answered with type: error" if answer is not None else "no type: error within 10 s",
                     spec="DESIGN ruling 4, N-22", ruling=True)
        pong = await _pinged(socket_b)
        phase.expect("the socket stays open after a client frame, and answers a ping", socket_b.open and pong,
                     "open, and a ping got its pong" if socket_b.open and pong else
                     f"closed {socket_b.close}" if not socket_b.open else "no pong within 10 s",
                     spec="DESIGN ruling 4, Heartbeat", ruling=True)
        await _a_session_pushed(probe, phase, a, token_a, socket_a, connectors, wait_s=wait_s)
    finally:
        await probe.close_socket(socket_a)
        await probe.close_socket(socket_b)
    return phase


async def _pinged(socket: Socket) -> bool:
    if not socket.open or socket.connection is None:
        return False
    try:
        waiter = await socket.connection.ping()
        async with asyncio.timeout(10.0):
            await waiter
        return True
    except Exception:  # closed meanwhile, or no pong in time
        return False


async def _a_session_pushed(probe: Probe, phase: Phase, user: TestUser, token: str, socket: Socket,
                            connectors: Sequence[tuple[str, int]], *, wait_s: float) -> None:
    """Start, a meter value, stop: each pushed to the user (the pipeline judges them and the other user's socket)."""
    started, where = await start_somewhere(probe, token, user.user_id, connectors)
    if not phase.expect("start for the pushes", where is not None,
                        f"started on {where[0]} connector {where[1]}" if where else
                        f"expected HTTP 200 on a free connector; got {started.said()}", spec="1. Start Charging"):
        return
    for name, match, spec in (("session_started pushed", _is("session_update", "session_started"),
                               "4.4 Session Update"),
                              ("meter_value pushed", _is("session_update", "meter_value"), "4.4 Session Update")):
        found = await socket.wait_for(match, wait_s)
        phase.expect(name, found is not None, "received" if found is not None else
                     f"nothing within {wait_s:g} s", spec=spec)
    stopped = await probe.post("/api/charging/stop", {}, token=token, user_id=user.user_id)
    phase.expect("stop for the pushes", stopped.status == 200, f"HTTP {stopped.status}" if stopped.status == 200
                 else f"expected HTTP 200; got {stopped.said()}", spec="2. Stop Charging")
    found = await socket.wait_for(_is("session_update", "session_stopped"), wait_s)
    phase.expect("session_stopped pushed", found is not None,
                 "received" if found is not None else f"nothing within {wait_s:g} s", spec="4.4 Session Update")


# --- the CMS's REST API -----------------------------------------------------------------------------


async def cms_phase(probe: Probe, id_tag: str, connectors: Sequence[tuple[str, int]], *, wait_s: float,
                    with_charge_points: bool, phase: Phase | None = None) -> Phase:
    """The CMS's REST API as the backend calls it: its errors, and (``with_charge_points``: the twin's are
    connected to the CMS) a remote start and stop carried out by a charge point."""
    phase = phase or Phase("cms", "CMS REST API")
    start, stop = "/api/charging/remote_start", "/api/charging/stop"
    spec = "N-12, N-13, the CMS's OpenAPI document"
    _error(phase, "remote start on an unknown charger",
           await probe.post_cms(start, {"charger_id": NO_SUCH_CHARGER, "id_tag": id_tag}), 404, spec=spec)
    _error(phase, "stop on an unknown charger", await probe.post_cms(stop, {"charger_id": NO_SUCH_CHARGER}), 404,
           spec=spec)
    for name, path, bad in (("remote start without id_tag", start, b'{"charger_id": "CP001"}'),
                            ("remote start with a body that is not JSON", start, b"charger_id=CP001"),
                            ("stop without charger_id", stop, b"{}")):
        _error(phase, name, await probe.post_cms(path, content=bad, record_request=False), 422, spec=spec)
    if not with_charge_points:
        return phase
    started = Reply(0, None)
    where: tuple[str, int] | None = None
    for charger_id, connector_id in connectors:
        started = await probe.post_cms(start, {"charger_id": charger_id, "connector_id": connector_id,
                                               "id_tag": id_tag})
        if started.status == 200:
            where = (charger_id, connector_id)
            break
        if started.status != 409:
            break
    if not phase.expect("remote start", where is not None,
                        f"accepted by {where[0]} connector {where[1]}" if where else
                        f"expected HTTP 200 on a free connector; got {started.said()}", spec=spec):
        return phase
    assert where is not None
    deadline = time.monotonic() + wait_s
    while True:  # the charge point starts the transaction a moment after it accepted the remote start
        stopped = await probe.post_cms(stop, {"charger_id": where[0], "connector_id": where[1]})
        if stopped.status == 200 or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
    phase.expect("stop", stopped.status == 200, "HTTP 200 with the success envelope" if stopped.status == 200 else
                 f"expected HTTP 200 within {wait_s:g} s; got {stopped.said()}", spec=spec)
    return phase

