"""The CMS's protocol logic without sockets: transactions, stops, meter readings, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cms_testkit import NETWORK
from hypothesis import given
from hypothesis import strategies as st

from chargetwin.contracts import Validator
from chargetwin.twin.model import events as ev
from chargetwin.twin.services.chargepoints import sampled_values
from chargetwin.twin.services.cms import (
    AmbiguousTransactionError,
    CentralSystem,
    NoTransactionError,
    UnknownChargePointError,
    UnknownConnectorError,
)
from chargetwin.twin.services.cms._meter import read_meter_value
from chargetwin.twin.services.timestamps import format_timestamp, parse_timestamp

NOW = datetime(2025, 1, 29, 12, 0, tzinfo=UTC)
EVENTS = "backend:/internal/cms/events"


def start(central: CentralSystem, connector_id: int = 1, meter_start: int = 1000, charger_id: str = "CP001") -> int:
    transaction, _ = central.on_start_transaction(charger_id, connector_id=connector_id, id_tag="RFID123",
                                                  meter_start=meter_start, timestamp="2025-01-29T12:00:00Z", now=NOW)
    return transaction.id


def test_transaction_ids_count_up_from_the_first() -> None:
    central = CentralSystem(NETWORK, first_transaction_id=789)
    assert [start(central, 1), start(central, 2), start(central, 1, charger_id="CP002")] == [789, 790, 791]


def test_a_stop_finds_its_transaction_by_id_connector_or_charger() -> None:
    central = CentralSystem(NETWORK)
    first = start(central, 1)
    assert central.find_for_stop("CP001").id == first
    second = start(central, 2)
    assert central.find_for_stop("CP001", connector_id=2).id == second
    assert central.find_for_stop("CP001", transaction_id=first, connector_id=2).id == first  # the id wins
    with pytest.raises(AmbiguousTransactionError, match="transaction_id or connector_id"):
        central.find_for_stop("CP001")
    with pytest.raises(NoTransactionError):
        central.find_for_stop("CP002")
    with pytest.raises(NoTransactionError):
        central.find_for_stop("CP002", transaction_id=first)  # it runs elsewhere
    with pytest.raises(UnknownConnectorError):
        central.find_for_stop("CP002", connector_id=2)
    with pytest.raises(UnknownChargePointError):
        central.find_for_stop("CP404")


def test_readings_take_units_phases_and_defaults_into_account() -> None:
    reading = read_meter_value([
        {"value": "12.5", "unit": "kWh"},  # measurand defaults to the energy register
        {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "400", "measurand": "Voltage", "phase": "L1-L2", "unit": "V"},  # line-to-line: skipped
        {"value": "231", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
        {"value": "229", "measurand": "Voltage", "phase": "L2-N", "unit": "V"},
        {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"value": "16", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
        {"value": "not a number", "measurand": "SoC"},
    ])
    assert reading.register_wh == 12500 and reading.power_w == 7400
    assert (reading.voltage_v, reading.current_a, reading.soc_percent) == (230, 32, None)


def test_status_error_codes_and_timestamps() -> None:
    central = CentralSystem(NETWORK)
    (event,) = central.on_status_notification("CP001", connector_id=1, status="Faulted", error_code="GroundFailure",
                                              now=NOW, timestamp="2025-01-29T14:00:00.5+02:00")
    assert event["data"]["error_code"] == "GroundFailure" and event["data"]["timestamp"] == "2025-01-29T12:00:00.500Z"
    (event,) = central.on_status_notification("CP001", connector_id=1, status="Available", error_code="NoError",
                                              now=NOW, timestamp="yesterday")
    assert event["data"]["error_code"] is None and event["data"]["timestamp"] == format_timestamp(NOW)
    assert parse_timestamp("2025-01-29T12:00:00") == NOW  # naive is UTC


samples = st.builds(
    lambda t, start_wh, energy_wh, power_kw, phases, voltage, soc: ev.MeterSample(
        t, 1, "CP001", 1, start_wh + energy_wh, energy_wh, power_kw, voltage,
        power_kw * 1000 / (max(phases, 1) * voltage), phases, soc),
    t=st.floats(0, 86400), start_wh=st.integers(0, 10**9), energy_wh=st.integers(0, 200_000),
    power_kw=st.floats(0.0, 350.0), phases=st.sampled_from([0, 1, 3]), voltage=st.floats(200.0, 920.0),
    soc=st.floats(0.0, 1.0),
)


@given(samples)
def test_what_a_charge_point_measures_reaches_the_backend_intact(validator: Validator, sample: ev.MeterSample) -> None:
    """Charge point encoding, then CMS decoding: a valid meter_value with the sample's numbers."""
    central = CentralSystem(NETWORK)
    transaction, _ = central.on_start_transaction("CP001", connector_id=1, id_tag="RFID123",
                                                  meter_start=sample.register_wh - sample.energy_wh,
                                                  timestamp="2025-01-29T12:00:00Z", now=NOW)
    meter_value: list[dict[str, Any]] = [{"timestamp": "2025-01-29T12:01:00Z", "sampled_value": sampled_values(sample)}]
    (event,) = central.on_meter_values("CP001", connector_id=1, transaction_id=transaction.id,
                                       meter_value=meter_value, now=NOW)
    assert validator.validate(event, channel=EVENTS, direction="request") == []
    data = event["data"]
    assert data["meter_value"] == sample.energy_wh
    assert abs(data["power"] - sample.power_kw) <= 0.001
    assert abs(data["voltage"] - sample.voltage) <= 0.05
    # P = V x I up to the rounding on the wire (0.1 V, 0.01 A per phase)
    assert abs(data["voltage"] * data["current"] - sample.power_kw * 1000) <= 0.005 * sample.power_kw * 1000 + 20
    assert abs(data["charge_percentage"] - sample.soc * 100) <= 1
