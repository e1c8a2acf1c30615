"""Charging physics, integrated exactly between events (no time stepping).

The power a car draws is ``min(limit, taper(soc))`` where ``limit`` is the
smallest of the charging point's power, the car's power for that kind (AC
or DC) and any cap, and ``taper`` is the car's two-stage curve: its full
power up to ``transition_soc``, then falling linearly to zero at 100 % SoC.

Above the knee (where the taper meets the limit) ``d soc/dt`` is
proportional to ``1 - soc``, so SoC approaches 100 % exponentially and the
integral has a closed form both ways (SoC after a time, time to a SoC). The
car stops drawing current once its power would fall below ``cutoff_kw``,
so a full charge ends in finite time, below 100 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["AC_PHASE_VOLTAGE", "ChargeCurve", "ac_current", "dc_current", "dc_voltage"]

AC_PHASE_VOLTAGE = 230.0
"""Volts per phase of AC charging points (the seed's example shows 230 V)."""


@dataclass(frozen=True, slots=True)
class ChargeCurve:
    """How one car charges at one charging point.

    All SoC values are fractions (0..1), times in seconds, power in kW,
    energy in kWh. Instances are immutable; a changed cap makes a new one.
    ``limit_kw`` (the charging point's power, or a cap) is clipped to the
    car's ``ev_max_kw``.

    ``knee_soc`` is the SoC above which the car's taper, not ``limit_kw``,
    sets the power; ``full_soc`` the SoC at which the car stops drawing
    current (its power reaches ``cutoff_kw``). Both are derived on creation,
    as is ``rate``, the ``k`` of ``d(1 - soc)/dt = -k (1 - soc)`` above the
    knee, per second.
    """

    capacity_kwh: float
    limit_kw: float
    ev_max_kw: float
    transition_soc: float = 0.8
    cutoff_kw: float = 0.5
    knee_soc: float = field(init=False)
    full_soc: float = field(init=False)
    rate: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limit_kw", min(self.limit_kw, self.ev_max_kw))  # the car never takes more
        slope = (1.0 - self.transition_soc) / self.ev_max_kw
        knee = self.transition_soc if self.limit_kw >= self.ev_max_kw else 1.0 - self.limit_kw * slope
        object.__setattr__(self, "knee_soc", knee)
        object.__setattr__(self, "full_soc", 1.0 - min(self.cutoff_kw, self.limit_kw) * slope)
        object.__setattr__(self, "rate", self.ev_max_kw / (self.capacity_kwh * (1.0 - self.transition_soc)) / 3600.0)

    def power_at(self, soc: float) -> float:
        """kW drawn at ``soc`` (0 once the car is full)."""
        if soc >= self.full_soc:
            return 0.0
        if soc <= self.knee_soc:
            return self.limit_kw
        return self.ev_max_kw * (1.0 - soc) / (1.0 - self.transition_soc)

    def soc_after(self, soc: float, seconds: float) -> float:
        """SoC after charging for ``seconds`` from ``soc``; never above :attr:`full_soc`."""
        full = self.full_soc
        if soc >= full or seconds <= 0:
            return soc
        knee = self.knee_soc
        if soc < knee:
            to_knee = (knee - soc) * self.capacity_kwh * 3600.0 / self.limit_kw
            if seconds <= to_knee:
                return min(soc + self.limit_kw * seconds / (self.capacity_kwh * 3600.0), full)
            soc, seconds = knee, seconds - to_knee
        return min(1.0 - (1.0 - soc) * math.exp(-self.rate * seconds), full)

    def seconds_to(self, soc: float, target: float) -> float:
        """Seconds of charging from ``soc`` to ``target``; ``inf`` if the car stops first."""
        if target <= soc:
            return 0.0
        if target > self.full_soc:
            return math.inf
        knee = self.knee_soc
        seconds = 0.0
        if soc < knee:
            upto = min(target, knee)
            seconds = (upto - soc) * self.capacity_kwh * 3600.0 / self.limit_kw
            soc = upto
        if target > soc:
            seconds += math.log((1.0 - soc) / (1.0 - target)) / self.rate
        return seconds


def ac_current(power_kw: float, phases: int, voltage: float = AC_PHASE_VOLTAGE) -> float:
    """Amps per phase drawn by ``power_kw`` over ``phases`` phases."""
    return power_kw * 1000.0 / (phases * voltage)


def dc_voltage(soc: float, v_min: float, v_max: float) -> float:
    """Battery voltage at ``soc``: linear between the pack's minimum and maximum."""
    return v_min + (v_max - v_min) * soc


def dc_current(power_kw: float, voltage: float) -> float:
    """Amps of DC charging at ``power_kw`` and ``voltage``."""
    return power_kw * 1000.0 / voltage
