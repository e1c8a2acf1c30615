"""The reference gateway over real sockets, with a real Redis (the private ``redis_server``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec

import jwt
import pytest
import redis.asyncio as aioredis
from conftest import seed_message
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargetwin.contracts import Validator
from chargetwin.twin.services.auth import issue_token
from chargetwin.twin.services.gateway import (
    ACTIVE_SESSION_KEY,
    CHARGER_LIST_KEY,
    CONNECTED_USERS_KEY,
    USERS_KEY,
    Gateway,
    GatewayStartError,
)
from chargetwin.twin.services.redis_server import RedisServer, start_redis
from chargetwin.twin.services.settings import Settings

P = ParamSpec("P")

SECRET = "chargetwin-test-secret-" + "x" * 48  # >= 64 bytes: PyJWT warns about shorter HMAC keys
NOW = datetime(2025, 1, 29, 12, 0, tzinfo=UTC)
NOW_TEXT = "2025-01-29T12:00:00.000Z"
TEST_TIMEOUT_S = 60.0
SEED_CHARGERS = seed_message(743)["data"]["chargers"]  # seed 4.7
SEED_SESSION = seed_message(792)["data"]  # seed 4.8


class FixedClock:
    def now(self) -> datetime:
        return NOW


def asynctest(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an async test in its own loop (pytest-asyncio is not a dependency), bounded in time."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        async def bounded() -> None:
            async with asyncio.timeout(TEST_TIMEOUT_S):
                await test(*args, **kwargs)

        asyncio.run(bounded())

    return run


def make_settings(**changes: Any) -> Settings:
    base = Settings(gateway_port=0, jwt_secret=SECRET, gateway_ping_interval_s=20.0, gateway_ping_timeout_s=20.0)
    return replace(base, **changes)


def token(user_id: int, *, secret: str = SECRET, age_s: float = 0) -> str:
    """A token for ``user_id``, valid for an hour from ``age_s`` seconds ago (wall time, as tokens live)."""
    return issue_token(user_id, secret=secret, ttl_s=3600, now=datetime.now(UTC) - timedelta(seconds=age_s))


_apps: dict[Gateway, list[ClientConnection]] = {}
"""The app sockets opened on each running gateway, aborted at its end even when a test fails."""


@contextlib.asynccontextmanager
async def running(url: str, *, close_timeout: float = 2.0, **changes: Any) -> AsyncIterator[Gateway]:
    gateway = Gateway(settings=make_settings(**changes), clock=FixedClock(), redis_url=url,
                      close_timeout=close_timeout)
    try:
        async with gateway:
            yield gateway
    finally:
        await abort_apps(gateway)


async def abort_apps(gateway: Gateway) -> None:
    for ws in _apps.pop(gateway, []):
        ws.transport.abort()
    await asyncio.sleep(0)  # let the aborted transports call connection_lost()


@contextlib.asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def flush(url: str) -> None:
    async with redis_client(url) as client:
        await client.flushall()


async def open_app(gateway: Gateway, user_id: int | None, **options: Any) -> ClientConnection:
    """An app's socket: ``?token=`` for the user (no query at all for None); no client-side pings."""
    query = "" if user_id is None else f"/?token={token(user_id)}"
    ws = await connect(gateway.url + query, ping_interval=None, compression=None, open_timeout=5, **options)
    _apps.setdefault(gateway, []).append(ws)
    return ws


