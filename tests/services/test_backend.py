"""The reference backend over real sockets: uvicorn on a free port, a private Redis, a fake CMS.

Every message a Redis subscriber receives is validated against the
contracts on arrival; every test ends with zero violations. Every REST
answer is validated against its endpoint's schemas with its status.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from _backend_support import (
    INTERNAL,
    SECRET,
    STATIONS,
    USERS,
    Stack,
    closed_port,
    db_url,
    meter_event,
    of,
    running_stack,
    serve,
    started_event,
    status_event,
    stopped_event,
)

from chargetwin.contracts import default_validator
from chargetwin.twin.services.auth import issue_token, verify_token
from chargetwin.twin.services.backend import Backend, BackendStartError, create_app, service_of
from chargetwin.twin.services.backend.service import CMS_ANSWER_MARGIN_S
from chargetwin.twin.services.redis_server import RedisServer, start_redis
from chargetwin.twin.services.settings import Settings

Scenario = Callable[[Stack], Awaitable[None]]


def run(tmp_path: Path, redis_server: RedisServer, scenario: Scenario, **options: Any) -> None:
    """Run ``scenario`` against a fresh stack; no message may break the contracts."""
    async def main() -> None:
        async with running_stack(tmp_path, redis_server.url, **options) as stack:
            await scenario(stack)
            await stack.sub.sync()
            stack.sub.assert_conform()
            assert stack.cms.violations == []
    asyncio.run(main())


def answer(response: httpx.Response, channel: str, status: int) -> dict[str, Any]:
    """The JSON of ``response``, asserted to have ``status`` and to conform to ``channel``'s contract."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    found = default_validator().validate(body, channel=channel, direction="response", status=status)
    assert not found, [v.to_dict() for v in found]
    return body


def error(response: httpx.Response, status: int, title: str, channel: str = "backend:/api/charging/start") -> str:
    """The message of an error envelope with ``status`` and ``title``."""
    body = answer(response, channel, status)
    assert body["error"] == title, body
    return str(body["message"])


async def key(stack: Stack, name: str) -> Any:
    """The JSON value of a Redis key the backend wrote."""
    value = await stack.redis.get(name)
    assert value is not None, f"{name} is not set"
    return json.loads(value)


START, STOP, LOGIN = "backend:/api/charging/start", "backend:/api/charging/stop", "backend:/api/auth/login"


async def started(stack: Stack, user: int = 1, charger_id: str = "CP001", connector_id: int = 1,
                  tx: int = 789) -> int:
    """Connector Available, a REST start, StartTransaction: the session id."""
    await stack.event(status_event(charger_id, connector_id, "Available"))
    body = answer(await stack.post("/api/charging/start", {"charger_id": charger_id, "connector_id": connector_id},
                                   user=user), START, 200)
    await stack.event(started_event(charger_id, tx, connector_id=connector_id, id_tag=f"RFID00{user}"))
    return int(body["data"]["session_id"])


# --- login ----------------------------------------------------------------------------------------


