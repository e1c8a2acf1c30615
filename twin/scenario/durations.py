"""Durations as scenario files write them: ``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"`` or seconds.

A duration string is one or more ``<number><unit>`` parts, units ``d``, ``h``,
``m`` (minutes) and ``s``, each at most once and largest first; numbers may
have a decimal part (``"1.5h"``). A plain number is seconds. Parsing is exact
(decimal arithmetic), so ``format_duration`` and ``parse_duration`` round-trip.

>>> parse_duration("1h30m")
5400.0
>>> format_duration(5400)
'1h30m'
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

__all__ = ["DURATION_PATTERN", "UNITS", "format_duration", "parse_duration"]

UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
"""Seconds per unit, largest first."""

_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
DURATION_PATTERN = "^" + "".join(f"(?:{_NUMBER}{unit})?" for unit in UNITS) + "$"
"""Regular expression of a duration string (also the JSON Schema's ``pattern``; it matches ``""`` too)."""

_PART = re.compile(f"({_NUMBER})([dhms])")
_WHOLE = re.compile(DURATION_PATTERN)


def parse_duration(value: str | float) -> float:
    """Seconds of a duration string or a number of seconds.

    Raises :class:`ValueError` (with a message fit for a user) for anything
    else: a negative or non-finite number, a bool, an empty string, a string
    without units or with units out of order.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a duration, got {type(value).__name__}")
    if not isinstance(value, str):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a duration in seconds must be a finite number >= 0, got {value}")
        return float(value)
    if not value or not _WHOLE.fullmatch(value):
        raise ValueError(f"{json.dumps(value)} is not a duration: write it like \"90s\", \"15m\", \"1h30m\" or \"2d\" "
                         "(units d, h, m, s, largest first) or as a number of seconds")
    return float(sum(Fraction(number) * UNITS[unit] for number, unit in _PART.findall(value)))


def format_duration(seconds: float) -> str | float:
    """The shortest duration string for a whole number of seconds; other values as they are.

    >>> format_duration(90), format_duration(0), format_duration(2.5)
    ('1m30s', '0s', 2.5)
    """
    if not math.isfinite(seconds) or seconds < 0 or seconds != int(seconds):
        return seconds
    rest, parts = int(seconds), []
    for unit, size in UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