async def receive(ws: ClientConnection, *, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        data = await ws.recv()
    assert isinstance(data, str), "the gateway sends text frames"
    message = json.loads(data)
    assert isinstance(message, dict)
    return message


async def welcomed(ws: ClientConnection) -> list[dict[str, Any]]:
    return [await receive(ws) for _ in range(3)]


async def closed_with(ws: ClientConnection, *, timeout: float = 5.0) -> dict[str, Any]:
    """Read until the gateway closes; the close frame it sent, as the contracts' close record."""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.protocol.close_rcvd is not None, "the gateway closed without a close frame"
    return {"code": ws.protocol.close_rcvd.code, "reason": ws.protocol.close_rcvd.reason}


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(0.02)


def conforms(validator: Validator, message: dict[str, Any], direction: str = "receive") -> None:
    assert validator.validate(message, channel="websocket", direction=direction) == [], message


# --- rejections: handshake completed, then a close frame (SPEC-NOTES N-48) -------------


@pytest.mark.parametrize("query", ["", "/", "/?token=", "/?other=1"])
@asynctest
async def test_without_a_token_the_gateway_closes_1008_authentication_required(
        redis_server: RedisServer, validator: Validator, query: str) -> None:
    async with running(redis_server.url) as gateway:
        ws = await connect(gateway.url + query, ping_interval=None)
        _apps.setdefault(gateway, []).append(ws)
        close = await closed_with(ws)
        assert close == {"code": 1008, "reason": "Authentication required"}
        conforms(validator, close, "close")
        assert gateway.metrics().rejected == {"Authentication required": 1}
        assert gateway.metrics().connections == 0


@pytest.mark.parametrize("bad", ["not-a-jwt", "wrong-secret", "expired", "user-zero"])
@asynctest
async def test_a_bad_or_expired_token_closes_1008_invalid_authentication_token(
        redis_server: RedisServer, validator: Validator, bad: str) -> None:
    tokens = {
        "not-a-jwt": "not-a-jwt",
        "wrong-secret": token(1, secret="s" * 64),
        "expired": token(1, age_s=3605),
        "user-zero": jwt.encode({"sub": "0", "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256"),
    }
    async with running(redis_server.url) as gateway:
        ws = await connect(f"{gateway.url}/?token={tokens[bad]}", ping_interval=None)
        _apps.setdefault(gateway, []).append(ws)
        close = await closed_with(ws)
        assert close == {"code": 1008, "reason": "Invalid authentication token"}
        conforms(validator, close, "close")


@asynctest
async def test_past_max_connections_the_gateway_closes_1008_server_at_capacity(
        redis_server: RedisServer, validator: Validator) -> None:
    await flush(redis_server.url)
    async with running(redis_server.url, gateway_max_connections=2) as gateway:
        first, second = await open_app(gateway, 1), await open_app(gateway, 2)
        await welcomed(first)
        await welcomed(second)
        third = await open_app(gateway, 3)
        close = await closed_with(third)
        assert close == {"code": 1008, "reason": "Server at capacity"}
        conforms(validator, close, "close")
        await first.close()
        await eventually(lambda: gateway.metrics().connections == 1)
        fourth = await open_app(gateway, 3)
        assert (await receive(fourth))["type"] == "connected", "capacity counts concurrent connections"
        await second.close()
        await fourth.close()


@asynctest
async def test_a_valid_token_of_a_user_the_backend_does_not_know_closes_1008(
        redis_server: RedisServer, validator: Validator) -> None:
    """The backend lists its users in ``chargetwin:users``; it answers 401 for user 999's token, and so does the
    gateway, in its own way (seed, Error Handling: 1008 "Invalid authentication token")."""
    await flush(redis_server.url)
    async with redis_client(redis_server.url) as r:
        await r.sadd(USERS_KEY, "1", "2")
        try:
            async with running(redis_server.url) as gateway:
                known = await open_app(gateway, 1)
                assert (await receive(known))["type"] == "connected"
                stranger = await open_app(gateway, 999)
                close = await closed_with(stranger)
                assert close == {"code": 1008, "reason": "Invalid authentication token"}
                conforms(validator, close, "close")
                assert gateway.metrics().rejected == {"Invalid authentication token": 1}
                assert await r.hget(CONNECTED_USERS_KEY, "999") is None, "never counted as connected"
                await eventually(lambda: gateway.metrics().connections == 1)
                await known.close()
        finally:
            await r.delete(USERS_KEY)


@pytest.mark.parametrize("path", ["/ws", "/gateway/", "/user/1", "/index.html"])
@asynctest
async def test_a_path_other_than_the_root_is_refused_404_at_the_handshake(
        redis_server: RedisServer, path: str) -> None:
    async with running(redis_server.url) as gateway:
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{gateway.url}{path}?token={token(1)}", ping_interval=None, open_timeout=5)
        assert refused.value.response.status_code == 404
        assert gateway.metrics().connections == 0
        ws = await open_app(gateway, 1)  # the root still works
        assert (await receive(ws))["type"] == "connected"
        await ws.close()


# --- on connect ---------------------------------------------------------------------


@asynctest
async def test_on_connect_connected_then_the_charger_list_then_the_active_session(
        redis_server: RedisServer, validator: Validator) -> None:
    await flush(redis_server.url)
    async with redis_client(redis_server.url) as r:
        await r.set(CHARGER_LIST_KEY, json.dumps(SEED_CHARGERS))
        await r.set(ACTIVE_SESSION_KEY.format(user_id=123), json.dumps(SEED_SESSION))
    async with running(redis_server.url) as gateway:
        ws = await open_app(gateway, 123)
        connected, charger_list, active = await welcomed(ws)
        for message in (connected, charger_list, active):
            conforms(validator, message)
        assert connected == {"type": "connected", "timestamp": NOW_TEXT, "userId": 123}
        assert charger_list == {"type": "charger_list_update", "action": "update",
                                "data": {"chargers": SEED_CHARGERS, "timestamp": NOW_TEXT}, "timestamp": NOW_TEXT}
        assert active == {"type": "active_session_update", "has_active_session": True, "data": SEED_SESSION,
                          "timestamp": NOW_TEXT}
        await ws.close()


@asynctest
async def test_on_connect_without_keys_an_empty_list_and_no_session(
        redis_server: RedisServer, validator: Validator) -> None:
    await flush(redis_server.url)
    async with running(redis_server.url) as gateway:
        ws = await open_app(gateway, 5)
        connected, charger_list, active = await welcomed(ws)
        for message in (connected, charger_list, active):
            conforms(validator, message)
        assert charger_list["data"]["chargers"] == []
        assert active == {"type": "active_session_update", "has_active_session": False, "data": None,
                          "timestamp": NOW_TEXT}
        await ws.close()


@asynctest
async def test_connected_users_counts_sockets_and_forgets_a_user_at_zero(redis_server: RedisServer) -> None:
    await flush(redis_server.url)
    async with running(redis_server.url) as gateway, redis_client(redis_server.url) as r:
        phone = await open_app(gateway, 7)
        await welcomed(phone)
        assert await r.hget(CONNECTED_USERS_KEY, "7") == b"1", "registered before the welcome"
        tablet = await open_app(gateway, 7)
        await welcomed(tablet)
        assert await r.hget(CONNECTED_USERS_KEY, "7") == b"2"
        await phone.close()

        async def one_left() -> bool:
            return bool(await r.hget(CONNECTED_USERS_KEY, "7") == b"1")

        await eventually(one_left)
        await tablet.close()

        async def gone() -> bool:
            return not await r.hexists(CONNECTED_USERS_KEY, "7")

        await eventually(gone)


@asynctest
async def test_messages_published_during_the_welcome_follow_it_in_order(redis_server: RedisServer) -> None:
    """Registered before the snapshot is read, the socket misses nothing and gets nothing before ``connected``."""

    class PublishingMidWelcome(Gateway):
        async def _read_snapshot(self, user_id: int) -> tuple[bytes | None, bytes | None]:
            before = self.metrics().messages_received
            async with redis_client(redis_server.url) as r:
                for n in range(3):
                    await r.publish(f"user:{user_id}:session_updates", json.dumps({"during": n}))
            await eventually(lambda: self.metrics().messages_received == before + 3)
            return await super()._read_snapshot(user_id)

    await flush(redis_server.url)
    gateway = PublishingMidWelcome(settings=make_settings(), clock=FixedClock(), redis_url=redis_server.url)
    async with gateway:
        try:
            ws = await open_app(gateway, 4)
            types = [m["type"] for m in await welcomed(ws)]
            assert types == ["connected", "charger_list_update", "active_session_update"]
            assert [await receive(ws) for _ in range(3)] == [{"during": 0}, {"during": 1}, {"during": 2}]
            assert gateway.metrics().messages_forwarded == 3
        finally:
            await abort_apps(gateway)


@asynctest
async def test_a_malformed_snapshot_key_is_logged_and_an_empty_list_sent(
        redis_server: RedisServer, validator: Validator, caplog: pytest.LogCaptureFixture) -> None:
    await flush(redis_server.url)
    async with redis_client(redis_server.url) as r:
        await r.set(CHARGER_LIST_KEY, b'{"not": "a list"}')
    async with running(redis_server.url) as gateway:
        ws = await open_app(gateway, 5)
        charger_list = (await welcomed(ws))[1]
        conforms(validator, charger_list)
        assert charger_list["data"]["chargers"] == []
    assert any("not a list" in record.getMessage() for record in caplog.records)
    await flush(redis_server.url)


# --- receive-only -------------------------------------------------------------------


@asynctest
async def test_a_frame_from_the_app_gets_an_error_and_the_socket_stays_open(
        redis_server: RedisServer, validator: Validator) -> None:
    async with running(redis_server.url) as gateway, redis_client(redis_server.url) as r:
        ws = await open_app(gateway, 11)
        await welcomed(ws)
        for frame in ('{"action": "start_charging", "charger_id": "CP001"}', b"\x00\x01", "not json"):
            await ws.send(frame)
            error = await receive(ws)
            conforms(validator, error)
            assert error["type"] == "error" and error["timestamp"] == NOW_TEXT
        await r.publish("user:11:notifications", b'{"still": "open"}')
        assert await receive(ws) == {"still": "open"}
        assert gateway.metrics().client_frames == 3
        await ws.close()


# --- routing ------------------------------------------------------------------------


@asynctest
async def test_each_user_receives_only_their_own_channels_on_every_socket(redis_server: RedisServer) -> None:
    """Two users (one with two devices), messages interleaved on all three channels of both."""
    async with running(redis_server.url) as gateway, redis_client(redis_server.url) as r:
        sockets = {1: [await open_app(gateway, 1), await open_app(gateway, 1)], 2: [await open_app(gateway, 2)]}
        for ws in (ws for group in sockets.values() for ws in group):
            await welcomed(ws)
        sent: dict[int, list[bytes]] = {1: [], 2: []}
        for seq in range(60):
            user_id, kind = (1, 2)[seq % 2], ("notifications", "session_updates", "charger_updates")[seq % 3]
            # Odd spacing and key order: the gateway must forward the bytes as published.
            payload = f'{{ "seq":{seq},  "for": {user_id}, "kind":"{kind}" }}'.encode()
            sent[user_id].append(payload)
            assert await r.publish(f"user:{user_id}:{kind}", payload) == 1, "one subscriber: the gateway"
        for user_id, group in sockets.items():
            for ws in group:
                for expected in sent[user_id]:
                    async with asyncio.timeout(5):
                        got = await ws.recv(decode=False)
                    assert got == expected, f"user {user_id} got {got!r}, expected {expected!r}"
        metrics = gateway.metrics()
        assert metrics.messages_received == 60 and metrics.messages_forwarded == 90
        for ws in (ws for group in sockets.values() for ws in group):
            await ws.close()


@asynctest
async def test_every_socket_of_a_user_receives(redis_server: RedisServer) -> None:
    async with running(redis_server.url) as gateway, redis_client(redis_server.url) as r:
        devices = [await open_app(gateway, 31) for _ in range(4)]
        for ws in devices:
            await welcomed(ws)
        await r.publish("user:31:session_updates", b'{"type": "x"}')
        for ws in devices:
            assert await receive(ws) == {"type": "x"}
            await ws.close()


@asynctest
async def test_channels_that_are_not_canonical_go_nowhere(redis_server: RedisServer) -> None:
    async with running(redis_server.url) as gateway, redis_client(redis_server.url) as r:
        ws = await open_app(gateway, 7)
        await welcomed(ws)
        await r.publish("user:007:notifications", b'{"n": 1}')  # matches user:*:notifications, names nobody
        await r.publish("user:7:notifications", b"\xff not utf-8")
        await r.publish("user:8:notifications", b'{"n": 2}')  # nobody of user 8 here
        await r.publish("user:7:notifications", b'{"n": 3}')
        assert await receive(ws) == {"n": 3}
        metrics = gateway.metrics()
        assert (metrics.messages_invalid, metrics.messages_unrouted) == (2, 1)
        await ws.close()


@asynctest
async def test_one_redis_connection_subscribes_for_all_users(redis_server: RedisServer) -> None:
    async with running(redis_server.url) as gateway, redis_client(redis_server.url) as r:
        apps = [await open_app(gateway, user_id) for user_id in range(1, 6)]
        for ws in apps:
            await welcomed(ws)
        clients = await r.client_list()
        subscribers = [c for c in clients if c["psub"] != "0" or c["sub"] != "0"]
        assert len(subscribers) == 1 and subscribers[0]["psub"] == "3" and subscribers[0]["sub"] == "0"
        assert await r.pubsub_numpat() == 3
        for ws in apps:
            await ws.close()


# --- heartbeat ----------------------------------------------------------------------


@asynctest
async def test_an_app_that_answers_pings_stays_connected(redis_server: RedisServer) -> None:
    async with running(redis_server.url, gateway_ping_interval_s=0.1, gateway_ping_timeout_s=1.0) as gateway:
        ws = await open_app(gateway, 1)
        await welcomed(ws)
        await asyncio.sleep(1.0)  # ten pings, answered by the client's protocol while it waits in recv()
        assert gateway.metrics().connections == 1
        await ws.close()


@asynctest
async def test_no_pong_within_the_timeout_closes_1011_keepalive_ping_timeout(
        redis_server: RedisServer, validator: Validator) -> None:
    """The app stops reading (its transport paused), so it never sees the ping and never answers it."""
    async with running(redis_server.url, close_timeout=1.0, gateway_ping_interval_s=0.2,
                       gateway_ping_timeout_s=0.3) as gateway:
        ws = await open_app(gateway, 1)
        await welcomed(ws)
        ws.transport.pause_reading()
        paused = time.monotonic()
        await eventually(lambda: gateway.metrics().connections == 0, timeout=5)
        # Ping after 0.2 s, timeout 0.3 s later, then up to close_timeout (1 s) for the closing handshake.
        assert time.monotonic() - paused < 0.2 + 0.3 + 1.0 + 2.0  # (+ slack for a loaded machine)
        ws.transport.resume_reading()
        close = await closed_with(ws)
        assert close == {"code": 1011, "reason": "keepalive ping timeout"}
        conforms(validator, close, "close")


# --- slow clients -------------------------------------------------------------------


@asynctest
async def test_a_slow_app_is_dropped_1013_while_the_others_keep_receiving(
        redis_server: RedisServer, validator: Validator) -> None:
    limit = 64 * 1024
    async with running(redis_server.url, gateway_max_buffer_bytes=limit) as gateway, \
            redis_client(redis_server.url) as r:
        slow, same_user, other_user = await open_app(gateway, 1), await open_app(gateway, 1), await open_app(gateway, 2)
        for ws in (slow, same_user, other_user):
            await welcomed(ws)
        slow.transport.pause_reading()

        received: dict[str, list[int]] = {"same_user": [], "other_user": []}

        async def read(name: str, ws: ClientConnection) -> None:
            with contextlib.suppress(ConnectionClosed):
                async for data in ws:
                    received[name].append(json.loads(data)["seq"])

        readers = [asyncio.create_task(read("same_user", same_user)), asyncio.create_task(read("other_user",
                                                                                                other_user))]
        padding = "x" * 32 * 1024
        seq = 0
        while gateway.metrics().dropped_slow_clients == 0:
            assert seq < 2000, "the slow app was never dropped"
            await r.publish("user:1:notifications", json.dumps({"seq": seq, "pad": padding}))
            await r.publish("user:2:notifications", json.dumps({"seq": seq}))
            seq += 1
            if seq % 16 == 0:
                await asyncio.sleep(0.01)  # let the gateway and the fast readers run
        for extra in range(seq, seq + 5):  # still delivered to the others after the drop
            await r.publish("user:1:notifications", json.dumps({"seq": extra, "pad": padding}))
            await r.publish("user:2:notifications", json.dumps({"seq": extra}))
        total = seq + 5
        await eventually(lambda: len(received["same_user"]) == total and len(received["other_user"]) == total)
        assert received["same_user"] == list(range(total)) and received["other_user"] == list(range(total))
        assert gateway.metrics().dropped_slow_clients == 1

        slow.transport.resume_reading()
        slow_seqs: list[int] = []
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(10):
                async for data in slow:
                    slow_seqs.append(json.loads(data)["seq"])
        assert slow_seqs == list(range(len(slow_seqs))) and len(slow_seqs) < total
        assert slow.protocol.close_rcvd is not None
        close = {"code": slow.protocol.close_rcvd.code, "reason": slow.protocol.close_rcvd.reason}
        assert close == {"code": 1013, "reason": "Client too slow"}
        conforms(validator, close, "close")
        await same_user.close()
        await other_user.close()
        await asyncio.gather(*readers)


# --- Redis restarts and shutdown ----------------------------------------------------


@asynctest
async def test_after_a_redis_restart_the_gateway_resubscribes_and_delivers_again(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chargetwin.gateway")
    server = start_redis()
    try:
        async with running(server.url) as gateway:
            ws = await open_app(gateway, 9)
            await welcomed(ws)
            await asyncio.to_thread(server.restart)
            async with redis_client(server.url) as r:
                started = time.monotonic()
                while await r.publish("user:9:notifications", b'{"back": true}') == 0:
                    assert time.monotonic() - started < 5, "not resubscribed within 5 s"
                    await asyncio.sleep(0.05)
                assert await receive(ws) == {"back": True}

                async def registered_again() -> bool:
                    return bool(await r.hget(CONNECTED_USERS_KEY, "9") == b"1")

                await eventually(registered_again)
            assert gateway.metrics().redis_reconnects == 1 and gateway.metrics().redis_connected
            await ws.close()
    finally:
        server.stop()
    logged = [record.getMessage() for record in caplog.records]
    assert any("subscription lost" in line for line in logged), logged
    assert any("subscription restored" in line for line in logged), logged


@asynctest
async def test_while_redis_is_down_a_new_app_is_closed_1013_and_gets_in_once_it_is_back(
        validator: Validator) -> None:
    server = start_redis()
    try:
        async with running(server.url) as gateway:
            await asyncio.to_thread(server.stop)
            await eventually(lambda: not gateway.metrics().redis_connected)
            ws = await open_app(gateway, 3)
            close = await closed_with(ws)
            assert close == {"code": 1013, "reason": "Try again later"}
            conforms(validator, close, "close")
            await asyncio.to_thread(server.restart)
            await eventually(lambda: gateway.metrics().redis_connected)
            ws = await open_app(gateway, 3)
            assert (await receive(ws))["type"] == "connected"
            async with redis_client(server.url) as r:
                assert await r.hgetall(CONNECTED_USERS_KEY) == {b"3": b"1"}, "the failed +1/-1 cancelled out"
            await ws.close()
    finally:
        server.stop()


@asynctest
async def test_stop_closes_sockets_1001_unregisters_and_leaves_nothing_running(
        redis_server: RedisServer, validator: Validator) -> None:
    await flush(redis_server.url)
    gateway = Gateway(settings=make_settings(), clock=FixedClock(), redis_url=redis_server.url, close_timeout=2)
    await gateway.start()
    port = gateway.port
    try:
        apps = [await open_app(gateway, 1), await open_app(gateway, 1), await open_app(gateway, 2)]
        for ws in apps:
            await welcomed(ws)
        apps[0].transport.pause_reading()  # an app that no longer reads cannot hold the shutdown up
        started = time.monotonic()
        await gateway.stop()
        assert time.monotonic() - started < 2 + 2
        apps[0].transport.resume_reading()
        for ws in apps:
            close = await closed_with(ws)
            assert close["code"] == 1001
            conforms(validator, close, "close")
    finally:
        await gateway.stop()
        await abort_apps(gateway)
    assert asyncio.all_tasks() == {asyncio.current_task()}, "no task left behind"
    await gateway.stop()  # idempotent
    async with redis_client(redis_server.url) as r:
        assert await r.hgetall(CONNECTED_USERS_KEY) == {}
        assert await r.pubsub_numpat() == 0
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port}/?token={token(1)}", open_timeout=2)


@asynctest
async def test_start_says_when_redis_does_not_answer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = Gateway(settings=make_settings(), clock=FixedClock(), redis_url=f"redis://127.0.0.1:{port}/0",
                      startup_timeout=0.5)
    with pytest.raises(GatewayStartError, match="did not answer"):
        await gateway.start()
    assert asyncio.all_tasks() == {asyncio.current_task()}


@asynctest
async def test_start_says_when_the_port_is_taken(redis_server: RedisServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gateway = Gateway(settings=make_settings(gateway_port=port), clock=FixedClock(), redis_url=redis_server.url)
        with pytest.raises(GatewayStartError, match=f"cannot listen on 127.0.0.1:{port}"):
            await gateway.start()
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_a_gateway_needs_a_redis() -> None:
    with pytest.raises(ValueError, match="needs a Redis"):
        Gateway(settings=make_settings(redis_url=None), clock=FixedClock())
