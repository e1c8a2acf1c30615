"""Every timestamp the services write is UTC with a ``Z``, whatever zone the twin's clock is in (SPEC-NOTES N-20).

A scenario's clock runs in local time (Cairo, +02:00), and charge points may
stamp their OCPP requests in local time too: the CMS events, the backend's
messages and keys, and the gateway's own messages still write ``Z`` only,
as the seed does, so that one message never mixes offsets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta, timezone
from typing import Any

from _backend_support import STATIONS, T0, USERS

from chargetwin.contracts import default_validator
from chargetwin.twin.model import events as ev
from chargetwin.twin.services.backend import messages as msg
from chargetwin.twin.services.backend.logic import BackendLogic, Effects, fan_out
from chargetwin.twin.services.backend.state import Network, Users
from chargetwin.twin.services.chargepoints import sampled_values
from chargetwin.twin.services.cms import CentralSystem
from chargetwin.twin.services.gateway import messages as gateway_messages
from chargetwin.twin.services.timestamps import format_timestamp, utc_text

CAIRO = timezone(timedelta(hours=2))
NOW = T0.astimezone(CAIRO)  # 14:00+02:00, 12:00Z
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def local(seconds: float) -> str:
    """A charge point's timestamp in local time, ``seconds`` after T0."""
    return (NOW + timedelta(seconds=seconds)).isoformat()


def timestamps(value: Any) -> Iterator[str]:
    """Every string in ``value`` (nested) that is a date and time."""
    if isinstance(value, str):
        if _TIMESTAMP.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from timestamps(item)
    elif isinstance(value, list):
        for item in value:
            yield from timestamps(item)


def written(effects: Effects) -> list[Any]:
    """Every message ``effects`` publishes (to users 1 and 2) and every key it writes, as JSON values."""
    sent = [m for _, m in [*effects.publish, *fan_out(effects.broadcast, (1, 2))]]
    return sent + [json.loads(value) for value in effects.keys.values() if value is not None]


def test_a_session_on_a_local_clock_writes_only_utc_timestamps() -> None:
    central = CentralSystem(STATIONS)
    logic = BackendLogic(Network(STATIONS), Users(USERS))
    out: list[Any] = []

    def deliver(events: list[dict[str, Any]], at: float) -> None:
        for event in events:
            out.append(event)
            out.extend(written(logic.handle(event, now=NOW + timedelta(seconds=at))))

    for connector in (0, 1):
        deliver(central.on_status_notification("CP001", connector_id=connector, status="Available",
                                               error_code="NoError", timestamp=local(0), now=NOW), 0)
    session, _ = logic.begin_start(1, "CP001", 1, now=NOW)
    data, effects = logic.start_accepted(session, None, now=NOW)
    out += [data, *written(effects)]
    transaction, events = central.on_start_transaction("CP001", connector_id=1, id_tag=session.id_tag,
                                                       meter_start=1000, timestamp=local(1), now=NOW)
    deliver(events, 1)
    sample = ev.MeterSample(60, 1, "CP001", 1, 1600, 600, 11.0, 230.0, 16.0, 3, 0.4)
    deliver(central.on_meter_values("CP001", connector_id=1, transaction_id=transaction.id, now=NOW,
                                    meter_value=[{"timestamp": local(60), "sampled_value": sampled_values(sample)}]),
            60)
    out += written(logic.set_maintenance("STATION002", True, reason="Works", now=NOW))
    data, effects = logic.stop_accepted(session, now=NOW + timedelta(seconds=90))
    out += [data, *written(effects)]
    deliver(central.on_stop_transaction("CP001", transaction_id=transaction.id, meter_stop=2000, timestamp=local(90),
                                        reason="Remote", now=NOW), 91)

    found = list(timestamps(out))
    assert len(found) > 20
    assert [t for t in found if not t.endswith("Z")] == []
    types = {m.get("event") or m.get("type") for m in out if isinstance(m, dict)}
    assert {"status_changed", "session_started", "meter_value", "session_stopped", "charger_status_update",
            "maintenance_mode", "notification", "response", "active_session_update"} <= types


def test_times_a_cms_passes_on_with_an_offset_are_written_in_utc() -> None:
    """A CMS may send RFC 3339 with an offset (the contracts allow it): the backend passes it on in UTC."""
    message = msg.connector_status_changed("CP001", 1, status="Available", previous=None, error_code=None,
                                           at="2025-01-29T14:00:00+02:00", now=msg.rfc3339(NOW))
    assert (message["timestamp"], message["data"]["timestamp"]) == ("2025-01-29T12:00:00.000Z",
                                                                    "2025-01-29T12:00:00.000Z")
    assert default_validator().validate(message, channel="redis:user:1:charger_updates", direction="publish") == []
    assert utc_text("2025-01-29T12:00:00Z") == "2025-01-29T12:00:00Z"  # already UTC: as it is


def test_the_gateways_own_messages_on_a_local_clock_are_utc() -> None:
    stamp = format_timestamp(NOW)
    texts = gateway_messages.welcome(1, stamp, chargers_json="[]", session=None)
    texts.append(gateway_messages.error(gateway_messages.RECEIVE_ONLY, stamp))
    found = [t for text in texts for t in timestamps(json.loads(text))]
    assert found and all(t == "2025-01-29T12:00:00.000Z" for t in found)
