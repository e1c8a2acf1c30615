"""CORS on the backend: a browser build of the app may call the API from the configured origins.

Before, a browser's preflight got 405 and the app could not call the API at all.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis
from _backend_support import STATIONS, USERS

from chargetwin.twin.clock import WallClock
from chargetwin.twin.services.backend.app import create_app
from chargetwin.twin.services.settings import Settings


def preflight(origins: str, origin: str, method: str = "POST") -> httpx.Response:
    async def main() -> httpx.Response:
        redis = aioredis.from_url("redis://127.0.0.1:1/0")  # never reached: a preflight touches no service
        app = create_app(settings=Settings(cors_origins=origins), stations=STATIONS, users=USERS,
                         clock=WallClock(), redis=redis)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin") as http:
            answer = await http.options("/api/charging/start", headers={
                "Origin": origin, "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization,content-type"})
        await redis.aclose()
        return answer
    return asyncio.run(main())


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:8081", "https://[::1]:3000",
                                    "http://localhost"])
def test_any_origin_on_this_machine_is_allowed_by_default(origin: str) -> None:
    answer = preflight("loopback", origin)
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == origin
    assert "authorization" in answer.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost.evil.example",
                                    "http://127.0.0.1.evil.example:80"])
def test_other_origins_are_refused_by_default(origin: str) -> None:
    answer = preflight("loopback", origin)
    assert answer.status_code == 400 and "access-control-allow-origin" not in answer.headers


def test_configured_origins_and_none() -> None:
    assert preflight("https://app.example.com", "https://app.example.com").status_code == 200
    assert preflight("https://app.example.com", "http://localhost:5173").status_code == 400
    assert preflight("*", "http://anything.example").headers["access-control-allow-origin"] == "*"
    assert preflight("none", "http://localhost:5173").status_code == 405  # no CORS at all, as before
