"""Routing, errors and the shape of violations."""

from __future__ import annotations

import pytest

from chargetwin.contracts import UnknownChannelError, Validator, json_pointer

ERROR = {"type": "error", "message": "Invalid message format", "timestamp": "2025-01-29T12:00:00Z"}


def test_unknown_channel_is_an_error_that_lists_the_known_ones(validator: Validator) -> None:
    with pytest.raises(UnknownChannelError, match=r"unknown channel 'mqtt'.*websocket"):
        validator.validate(ERROR, channel="mqtt", direction="receive")


def test_unknown_direction_is_an_error_that_lists_the_known_ones(validator: Validator) -> None:
    with pytest.raises(UnknownChannelError, match=r"direction 'publish'.*receive, send, close"):
        validator.validate(ERROR, channel="websocket", direction="publish")


def test_redis_channels_must_name_a_numeric_user(validator: Validator) -> None:
    with pytest.raises(UnknownChannelError):
        validator.validate(ERROR, channel="redis:user:alice:notifications", direction="publish")


def test_the_route_cache_stays_bounded(validator: Validator) -> None:
    note = {"type": "notification", "title": "t", "message": "m", "data": {}, "timestamp": "2025-01-29T12:00:00Z"}
    for user in range(1, 100_050, 997):
        assert validator.validate(note, channel=f"redis:user:{user}:notifications", direction="publish") == []
    assert len(validator._routes) <= 100_001


def test_an_error_body_without_success_is_checked_as_an_error(validator: Validator) -> None:
    found = validator.validate({"error": "Charger not available", "message": "busy"},
                               channel="backend:/api/charging/start", direction="response", status=409)
    assert [(v.rule, v.pointer) for v in found] == [("schema.required", "/success")]


def test_violations_carry_schema_spec_and_values(validator: Validator) -> None:
    message = dict(ERROR, timestamp="yesterday")
    [violation] = validator.validate(message, channel="websocket", direction="receive")
    assert violation.rule == "schema.pattern"
    assert violation.pointer == "/timestamp"
    assert violation.actual == "yesterday"
    assert violation.schema == "messages/error"
    assert violation.spec == "4.9 Error Message"
    assert violation.to_dict()["expected"].startswith("^[0-9]{4}")


def test_every_unexpected_property_is_reported_at_its_own_pointer(validator: Validator) -> None:
    message = dict(ERROR, extra=1, **{"a/b": 2})
    found = validator.validate(message, channel="websocket", direction="receive")
    assert sorted(v.pointer for v in found) == ["/a~1b", "/extra"]


def test_json_pointer_escapes_per_rfc_6901() -> None:
    assert json_pointer(["data", "a/b", "c~d", 0]) == "/data/a~1b/c~0d/0"
    assert json_pointer([]) == ""


def test_schemas_are_compiled_once_per_validator() -> None:
    first = Validator()
    assert "messages/session_update/meter_value" in first.schema_names
    assert "defs" not in first.schema_names
