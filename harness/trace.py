"""The trace of a run: one NDJSON record per message seen on any hop.

A trace record is a ``chargetwin validate`` record (``channel``, ``direction``,
``message``, optional ``status``; ``docs/traffic-format.md``) with more keys:
the format version, the hop, simulated and wall time, and the correlation ids
known when the message was tapped. The format is ``docs/trace-format.md``.

Call order: make a :class:`TraceWriter` (a context manager), call
:meth:`TraceWriter.write` for every tapped message, close it; records are
buffered and all on disk once :meth:`TraceWriter.close` returns. Read a trace
back with :func:`read_trace`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import IO, Any, Final

from chargetwin.contracts.exceptions import RecordError
from chargetwin.contracts.records import Record, iter_lines, parse_record

from ._interning import Interner
from .exceptions import TraceError

__all__ = [
    "HOPS",
    "READS",
    "TRACE_FORMAT",
    "TRACE_MODES",
    "TWIN",
    "TraceRecord",
    "TraceWriter",
    "correlation_ids",
    "encode_message",
    "encode_record",
    "from_record",
    "parse_trace_line",
    "read_trace",
    "read_trace_lines",
    "read_written_line",
]

TRACE_FORMAT: Final = 2
"""Version of the trace format; every record carries it as ``trace_format``. Version 2 added the twin's
own records (hop ``twin``), pings and pongs, and ``seq``; a reader of version 2 reads version 1."""

READS: Final = (1, 2)
"""The versions :func:`read_trace` reads."""

TRACE_MODES: Final = ("full", "violations", "none")
"""What a run's trace keeps (``chargetwin run --trace``): every record, each violation's with its context, none."""

HOPS: Final = ("app-backend", "backend-cms", "cms-backend", "redis", "gateway-app", "ocpp")
"""Where a message was tapped:

``app-backend``   the app's REST calls to the backend and their responses (``backend:/api/...``);
``backend-cms``   the backend's REST calls to the CMS and their responses (``cms:/api/...``);
``cms-backend``   the CMS's events to the backend (``backend:/internal/cms/events``);
``redis``         every Redis pub/sub message (``redis:user:{id}:...``, ``publish``);
``gateway-app``   every WebSocket message a simulated app receives (``websocket``);
``ocpp``          OCPP-J frames between a charge point and the CMS (``ocpp:{chargePointId}``).

The twin's own records of what the model knows (:mod:`.truth`) have the hop
:data:`TWIN`; they are not messages of the protocol.
"""

TWIN: Final = "twin"
_HOP_SET: Final = frozenset((*HOPS, TWIN))
_INT_IDS: Final = ("user_id", "socket_id", "session_id", "transaction_id", "connector_id")
_STR_IDS: Final = ("charger_id", "request_id")


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One tapped message: where, when, which way, and the ids it belongs to.

    ``t_sim`` is simulated seconds since the run's start, ``t_wall`` wall
    seconds since the run's start. ``socket_id`` names the app socket that
    received a ``gateway-app`` message; ``user_id`` is the user of that socket
    (``gateway-app``) or of the app that made the call (``app-backend``).
    ``line`` is the record's 1-based number in its run: the line of a whole
    trace (a record read from a trace that keeps only some records, such as
    ``--trace violations``, has the number it had in the run, its ``seq``);
    0 for records made by hand. It is not written, but as ``seq`` where
    lines are left out.
    """

    hop: str
    channel: str
    direction: str
    message: Any
    t_sim: float
    t_wall: float
    status: int | None = None
    user_id: int | None = None
    socket_id: int | None = None
    session_id: int | None = None
    transaction_id: int | None = None
    charger_id: str | None = None
    connector_id: int | None = None
    request_id: str | None = None
    line: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of this record as written (absent ids are left out)."""
        data: dict[str, Any] = {"trace_format": TRACE_FORMAT, "hop": self.hop, "t_sim": self.t_sim,
                                "t_wall": self.t_wall, "channel": self.channel, "direction": self.direction}
        if self.status is not None:
            data["status"] = self.status
        for key in (*_INT_IDS, *_STR_IDS):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        data["message"] = self.message
        return data


def correlation_ids(message: Any) -> dict[str, Any]:
    """The ``session_id`` and ``transaction_id`` found at the top of a message or in its ``data``."""
    found: dict[str, Any] = {}
    if isinstance(message, dict):
        for source in (message.get("data"), message):
            if isinstance(source, dict):
                for key in ("session_id", "transaction_id"):
                    if isinstance(source.get(key), int) and not isinstance(source.get(key), bool):
                        found[key] = source[key]
    return found


def encode_record(record: TraceRecord, *, message_json: str | None = None, seq: bool = False) -> str:
    """One NDJSON line (with its newline); :class:`TraceError` for a hop or value JSON cannot hold.

    ``message_json``: the message already encoded by :func:`encode_message` (the copies of a
    fan-out are encoded once); the line is the same as without it. ``seq``: write the
    record's number in the run (its ``line``), for traces that leave records out.
    """
    if record.hop not in _HOP_SET:
        raise TraceError(f"unknown hop {record.hop!r}; use one of {', '.join(HOPS)}")
    head = record.to_dict()
    message = head.pop("message")
    if seq:
        head["seq"] = record.line
    try:
        text = _dumps(head)
        return f"{text[:-1]},\"message\":{message_json or encode_message(message)}}}\n"
    except (TypeError, ValueError) as error:
        raise TraceError(f"record on {record.channel!r} is not JSON: {error}") from None


def encode_message(message: Any) -> str:
    """A message as the trace writes it (compact JSON); TypeError or ValueError if it is not JSON."""
    return _dumps(message)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class TraceWriter:
    """Appends trace records to an NDJSON file, buffered.

    Records are written in the order :meth:`write` is called; that order is
    the trace's order of observation. Everything written is on disk once
    :meth:`close` (or the ``with`` block) returns; writing after close raises
    :class:`TraceError`.
    """

    def __init__(self, path: str | os.PathLike[str], *, buffer_bytes: int = 1 << 20) -> None:
        self.path = os.fspath(path)
        self._file: IO[str] | None = open(self.path, "a", encoding="utf-8", newline="\n",  # noqa: SIM115
                                          buffering=buffer_bytes)
        self.records_written = 0

    def write(self, record: TraceRecord, *, message_json: str | None = None, seq: bool = False) -> None:
        """Append one record (``message_json``, ``seq``: see :func:`encode_record`)."""
        if self._file is None:
            raise TraceError("the trace writer is closed; records written after close would be lost",
                             source=self.path)
        self._file.write(encode_record(record, message_json=message_json, seq=seq))
        self.records_written += 1

    def write_many(self, records: Iterable[TraceRecord]) -> None:
        for record in records:
            self.write(record)

    def flush(self) -> None:
        """Push buffered records to the operating system."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close; calling it again does nothing."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def parse_trace_line(raw: bytes | str, *, source: str = "-", line: int = 0) -> TraceRecord:
    """Parse one trace line, or raise :class:`TraceError` saying what is wrong with it.

    The common part is read by :func:`chargetwin.contracts.records.parse_record`,
    so a line this accepts is also a record ``chargetwin validate`` reads.
    """
    try:
        record = parse_record(raw, source=source, line=line)
    except RecordError as error:
        raise TraceError(error.problem, source=source, line=line) from None
    return from_record(record)


