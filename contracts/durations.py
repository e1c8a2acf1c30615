"""Human-readable durations as the seed writes them (section 3.2).

The seed shows ``"20 min"`` for 1,200 s and ``"2hr 15min"`` for 8,100 s:
minutes alone (with a space) under an hour, hours and minutes (without a
space before ``min``) from an hour on (SPEC-NOTES N-09).
"""

from __future__ import annotations

import re

__all__ = ["display_minutes", "format_duration"]

_DISPLAY = re.compile(r"(?:([1-9][0-9]*)hr ([0-9]|[1-5][0-9])min|([0-9]|[1-5][0-9]) min)")


def format_duration(seconds: int) -> str:
    """The display string of ``seconds``, whole minutes rounded down."""
    hours, minutes = divmod(int(seconds) // 60, 60)
    return f"{hours}hr {minutes}min" if hours else f"{minutes} min"


def display_minutes(text: str) -> int | None:
    """Total minutes shown by a display string, or None if it is not one."""
    match = _DISPLAY.fullmatch(text)
    if match is None:
        return None
    hours, minutes, short = match.groups()
    if short is not None:
        return int(short)
    return int(hours) * 60 + int(minutes)
