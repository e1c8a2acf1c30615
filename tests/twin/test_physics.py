"""Charging physics: exact, bounded, consistent both ways."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chargetwin.twin.model.physics import ChargeCurve, ac_current, dc_current, dc_voltage

curves = st.builds(
    ChargeCurve,
    capacity_kwh=st.floats(20, 120),
    limit_kw=st.floats(3.7, 350),
    ev_max_kw=st.floats(6.6, 250),
    transition_soc=st.floats(0.5, 0.9),
)
socs = st.floats(0.0, 0.99)
seconds = st.floats(0, 48 * 3600)


@given(curves, socs, seconds)
def test_soc_never_exceeds_full_nor_falls(curve: ChargeCurve, soc: float, t: float) -> None:
    after = curve.soc_after(soc, t)
    assert soc <= after or soc > curve.full_soc
    assert after <= max(soc, curve.full_soc) < 1.0


@given(curves, socs, seconds, seconds)
def test_charging_in_two_steps_equals_one(curve: ChargeCurve, soc: float, a: float, b: float) -> None:
    assert curve.soc_after(curve.soc_after(soc, a), b) == pytest.approx(curve.soc_after(soc, a + b), abs=1e-9)


@given(curves, socs, seconds)
def test_seconds_to_inverts_soc_after(curve: ChargeCurve, soc: float, t: float) -> None:
    assume(soc < curve.full_soc)
    after = curve.soc_after(soc, t)
    assume(after < curve.full_soc - 1e-6)
    assert curve.seconds_to(soc, after) == pytest.approx(t, rel=1e-6, abs=1e-3)


@given(curves, socs, st.floats(1, 3600))
def test_energy_is_the_integral_of_power(curve: ChargeCurve, soc: float, dt: float) -> None:
    """SoC gain x capacity equals the time integral of the power (midpoint rule, steps of at most 1 s)."""
    energy = (curve.soc_after(soc, dt) - soc) * curve.capacity_kwh
    steps = math.ceil(dt)
    h = dt / steps
    integral = sum(curve.power_at(curve.soc_after(soc, (i + 0.5) * h)) for i in range(steps)) * h / 3600
    assert energy == pytest.approx(integral, rel=0.005, abs=1e-3)


@given(curves, socs)
def test_power_is_the_smallest_limit(curve: ChargeCurve, soc: float) -> None:
    power = curve.power_at(soc)
    assert 0 <= power <= min(curve.limit_kw, curve.ev_max_kw)
    if soc <= curve.transition_soc:
        assert power == min(curve.limit_kw, curve.ev_max_kw) or soc >= curve.full_soc


def test_two_stage_curve_by_hand() -> None:
    curve = ChargeCurve(capacity_kwh=60, limit_kw=50, ev_max_kw=100, transition_soc=0.8)
    assert curve.knee_soc == pytest.approx(0.9)  # 100 kW x (1 - soc)/0.2 meets 50 kW at 90 %
    assert curve.power_at(0.5) == 50
    assert curve.power_at(0.95) == pytest.approx(25)
    assert curve.seconds_to(0.2, 0.5) == pytest.approx(0.3 * 60 / 50 * 3600)
    assert math.isinf(curve.seconds_to(0.2, 1.0))
    assert curve.full_soc == pytest.approx(1 - 0.5 / 100 * 0.2)


def test_voltage_and_current_are_consistent_with_power() -> None:
    assert ac_current(22.0, 3) * 3 * 230 == pytest.approx(22_000)
    assert ac_current(7.4, 1) == pytest.approx(32.17, abs=0.01)
    volts = dc_voltage(0.5, 350, 450)
    assert volts == 400
    assert dc_current(100.0, volts) * volts == pytest.approx(100_000)