def from_record(record: Record) -> TraceRecord:
    """The trace record of a parsed traffic record; :class:`TraceError` when a trace key is missing or wrong."""
    extra = record.extra

    def fail(problem: str) -> TraceError:
        return TraceError(problem, source=record.source, line=record.line)

    if extra.get("trace_format") not in READS:
        raise fail(f"trace_format is {extra.get('trace_format')!r}; this reader reads versions "
                   f"{' and '.join(map(str, READS))}")
    hop = extra.get("hop")
    if hop not in _HOP_SET:
        raise fail(f"hop is {hop!r}; use one of {', '.join((*HOPS, TWIN))}")
    t_sim, t_wall = extra.get("t_sim"), extra.get("t_wall")
    if not _is_number(t_sim) or not _is_number(t_wall):
        raise fail(f"t_sim and t_wall must be numbers of seconds, not {t_sim!r} and {t_wall!r}")
    assert isinstance(t_sim, int | float) and isinstance(t_wall, int | float)
    ids: dict[str, Any] = {}
    for key in _INT_IDS:
        value = extra.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise fail(f"{key} must be an integer, not {value!r}")
        ids[key] = value
    for key in _STR_IDS:
        value = extra.get(key)
        if value is not None and not isinstance(value, str):
            raise fail(f"{key} must be a string, not {value!r}")
        ids[key] = value
    seq = extra.get("seq", record.line)
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise fail(f"seq must be a whole number of at least 0, not {seq!r}")
    return TraceRecord(hop=hop, channel=record.channel, direction=record.direction, message=record.message,
                       t_sim=float(t_sim), t_wall=float(t_wall), status=record.status, line=seq, **ids)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_trace(path: str | os.PathLike[str]) -> Iterator[TraceRecord]:
    """Every record of a trace file, in order; :class:`TraceError` at the first unreadable line.

    Equal messages (a fan-out's copies) are read into one shared object: do
    not mutate the messages of the records.
    """
    source = os.fspath(path)
    with open(source, "rb") as stream:
        yield from read_trace_lines(stream, source=source)


def read_trace_lines(stream: Iterable[bytes], *, source: str = "-") -> Iterator[TraceRecord]:
    """Every record of the trace lines of ``stream`` (a binary file, standard input), as :func:`read_trace`."""
    messages = Interner(strict=True)
    for line, raw in iter_lines(stream):
        yield read_written_line(raw, messages, source=source, line=line) or parse_trace_line(
            raw, source=source, line=line)


_MESSAGE_KEY: Final = b',"message":'


def read_written_line(raw: bytes, messages: Interner, *, source: str, line: int) -> TraceRecord | None:
    """A line as :class:`TraceWriter` writes it (the message last), its message shared; None for any other line.

    A ``"`` inside a JSON string is escaped, so the first ``,"message":`` of
    a line whose other values are scalars is the top-level key. Anything
    unexpected gives None, and the caller parses the line in full (with its
    error messages).
    """
    cut = raw.find(_MESSAGE_KEY)
    end = raw.rstrip()
    if cut < 0 or not end.endswith(b"}"):
        return None
    try:
        head = parse_record(raw[:cut] + b',"message":null}', source=source, line=line)
        message = messages.parse(end[cut + len(_MESSAGE_KEY):-1])
        return from_record(replace(head, message=message))
    except (RecordError, TraceError, ValueError, RecursionError):
        return None
