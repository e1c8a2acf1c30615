"""Captured traffic as NDJSON records, the input of ``chargetwin validate``.

One JSON object per line (format in ``docs/traffic-format.md``)::

    {"channel": "websocket", "direction": "receive", "message": {...}}
    {"channel": "backend:/api/charging/start", "direction": "response", "status": 200, "message": {...}}
    {"channel": "redis:user:123:session_updates", "direction": "publish", "message": {...}}

Other keys (timestamps, hop names, correlation ids) are allowed and kept.
Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .exceptions import RecordError, UnknownChannelError
from .validator import Validator
from .violations import Violation

__all__ = ["Record", "check_record", "iter_lines", "parse_record"]


@dataclass(frozen=True, slots=True)
class Record:
    """One captured message and where it was seen."""

    channel: str
    direction: str
    message: Any
    status: int | None = None
    source: str = "-"
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def iter_lines(stream: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines of a binary stream with their 1-based numbers."""
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield number, raw


def parse_record(raw: bytes | str, *, source: str = "-", line: int = 0) -> Record:
    """Parse one NDJSON line, or raise :class:`RecordError` saying what is wrong with it."""
    def fail(problem: str) -> RecordError:
        return RecordError(problem, source=source, line=line)

    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise fail(f"not UTF-8 text (byte {error.start}); records must be UTF-8 JSON") from None
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except ValueError as error:
        raise fail(f"not valid JSON: {error}") from None
    except RecursionError:
        raise fail("nested too deeply to check (more than about 1,000 levels)") from None
    if not isinstance(data, dict):
        raise fail(f"a record must be a JSON object, not {type(data).__name__}; "
                   'write {"channel": ..., "direction": ..., "message": {...}}')
    missing = [key for key in ("channel", "direction", "message") if key not in data]
    if missing:
        raise fail(f"the record has no {', '.join(repr(k) for k in missing)}; every record needs "
                   "'channel', 'direction' and 'message'")
    channel, direction, status = data.pop("channel"), data.pop("direction"), data.pop("status", None)
    if not isinstance(channel, str) or not isinstance(direction, str):
        raise fail("'channel' and 'direction' must be strings")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)
                               or not 100 <= status <= 599):
        raise fail(f"'status' must be an HTTP status code (100-599), not {status!r}")
    return Record(channel, direction, data.pop("message"), status, source, line, data)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def check_record(validator: Validator, record: Record) -> list[Violation]:
    """Violations of one record; :class:`RecordError` if its channel or direction is unknown."""
    try:
        return validator.validate(record.message, channel=record.channel,
                                  direction=record.direction, status=record.status)
    except UnknownChannelError as error:
        raise RecordError(str(error), source=record.source, line=record.line) from None