def test_login_gives_a_token_for_rest_and_the_gateway(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        body = answer(await stack.post("/api/auth/login", {"email": "user2@chargetwin.example",
                                                           "password": "chargetwin"}), LOGIN, 200)
        data = body["data"]
        assert data["user_id"] == 2 and verify_token(data["token"], secret=SECRET) == 2
        expires = datetime.fromisoformat(data["expires_at"])
        assert abs((expires - datetime.now(UTC)) - timedelta(seconds=stack.settings.jwt_ttl_s)) < timedelta(
            seconds=5)  # wall time: tokens protect real sockets
        await stack.event(status_event("CP003", 1, "Available"))
        token = data["token"]
        answer(await stack.post("/api/charging/start", {"charger_id": "CP003"}, token=token), START, 200)

        for email, password in (("user2@chargetwin.example", "wrong"), ("nobody@chargetwin.example", "chargetwin")):
            assert error(await stack.post("/api/auth/login", {"email": email, "password": password}),
                         401, "Invalid credentials", LOGIN) == "Wrong email or password."
        for bad in ({"email": "user2@chargetwin.example"}, {"email": "x", "password": "y"},
                    {"email": "user2@chargetwin.example", "password": "chargetwin", "remember": True}):
            error(await stack.post("/api/auth/login", bad), 422, "Invalid request body", LOGIN)

    run(tmp_path, redis_server, scenario)


def test_the_backend_tells_the_gateway_its_users(tmp_path: Path, redis_server: RedisServer) -> None:
    """``chargetwin:users``: the gateway refuses a valid token of anyone else, as the backend's 401 does."""
    async def scenario(stack: Stack) -> None:
        assert await stack.redis.smembers("chargetwin:users") == {b"1", b"2", b"3"}
        await stack.redis.sadd("chargetwin:users", "999")  # a user of some earlier run
        await stack.restart_backend()
        assert await stack.redis.smembers("chargetwin:users") == {b"1", b"2", b"3"}
        token = issue_token(999, secret=SECRET, ttl_s=60, now=datetime.now(UTC))
        error(await stack.post("/api/charging/start", {"charger_id": "CP001"}, token=token), 401,
              "Invalid authentication token")

    run(tmp_path, redis_server, scenario)


# --- the happy path -------------------------------------------------------------------------------


def test_a_session_from_start_to_stop(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        sub, clock = stack.sub, stack.clock
        await stack.event(status_event("CP001", 1, "Preparing"))
        body = answer(await stack.post("/api/charging/start", {"charger_id": "CP001", "connector_id": 1}, user=1),
                      START, 200)
        assert body["data"] | {"session_id": 0} == {"session_id": 0, "transaction_id": None, "charger_id": "CP001",
                                                    "connector_id": 1, "status": "initiated",
                                                    "message": "Charging session started"}
        session_id = body["data"]["session_id"]
        assert stack.cms.calls == [("remote_start", {"charger_id": "CP001", "id_tag": "RFID001", "connector_id": 1})]
        await sub.sync()
        (response,) = of(sub.take(), 1, "response")
        assert response["data"]["success"] is True and response["data"]["session_id"] == session_id

        await stack.event(started_event("CP001", 789, meter_start=1000))
        await sub.sync()
        sent = sub.take()
        assert [(c, m["type"], m.get("event")) for c, m in sent] == [
            ("user:1:session_updates", "session_update", "session_started"),
            ("user:1:notifications", "notification", None),
            ("user:1:session_updates", "active_session_update", None)]
        active = await key(stack, "chargetwin:active_session:1")
        assert active == sent[2][1]["data"] and active["transaction_id"] == 789

        clock.advance(900)
        await stack.event(meter_event("CP001", 789, wh=5500, soc=45, at=900))
        await sub.sync()
        ((_, meter),) = sub.take()
        data = meter["data"]
        assert (meter["event"], meter["transaction_id"], data["energy_consumed"], data["cost"],
                data["charging_duration_display"]) == ("meter_value", 789, 5.5, round(5.5 * 7.41, 2), "15 min")

        clock.advance(2700)
        body = answer(await stack.post("/api/charging/stop", {"charger_id": None}, user=1), STOP, 200)
        assert body["data"] == {"session_id": session_id, "transaction_id": 789, "status": "stopped",
                                "energy_delivered": 5.5, "duration": 3600, "message": "Charging session stopped"}
        assert stack.cms.calls[-1] == ("stop", {"charger_id": "CP001", "connector_id": 1, "transaction_id": 789})
        await stack.event(stopped_event("CP001", 789, meter_stop=15500, reason="Remote", at=3600))
        await sub.sync()
        sent = sub.take()
        assert [m["type"] for _, m in sent] == ["response", "session_update", "active_session_update", "notification"]
        assert sent[1][1]["event"] == "session_stopped"
        assert sent[1][1]["data"] | {"stop_time": ""} == {
            "charger_id": "CP001", "connector_id": 1, "meter_stop": 15500, "energy_delivered": 14.5,
            "duration": 3600, "stop_time": "", "stop_reason": "Remote"}
        assert await stack.redis.get("chargetwin:active_session:1") is None
        assert all(c.startswith("user:1:") for c, _ in sent)  # a user only gets their own session updates

    run(tmp_path, redis_server, scenario)


# --- errors of ruling 6 ---------------------------------------------------------------------------


def test_every_authentication_failure_is_401(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        now = datetime.now(UTC)
        cases = [
            ({}, "Authentication required"),
            ({"Authorization": ""}, "Authentication required"),
            ({"Authorization": "Bearer not.a.jwt"}, "Invalid authentication token"),
            ({"Authorization": "Basic dXNlcjpwdw=="}, "Invalid authentication token"),
            ({"Authorization": "Bearer " + issue_token(1, secret="another-secret-of-at-least-32-bytes!",
                                                       ttl_s=60, now=now)}, "Invalid authentication token"),
            ({"Authorization": "Bearer " + issue_token(99, secret=SECRET, ttl_s=60, now=now)},
             "Invalid authentication token"),  # nobody has id 99
            ({"Authorization": "Bearer " + issue_token(1, secret=SECRET, ttl_s=60, now=now - timedelta(hours=2))},
             "Authentication token expired"),
        ]
        for path, channel in (("/api/charging/start", START), ("/api/charging/stop", STOP)):
            for headers, title in cases:
                response = await stack.post(path, {"charger_id": "CP001"}, headers=headers)
                error(response, 401, title, channel)
                assert response.headers["www-authenticate"] == "Bearer"
        # 401 comes before the body is looked at
        error(await stack.post("/api/charging/start", content=b"{oops"), 401, "Authentication required")
        assert stack.cms.calls == []

    run(tmp_path, redis_server, scenario)


def test_start_errors(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        async def start(body: Any, user: int = 1, **kwargs: Any) -> httpx.Response:
            return await stack.post("/api/charging/start", body, user=user, **kwargs)

        error(await start({"charger_id": "CP404"}), 404, "Charger not found")
        error(await start({"charger_id": "CP001", "connector_id": 3}), 404, "Connector not found")
        error(await start({"charger_id": "CP001"}), 409, "Charger not available")  # never reported
        await stack.event(status_event("CP001", 1, "Faulted", error_code="GroundFailure"))
        assert error(await start({"charger_id": "CP001"}), 409, "Charger not available") == \
            "The requested charger is currently unavailable"
        bad: Any
        for bad in ({}, {"connector_id": 1}, {"charger_id": "CP001", "connector_id": 0},
                    {"charger_id": "CP 001"}, {"charger_id": "CP001", "extra": 1}, [1, 2], "CP001"):
            error(await start(bad), 422, "Invalid request body")
        deep = b"[" * 60_000  # nesting deeper than the JSON parser goes, under the size limit
        for raw in (b"{not json", b'{"charger_id": "CP001", "connector_id": NaN}', deep):
            assert "JSON" in error(await start(None, content=raw), 422, "Invalid request body")

        await started(stack, user=1, charger_id="CP002", connector_id=2, tx=5)
        await stack.event(status_event("CP003", 1, "Available"))
        error(await start({"charger_id": "CP003"}), 409, "Session already active")
        error(await start({"charger_id": "CP002", "connector_id": 2}, user=2), 409, "Charger not available")
        assert [path for path, _ in stack.cms.calls] == ["remote_start"]

    run(tmp_path, redis_server, scenario)


def test_stop_errors(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        async def stop(body: Any, user: int = 1) -> httpx.Response:
            return await stack.post("/api/charging/stop", body, user=user)

        error(await stop({}), 404, "No active session", STOP)
        error(await stop(None, user=2), 404, "No active session", STOP)  # an empty body: the active session
        error(await stop({"charger_id": "CP404"}), 404, "Charger not found", STOP)
        error(await stop({"charger_id": 17}), 422, "Invalid request body", STOP)
        await stack.event(status_event("CP001", 1, "Available"))
        answer(await stack.post("/api/charging/start", {"charger_id": "CP001"}, user=1), START, 200)
        error(await stop({}), 409, "Session not started", STOP)
        await stack.event(started_event("CP001", 789))
        error(await stop({"charger_id": "CP002"}), 404, "No active session", STOP)
        error(await stop({}, user=2), 404, "No active session", STOP)
        stack.cms.reply("stop", 409)
        error(await stop({}), 409, "Stop rejected", STOP)
        stack.cms.reply("stop", 404)
        error(await stop({}), 404, "No active session", STOP)
        await stack.sub.sync()
        refusals = [m["data"] for m in of(stack.sub.take(), 1, "response") if m["action"] == "stop_charging"]
        assert [r["success"] for r in refusals] == [False, False]
        del stack.cms.replies["stop"]
        answer(await stop({"charger_id": "CP001"}), STOP, 200)  # the session went on

    run(tmp_path, redis_server, scenario)


@pytest.mark.parametrize(("reply", "status", "title"), [
    ((404, None), 404, "Charger not found"),
    ((409, None), 409, "Charger not available"),
    ((503, None), 503, "Charger offline"),
    ((504, None), 503, "Charger not responding"),
    ((500, None), 502, "CMS error"),
    ((500, "<html>oops</html>"), 502, "CMS error"),
    ((200, {"ok": True}), 502, "Bad CMS response"),
    ((200, "slow"), 503, "CMS unavailable"),
])
def test_a_failing_cms_fails_the_start(tmp_path: Path, redis_server: RedisServer, reply: tuple[int, Any],
                                       status: int, title: str) -> None:
    async def scenario(stack: Stack) -> None:
        code, body = reply
        if body == "slow":
            stack.cms.reply("remote_start", 200, {}, delay=0.4 + CMS_ANSWER_MARGIN_S)
        else:
            stack.cms.reply("remote_start", code, body)
        await stack.event(status_event("CP001", 1, "Available"))
        message = error(await stack.post("/api/charging/start", {"charger_id": "CP001"}, user=1), status, title)
        if body == "slow":
            assert f"did not answer within {0.2 + CMS_ANSWER_MARGIN_S:g} s" in message
        await stack.sub.sync()
        sent = stack.sub.take()
        (response,) = of(sent, 1, "response")
        (failure,) = of(sent, 1, "session_update", "session_error")
        assert response["data"] == {"success": False, "error": title, "message": message}
        assert (failure["transaction_id"], failure["data"]["error"]) == (None, title)
        del stack.cms.replies["remote_start"]
        answer(await stack.post("/api/charging/start", {"charger_id": "CP001"}, user=1), START, 200)

    run(tmp_path, redis_server, scenario, cms_timeout_s=0.2)


def test_an_unreachable_cms_is_503(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        await stack.event(status_event("CP001", 1, "Available"))
        message = error(await stack.post("/api/charging/start", {"charger_id": "CP001"}, user=1),
                        503, "CMS unavailable")
        assert "cannot be reached" in message
        await stack.event(started_event("CP002", 5, id_tag="RFID002"))  # a start at the charger needs no CMS
        error(await stack.post("/api/charging/stop", {}, user=2), 503, "CMS unavailable", STOP)
        await stack.sub.sync()
        assert of(stack.sub.messages, 1, "session_update", "session_error")

    run(tmp_path, redis_server, scenario, cms_port=closed_port())


def test_the_internal_endpoint_and_unknown_routes(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        event = status_event("CP001", 1, "Available")
        for headers in ({}, {"X-Internal-Token": "guess"}):
            response = await stack.http.post("/internal/cms/events", json=event, headers=headers)
            assert response.status_code == 401 and response.json()["error"] == "Authentication required"
        bad: dict[str, Any]
        for bad in ({"event": "coffee", "charger_id": "CP001", "transaction_id": None, "data": {}},
                    {**event, "data": {"connector_id": 1, "status": "Sleeping", "error_code": None,
                                       "timestamp": "2025-01-29T12:00:00Z"}}):
            response = await stack.event(bad, expect=422)
            assert response.json()["success"] is False and response.json()["error"] == "Invalid request body"
        response = await stack.event(event)
        assert response.content == b""
        for method, path, status in (("GET", "/nowhere", 404), ("GET", "/api/charging/start", 405),
                                     ("DELETE", "/api/auth/login", 405)):
            response = await stack.http.request(method, path)
            assert response.status_code == status and set(response.json()) == {"success", "error", "message"}
        health = await stack.http.get("/api/health")
        assert health.status_code == 200 and health.json()["success"] is True

    run(tmp_path, redis_server, scenario)


# --- CMS events ------------------------------------------------------------------------------------


def test_charger_updates_go_to_every_connected_user_and_nobody_else(tmp_path: Path,
                                                                    redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        await stack.redis.hset("chargetwin:connected_users", mapping={"4": 2, "5": 0})  # 5 has no socket left
        await stack.event(status_event("CP002", 1, "Available"))
        await stack.event(status_event("CP002", 2, "Faulted", error_code="HighTemperature", info="hot"))
        await stack.event(status_event("CP002", 0, "Unavailable"))
        await stack.sub.sync()
        sent = stack.sub.take()
        assert {c.split(":")[1] for c, _ in sent} == {"1", "2", "4"}
        assert all(c.endswith(":charger_updates") for c, _ in sent)
        for user in (1, 2, 4):
            mine = [(m["type"], m.get("event")) for c, m in sent if c == f"user:{user}:charger_updates"]
            assert mine == [("charger_update", "connector_status_changed"), ("charger_status_update", None),
                            ("charger_update", "connector_status_changed"), ("charger_update", "error"),
                            ("charger_status_update", None),
                            ("charger_update", "status_changed"), ("charger_status_update", None)]
        update = of(sent, 4, "charger_status_update")[-1]
        assert (update["status"], update["data"]["display"], update["data"]["connectors_unavailable"]) == (
            "available", "1/4", 3)
        listed = await key(stack, "chargetwin:charger_list")
        stamp = "2025-01-29T12:00:00Z"
        wrapped = {"type": "charger_list_update", "action": "update",
                   "data": {"chargers": listed, "timestamp": stamp}, "timestamp": stamp}
        assert default_validator().validate(wrapped, channel="websocket", direction="receive") == []
        assert [(c["charger_id"], c["available_connectors"]) for c in listed[0]["chargers"]] == [
            ("CP001", 0), ("CP002", 1)]

    run(tmp_path, redis_server, scenario, connected=(1, 2))


def test_sessions_that_end_without_a_stop_request(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        await started(stack, user=1, charger_id="CP001", tx=1)
        await started(stack, user=2, charger_id="CP003", tx=2)
        await stack.event(stopped_event("CP001", 1, meter_stop=9000, reason="EVDisconnected"))
        await stack.event(status_event("CP003", 1, "Faulted", error_code="GroundFailure"))
        await stack.event(stopped_event("CP003", 2, meter_stop=4000, reason="Other"))
        await stack.event(stopped_event("CP003", 2, meter_stop=4000, reason="Other"))  # a retry of the CMS
        await stack.sub.sync()
        sent = stack.sub.take()
        assert [m["event"] for m in of(sent, 1, "session_update")][-1] == "session_completed"
        ends = [m for m in of(sent, 2, "session_update") if m["event"] == "session_error"]
        assert len(ends) == 2 and ends[0] == ends[1] and ends[0]["data"]["error_code"] == "GroundFailure"
        assert of(sent, 3, "session_update") == []

    run(tmp_path, redis_server, scenario)


def test_a_restarted_backend_continues_every_session(tmp_path: Path, redis_server: RedisServer) -> None:
    async def scenario(stack: Stack) -> None:
        session_id = await started(stack, user=1, charger_id="CP001", tx=789)
        await stack.event(status_event("CP001", 1, "Charging"))
        await stack.event(status_event("CP002", 1, "Available"))
        await stack.event(meter_event("CP001", 789, wh=3000, soc=40, at=600))
        await stack.redis.delete("chargetwin:charger_list", "chargetwin:active_session:1")  # Redis lost them too
        await stack.redis.set("chargetwin:active_session:3", "{}")  # and kept a stale one
        await stack.sub.sync()
        stack.sub.take()

        await stack.restart_backend()
        assert (await key(stack, "chargetwin:active_session:1"))["session_id"] == session_id
        assert await stack.redis.get("chargetwin:active_session:3") is None
        assert (await key(stack, "chargetwin:charger_list"))[0]["available_connectors"] == 1

        stack.clock.advance(1200)
        await stack.event(meter_event("CP001", 789, wh=6000, soc=50, power=22.0, at=1200))
        await stack.sub.sync()
        (meter,) = of(stack.sub.take(), 1, "session_update", "meter_value")
        assert (meter["session_id"], meter["transaction_id"]) == (session_id, 789)
        assert (meter["data"]["charging_duration"], meter["data"]["energy_consumed"]) == (1200, 6.0)
        assert meter["data"]["time_remaining"] == round(0.5 * 30 / 22.0 * 3600)  # capacity known from before
        error(await stack.post("/api/charging/start", {"charger_id": "CP002"}, user=1), 409, "Session already active")
        answer(await stack.post("/api/charging/start", {"charger_id": "CP002"}, user=2), START, 200)

        body = answer(await stack.post("/api/charging/stop", {"charger_id": "CP001"}, user=1), STOP, 200)
        assert (body["data"]["session_id"], body["data"]["duration"]) == (session_id, 1200)
        assert stack.cms.calls[-1] == ("stop", {"charger_id": "CP001", "connector_id": 1, "transaction_id": 789})
        await stack.restart_backend()  # between the stop and StopTransaction
        await stack.event(stopped_event("CP001", 789, meter_stop=7100, reason="Remote", at=1300))
        await stack.sub.sync()
        (end,) = of(stack.sub.take(), 1, "session_update", "session_stopped")
        assert (end["session_id"], end["data"]["energy_delivered"], end["data"]["duration"]) == (session_id, 6.1, 1300)
        stored = stack.backend.service.session(session_id)
        assert stored is not None and stored.status == "stopped"

    run(tmp_path, redis_server, scenario)


# --- running it ------------------------------------------------------------------------------------


def test_start_fails_clearly(tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> None:
        redis = aioredis.Redis.from_url(db_url(redis_server.url))
        settings = Settings(backend_port=0, database=str(tmp_path / "b.sqlite3"), jwt_secret=SECRET)
        try:
            async with Backend(settings=settings, stations=STATIONS, users=USERS, clock=_Clock(),
                               redis=redis) as first:
                taken = Settings(backend_port=first.port, database=str(tmp_path / "c.sqlite3"))
                with pytest.raises(BackendStartError, match="cannot listen"):
                    await Backend(settings=taken, stations=STATIONS, users=USERS, clock=_Clock(), redis=redis).start()
            gone = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0")
            with pytest.raises(BackendStartError, match="Redis"):
                await Backend(settings=settings, stations=STATIONS, users=USERS, clock=_Clock(), redis=gone).start()
            await gone.aclose()
            bad = Settings(backend_port=0, database=str(tmp_path / "missing" / "dir" / "b.sqlite3"))
            with pytest.raises(BackendStartError, match="database"):
                await Backend(settings=bad, stations=STATIONS, users=USERS, clock=_Clock(), redis=redis).start()
        finally:
            await redis.aclose()
    asyncio.run(main())


def test_create_app_opens_and_closes_itself_when_served_by_uvicorn(tmp_path: Path, redis_server: RedisServer) -> None:
    async def main() -> None:
        redis = aioredis.Redis.from_url(db_url(redis_server.url))
        settings = Settings(backend_port=0, database=str(tmp_path / "b.sqlite3"), jwt_secret=SECRET)
        app = create_app(settings=settings, stations=STATIONS, users=USERS, clock=_Clock(), redis=redis)
        try:
            async with serve(app, lifespan="on") as port, httpx.AsyncClient() as http:
                assert service_of(app).is_open
                login = await http.post(f"http://127.0.0.1:{port}/api/auth/login",
                                        json={"email": "user3@chargetwin.example", "password": "chargetwin"})
                assert answer(login, LOGIN, 200)["data"]["user_id"] == 3
                assert await redis.get("chargetwin:charger_list") is not None
            assert not service_of(app).is_open
        finally:
            await redis.aclose()
    asyncio.run(main())


class _Clock:
    def now(self) -> datetime:
        return datetime(2025, 1, 29, 12, tzinfo=UTC)


def test_redis_going_away_answers_the_cms_503_so_that_it_retries(tmp_path: Path) -> None:
    server = start_redis()

    async def main() -> None:
        redis = aioredis.Redis.from_url(server.url)
        settings = Settings(backend_port=0, database=str(tmp_path / "b.sqlite3"), jwt_secret=SECRET,
                            internal_token="t")
        try:
            async with Backend(settings=settings, stations=STATIONS, users=USERS, clock=_Clock(),
                               redis=redis) as backend, httpx.AsyncClient(base_url=backend.url) as http:
                event = status_event("CP001", 1, "Available")
                assert (await http.post("/internal/cms/events", json=event, headers={"X-Internal-Token": "t"})
                        ).status_code == 202
                server.stop()
                failed = await http.post("/internal/cms/events", json=event, headers={"X-Internal-Token": "t"})
                assert (failed.status_code, failed.json()["error"]) == (503, "Redis unavailable")
                health = await http.get("/api/health")
                assert (health.status_code, health.json()["error"]) == (503, "Redis unavailable")
        finally:
            await redis.aclose()
    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_events_that_arrive_together_are_published_together_in_their_order(tmp_path: Path,
                                                                         redis_server: RedisServer) -> None:
    statuses = ["Available", "Preparing", "Charging", "SuspendedEV", "Charging", "Finishing", "Available"]

    async def scenario(stack: Stack) -> None:
        service = stack.backend.service
        before = service.batches
        await asyncio.gather(*(service.cms_event(status_event("CP001", 1, status)) for status in statuses))
        await stack.sub.sync()
        seen = [m["data"]["status"] for c, m in stack.sub.take()
                if c == "user:1:charger_updates" and m.get("event") == "connector_status_changed"]
        assert seen == statuses
        assert service.batches - before < len(statuses)  # queued steps went out together

    run(tmp_path, redis_server, scenario, connected=(1,))


def test_a_client_that_leaves_mid_body_gets_no_traceback(tmp_path: Path, redis_server: RedisServer,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(stack: Stack) -> None:
        host, port = stack.backend.url.removeprefix("http://").split(":")
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /internal/cms/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-Internal-Token: " + INTERNAL.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"event\":")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.3)
        assert (await stack.event(status_event("CP001", 1, "Available"))).status_code == 202  # still serving

    with caplog.at_level("ERROR"):
        run(tmp_path, redis_server, scenario)
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
