"""Test users of the twin: one per driver of the scenario's fleet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["PASSWORD", "TestUser", "test_users"]

PASSWORD = "chargetwin"
"""Every test user's password (the twin is a test system; never use real credentials)."""


@dataclass(frozen=True, slots=True)
class TestUser:
    """A user of the twin's backend: ``user_id`` and ``id_tag`` match a driver of the model."""

    user_id: int
    id_tag: str
    email: str
    name: str
    password: str = PASSWORD


def test_users(drivers: Iterable[tuple[int, str]]) -> list[TestUser]:
    """Test users for (user_id, id_tag) pairs, e.g. ``[(d.user_id, d.id_tag) for d in world.drivers]``."""
    return [TestUser(user_id, id_tag, f"user{user_id}@chargetwin.example", f"Test User {user_id}")
            for user_id, id_tag in drivers]
