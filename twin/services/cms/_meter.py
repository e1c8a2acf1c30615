"""Reading one OCPP 1.6 MeterValue: its sampledValue list to energy, power, voltage, current, SoC.

OCPP 1.6 section 7.43 (SampledValue): ``value`` is a string, ``measurand``
defaults to Energy.Active.Import.Register and ``unit`` to Wh. A value with a
``phase`` is per phase: per-phase currents and powers add up, per-phase
voltages (L-N) average; an unphased value is the total (energy, power,
current) or the phase voltage. So power ~ voltage x current, as the seed's
example has it (SPEC-NOTES N-28).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Reading", "read_meter_value"]

_SCALE = {"Wh": 1.0, "kWh": 1000.0, "W": 1.0, "kW": 1000.0, "V": 1.0, "A": 1.0, "Percent": 1.0}


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample in base units: Wh, W, V, A, % (None where the charge point sent nothing)."""

    register_wh: float | None
    power_w: float | None
    voltage_v: float | None
    current_a: float | None
    soc_percent: float | None


def _value(sample: Mapping[str, Any]) -> float | None:
    try:
        number = float(sample["value"]) * _SCALE.get(sample.get("unit") or "Wh", 1.0)
    except (KeyError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _total(samples: Iterable[Mapping[str, Any]]) -> float | None:
    """The unphased value if there is one, else the sum over phases."""
    unphased, phased = None, []
    for sample in samples:
        value = _value(sample)
        if value is None:
            continue
        if sample.get("phase"):
            phased.append(value)
        else:
            unphased = value
    if unphased is not None:
        return unphased
    return sum(phased) if phased else None


def _voltage(samples: Iterable[Mapping[str, Any]]) -> float | None:
    """The phase (L-N) voltage: unphased, else the mean over L1-N.. (line-to-line values are skipped)."""
    unphased, phased = None, []
    for sample in samples:
        value, phase = _value(sample), sample.get("phase")
        if value is None:
            continue
        if not phase:
            unphased = value
        elif phase.endswith("-N") or phase in ("L1", "L2", "L3"):
            phased.append(value)
    if unphased is not None:
        return unphased
    return sum(phased) / len(phased) if phased else None


def read_meter_value(sampled_value: Iterable[Mapping[str, Any]]) -> Reading:
    """The :class:`Reading` of one MeterValue (snake_case keys, as the ``ocpp`` package hands them)."""
    by_measurand: dict[str, list[Mapping[str, Any]]] = {}
    for sample in sampled_value:
        by_measurand.setdefault(sample.get("measurand") or "Energy.Active.Import.Register", []).append(sample)
    soc = _total(by_measurand.get("SoC", ()))
    return Reading(
        register_wh=_total(by_measurand.get("Energy.Active.Import.Register", ())),
        power_w=_total(by_measurand.get("Power.Active.Import", ())),
        voltage_v=_voltage(by_measurand.get("Voltage", ())),
        current_a=_total(by_measurand.get("Current.Import", ())),
        soc_percent=soc,
    )
