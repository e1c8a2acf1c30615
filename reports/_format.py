"""Numbers, durations and times as the report shows them.

Every function takes what results.json may hold (a number, ``null``, or
something unexpected) and returns text; nothing here raises on odd input:
an odd value is shown as it is, a missing one as an em dash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = ["MISSING", "clock", "duration", "is_number", "mapping", "number", "percent", "truncate"]

MISSING: Final = "—"


def is_number(value: Any) -> bool:
    """A JSON number that is finite (``true`` and ``false`` are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one: for optional parts of results.json."""
    return value if isinstance(value, Mapping) else {}


def number(value: Any, digits: int = 2) -> str:
    """``12,345`` for whole numbers, at most ``digits`` decimals otherwise; ``—`` for null."""
    if value is None:
        return MISSING
    if not is_number(value):
        return truncate(value if isinstance(value, str) else json.dumps(value, default=str), 60)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def percent(value: Any, digits: int = 1) -> str:
    """A share (0.25) as ``25 %``."""
    return f"{number(value * 100, digits)} %" if is_number(value) else MISSING


def duration(seconds: Any) -> str:
    """``2 h 05 min``, ``15 min``, ``42 s``, ``1.3 s``."""
    if not is_number(seconds):
        return MISSING
    if seconds < 60:
        return f"{number(seconds, 1)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def clock(start: Any, t_sim: Any) -> str:
    """The wall-clock time of the simulation at ``t_sim`` (``18:05``), or ``+12 min`` when the start is unknown."""
    if not is_number(t_sim):
        return MISSING
    try:
        begin = datetime.fromisoformat(start) if isinstance(start, str) else None
    except ValueError:
        begin = None
    if begin is None:
        return f"+{duration(t_sim)}"
    when = begin + timedelta(seconds=float(t_sim))
    days = (when.date() - begin.date()).days
    return when.strftime("%H:%M") + (f" (+{days} d)" if days else "")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
