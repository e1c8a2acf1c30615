"""The spec-coverage universe agrees with the catalog, the API documents and close-codes.json,
and every record maps to the item it is (or to none)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, read_ndjson

from chargetwin.contracts import catalog
from chargetwin.contracts.coverage import (
    CMS_EVENT_SPECS,
    GROUPS,
    HEARTBEAT_KEYS,
    OCPP_SPEC,
    RESPONSE_ACTIONS,
    SPEC_ITEMS,
    item_key,
    route_of,
)
from chargetwin.contracts.schemas import CONTRACTS_DIR, load_json, schema_documents

OPENAPI = {service: CONTRACTS_DIR / "openapi" / f"{service}.openapi.yaml" for service in ("backend", "cms")}
ASYNCAPI = CONTRACTS_DIR / "asyncapi" / "gateway.asyncapi.yaml"
KEYS = [item.key for item in SPEC_ITEMS]
ITEMS = {item.key: item for item in SPEC_ITEMS}


def load_yaml(path: Any) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def openapi_statuses() -> dict[str, set[int]]:
    """Channel (``service:path``) -> the statuses its POST operation documents."""
    found: dict[str, set[int]] = {}
    for service, path in OPENAPI.items():
        for route, operations in load_yaml(path)["paths"].items():
            found[f"{service}:{route}"] = {int(status) for status in operations["post"]["responses"]}
    return found


def keys_of(group: str) -> set[str]:
    return {item.key for item in SPEC_ITEMS if item.group == group}


# --- the universe ----------------------------------------------------------------------------


def test_keys_are_unique_and_groups_come_in_order() -> None:
    assert len(KEYS) == len(set(KEYS))
    groups = [item.group for item in SPEC_ITEMS]
    assert sorted(groups, key=GROUPS.index) == groups  # grouped, in the order of GROUPS
    assert set(groups) == set(GROUPS)
    assert all(item.label and item.spec for item in SPEC_ITEMS)


def test_catalog_statuses_are_the_openapi_documents() -> None:
    assert {channel: set(statuses) for channel, statuses in catalog.RESPONSE_STATUSES.items()} == openapi_statuses()
    assert all(list(statuses) == sorted(statuses) for statuses in catalog.RESPONSE_STATUSES.values())


def test_rest_items_are_every_documented_request_and_status() -> None:
    expected = set()
    for channel, statuses in openapi_statuses().items():
        if channel == catalog.CMS_EVENTS_CHANNEL:
            continue
        expected.add(f"rest:{channel}:request")
        expected |= {f"rest:{channel}:response:{status}" for status in statuses}
    assert keys_of("REST") == expected
    for channel, endpoint in catalog.ENDPOINTS.items():
        assert ITEMS[f"rest:{channel}:request"].spec == endpoint.spec


def test_cms_event_items_are_every_documented_event_and_answer() -> None:
    document = load_yaml(OPENAPI["backend"])["paths"]["/internal/cms/events"]["post"]
    refs = document["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    events = [re.fullmatch(r".*/cms/events/(\w+)\.schema\.json", ref["$ref"]).group(1)  # type: ignore[union-attr]
              for ref in refs]
    statuses = [int(status) for status in document["responses"]]
    expected = {f"cms-event:{event}:request" for event in events}
    expected |= {f"cms-event:{event}:response:{status}" for event in events for status in statuses}
    assert keys_of("CMS events") == expected
    documents = schema_documents()
    assert {event: documents[f"cms/events/{event}"]["x-spec"] for event in catalog.CMS_EVENTS} == CMS_EVENT_SPECS


def test_websocket_items_are_every_gateway_message_of_the_asyncapi_document() -> None:
    messages = load_yaml(ASYNCAPI)["channels"]["gateway"]["messages"]
    expected = {"websocket:send"}
    for name in messages:
        base = "websocket:" + name.replace(".", ":")
        if name == "response":
            expected |= {f"{base}:{action}:{outcome}" for action in RESPONSE_ACTIONS
                         for outcome in ("success", "failure")}
        else:
            expected.add(base)
    assert keys_of("WebSocket") == expected
    enum = schema_documents()["messages/response"]["properties"]["action"]["enum"]
    assert list(RESPONSE_ACTIONS) == enum


def test_redis_items_are_every_channel_message_of_the_asyncapi_document() -> None:
    expected = set()
    for channel in load_yaml(ASYNCAPI)["channels"].values():
        match = re.fullmatch(r"user:\{userId\}:(\w+)", channel["address"])
        if match:
            expected |= {f"redis:{match.group(1)}:{name.replace('.', ':')}" for name in channel["messages"]}
    assert len(expected) == 15
    assert keys_of("Redis") == expected


def test_close_items_are_close_codes_json() -> None:
    entries = load_json(CONTRACTS_DIR / "close-codes.json")["codes"]
    expected = {(f"close:{e['code']}" if e["reason"] is None else f"close:{e['code']}:{e['reason']}"): e["spec"]
                for e in entries}
    assert {item.key: item.spec for item in SPEC_ITEMS if item.group == "Close codes"} == expected
    codes = [int(key.split(":")[1]) for key in KEYS if key.startswith("close:")]
    assert codes == sorted(codes)


def test_heartbeat_items() -> None:
    assert keys_of("Heartbeat") == set(HEARTBEAT_KEYS.values())


def test_ocpp_calls_are_the_actions_the_twin_handles() -> None:
    from chargetwin.twin.services.chargepoints import _Client
    from chargetwin.twin.services.cms.ocpp_server import _Link

    def handled(cls: type) -> set[str]:
        return {member._on_action for member in vars(cls).values() if hasattr(member, "_on_action")}

    assert {a for a, way in catalog.OCPP_CALLS.items() if way == "send"} == handled(_Link)
    assert {a for a, way in catalog.OCPP_CALLS.items() if way == "receive"} == handled(_Client)


def test_ocpp_items() -> None:
    expected = {f"ocpp:{action}:{kind}" for action in catalog.OCPP_CALLS for kind in ("CALL", "CALLRESULT")}
    assert keys_of("OCPP") == expected | {"ocpp:CALLERROR:send", "ocpp:CALLERROR:receive"}
    assert schema_documents()["ocpp/frame"]["x-spec"] == OCPP_SPEC
    assert ITEMS["ocpp:RemoteStartTransaction:CALL"].label == "RemoteStartTransaction CALL (CMS → charge point)"


def test_every_section_is_a_heading_of_the_protocol_document(seed_text: str) -> None:
    headings = {m.group(1).strip() for m in re.finditer(r"^#+ (.+)$", seed_text, re.M)}
    for item in SPEC_ITEMS:
        if item.group == "OCPP":  # the seed does not describe OCPP (DESIGN ruling 7)
            continue
        assert item.spec in headings or re.sub(r"^\d+\. ", "", item.spec) in headings, item


# --- a record's item ---------------------------------------------------------------------------

SEED_RECORDS = read_ndjson(EXAMPLES / "seed.ndjson")


@pytest.mark.parametrize("record", SEED_RECORDS, ids=lambda r: f"line{r['source']['line']}")
def test_every_seed_example_is_an_item(record: dict[str, Any]) -> None:
    key = item_key(record["channel"], record["direction"], record.get("status"), record["message"])
    assert key in ITEMS
    if record["direction"] == "response":
        assert key.endswith(f":response:{record['status']}")


def test_seed_examples_map_to_their_own_items() -> None:
    keys = [item_key(r["channel"], r["direction"], r.get("status"), r["message"]) for r in SEED_RECORDS]
    assert keys[:3] == ["rest:backend:/api/charging/start:request", "rest:backend:/api/charging/start:response:200",
                        "rest:backend:/api/charging/start:response:409"]
    assert "redis:session_updates:session_update:meter_value" in keys
    assert "websocket:charger_update:status_changed" in keys
    assert "cms-event:meter_value:request" in keys
    assert keys.count("websocket:error") == 2
    assert {"websocket:response:start_charging:success", "websocket:response:start_charging:failure"} <= set(keys)


def response(action: Any = "start_charging", success: Any = True) -> dict[str, Any]:
    return {"type": "response", "action": action, "data": {"success": success, "message": "x"}}


@pytest.mark.parametrize(("channel", "direction", "status", "message", "expected"), [
    ("websocket", "receive", None, response(), "websocket:response:start_charging:success"),
    ("websocket", "receive", None, response("stop_charging", False), "websocket:response:stop_charging:failure"),
    ("websocket", "receive", None, {"type": "connected"}, "websocket:connected"),
    ("websocket", "send", None, {"action": "start"}, "websocket:send"),
    ("websocket", "send", None, "not json", "websocket:send"),
    ("websocket", "close", None, {"code": 1000, "reason": ""}, "close:1000"),
    ("websocket", "close", None, {"code": 1001, "reason": "going away"}, "close:1001"),
    ("websocket", "close", None, {"code": 1008, "reason": "Server at capacity"}, "close:1008:Server at capacity"),
    ("redis:user:7:notifications", "publish", None, response(), "redis:notifications:response"),
    ("redis:user:7:charger_updates", "publish", None, {"type": "charger_update", "event": "error"},
     "redis:charger_updates:charger_update:error"),
    ("backend:/api/auth/login", "response", 401, {}, "rest:backend:/api/auth/login:response:401"),
    ("cms:/api/charging/stop", "response", 504, {}, "rest:cms:/api/charging/stop:response:504"),
    ("cms:/api/charging/stop", "request", None, {}, "rest:cms:/api/charging/stop:request"),
    ("ocpp:CP001", "send", None, [2, "1", "BootNotification", {}], "ocpp:BootNotification:CALL"),
    ("ocpp:CP001", "receive", None, [2, "1", "ChangeAvailability", {}], "ocpp:ChangeAvailability:CALL"),
    ("ocpp:CP001", "receive", None, [4, "1", "NotSupported", "", {}], "ocpp:CALLERROR:receive"),
    ("ocpp:CP001", "send", None, [4, "1", "InternalError", "", {}], "ocpp:CALLERROR:send"),
])
def test_records_map_to_their_item(channel: str, direction: str, status: int | None, message: Any,
                                   expected: str) -> None:
    assert item_key(channel, direction, status, message) == expected


def test_answers_map_once_paired() -> None:
    frame = [3, "1", {"currentTime": "2025-01-29T12:00:00Z"}]
    assert item_key("ocpp:CP001", "receive", None, frame) is None
    assert item_key("ocpp:CP001", "receive", None, frame, answers="BootNotification") \
        == "ocpp:BootNotification:CALLRESULT"
    assert item_key("ocpp:CP001", "send", None, frame, answers="BootNotification") is None  # the wrong way
    events = catalog.CMS_EVENTS_CHANNEL
    assert item_key(events, "response", 202, None) is None
    assert item_key(events, "response", 202, None, answers="meter_value") == "cms-event:meter_value:response:202"


@pytest.mark.parametrize(("channel", "direction", "status", "message"), [
    ("redis:user:7:broadcast", "publish", None, {"type": "notification"}),
    ("redis:user:x:notifications", "publish", None, {"type": "notification"}),
    ("redis:user:7:charger_updates", "publish", None, {"type": "notification"}),  # not on this channel
    ("websocket", "receive", None, {"type": "hello"}),
    ("websocket", "receive", None, {"type": ["connected"]}),
    ("websocket", "receive", None, {"type": "session_update", "event": "paused"}),
    ("websocket", "receive", None, {"type": "session_update", "event": {"x": 1}}),
    ("websocket", "receive", None, {"type": "session_update"}),
    ("websocket", "receive", None, response("pause_charging")),
    ("websocket", "receive", None, response(success="yes")),
    ("websocket", "receive", None, ["connected"]),
    ("websocket", "receive", None, "not json"),
    ("websocket", "close", None, {"code": 4000, "reason": ""}),
    ("websocket", "close", None, {"code": 1008, "reason": "Go away"}),
    ("websocket", "close", None, {"code": True, "reason": ""}),
    ("websocket", "publish", None, {"type": "connected"}),
    ("backend:/api/charging/start", "response", 500, {}),
    ("backend:/api/charging/start", "response", None, {}),
    ("backend:/api/charging/pause", "request", None, {}),
    (catalog.CMS_EVENTS_CHANNEL, "request", None, {"event": "boot"}),
    (catalog.CMS_EVENTS_CHANNEL, "request", None, "not json"),
    ("ocpp:", "send", None, [2, "1", "Heartbeat", {}]),
    ("ocpp:CP001", "send", None, [2, "1", "ReserveNow", {}]),
    ("ocpp:CP001", "receive", None, [2, "1", "Heartbeat", {}]),  # a Heartbeat CALL goes charge point -> CMS
    ("ocpp:CP001", "send", None, [5, "1", {}]),
    ("ocpp:CP001", "send", None, {"action": "Heartbeat"}),
    ("ocpp:CP001", "send", None, [2, "1"]),
    ("mqtt:CP001", "send", None, {}),
])
def test_records_of_no_item_map_to_none(channel: str, direction: str, status: int | None, message: Any) -> None:
    assert item_key(channel, direction, status, message) is None


def test_routes() -> None:
    assert route_of("redis:user:42:session_updates") == "redis:session_updates"
    assert route_of("ocpp:CP007") == "ocpp"
    assert route_of("websocket") == "websocket"
    assert route_of(catalog.CMS_EVENTS_CHANNEL) == catalog.CMS_EVENTS_CHANNEL
    assert route_of("redis:user:42:session_updates:x") is None
