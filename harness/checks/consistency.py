"""``consistent_across_hops``: a session agrees on every hop, and each WebSocket copy equals its Redis message.

Ids: per session id (the record's ``session_id``, else the message's, else
its ``data``'s), the first non-null ``transaction_id``, ``charger_id`` and
``connector_id`` seen on any hop (REST responses, Redis, WebSocket) is the
reference; a different non-null value anywhere is a violation, reported as
it arrives (a start response's ``transaction_id: null`` is allowed: the CMS
numbers the transaction later). A session's reference is forgotten once it
has been quiet for the retention window.

Content: a ``session_update`` a socket of user U received must equal (whole
message: energy, cost, status fields) the one published on
``redis:user:U:session_updates`` with the same session, event and
``timestamp``. Copy and publish may be tapped in either order; a copy is
compared once a publish with its key is known and ``grace_s`` (simulated)
and ``settle_wall_s`` (wall) have passed since both, so that every publish
of that key takes part. Copies with no such publish are not compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from .._access import data_of, is_session_update, message_dict, redis_user, session_of
from ..trace import TraceRecord
from ._base import Agenda, Check, InvariantViolation, Settlement, violation
from ._recent import Recent

__all__ = ["ConsistentAcrossHops", "differing", "value_at"]

_AGREED_IDS: Final = ("transaction_id", "charger_id", "connector_id")
_ContentKey = tuple[int | None, int, Any, Any]


@dataclass(slots=True)
class _Content:
    """The publishes of one content key, and the copies waiting to be compared with them."""

    published: list[TraceRecord] = field(default_factory=list)
    copies: list[TraceRecord] = field(default_factory=list)


class ConsistentAcrossHops(Check):
    name = "consistent_across_hops"

    def __init__(self, *, grace_s: float = 5.0, settle_wall_s: float = 2.0, retention_s: float = 900.0,
                 retention_wall_s: float = 30.0) -> None:
        super().__init__()
        self._grace, self._settle_wall = grace_s, settle_wall_s
        self._reference: Recent[int, dict[str, tuple[Any, TraceRecord]]] = Recent(retention_s, retention_wall_s)
        self._content: Recent[_ContentKey, _Content] = Recent(retention_s, retention_wall_s)
        self._compare: Agenda[_ContentKey] = Agenda()

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        session = session_of(record) if record.hop in ("app-backend", "redis", "gateway-app") else None
        if session is None:
            return ()
        self.checked += 1
        found = list(self._ids(record, session))
        if is_session_update(record):
            self._note_content(record, session)
        return found

    def _ids(self, record: TraceRecord, session: int) -> Iterator[InvariantViolation]:
        reference = self._reference.get(session)
        if reference is None:
            reference = {}
        self._reference.touch(session, reference, record.t_sim, record.t_wall)
        for key, value in _session_ids(record).items():
            if value is None:
                continue
            first = reference.setdefault(key, (value, record))
            if first[0] != value:
                yield violation(self.name, f"session {session}: {key} is {value!r} on {record.hop} but was "
                                f"{first[0]!r} on {first[1].hop}", record, first[1], expected=first[0], actual=value)

    def _note_content(self, record: TraceRecord, session: int) -> None:
        message = record.message
        user = redis_user(record.channel) if record.hop == "redis" else record.user_id
        key = (user, session, message.get("event"), message.get("timestamp"))
        content = self._content.get(key) or _Content()
        self._content.touch(key, content, record.t_sim, record.t_wall)
        (content.published if record.hop == "redis" else content.copies).append(record)
        if content.published and content.copies:
            self._compare.add(record.t_sim + self._grace, key, t_wall=record.t_wall + self._settle_wall)

    def _compared(self, key: _ContentKey) -> Iterator[InvariantViolation]:
        content = self._content.get(key)
        if content is None or not content.published:
            return
        copies, content.copies = content.copies, []
        for copy in copies:
            if all(original.message != copy.message for original in content.published):
                original = content.published[0]
                fields = differing(original.message, copy.message)
                yield violation(self.name, f"session {key[1]}: the {key[2]} the app received differs from the one "
                                f"published on Redis at {', '.join(fields)}", copy, original,
                                expected={f: value_at(original.message, f) for f in fields},
                                actual={f: value_at(copy.message, f) for f in fields})

    def advance(self, t_sim: float, t_wall: float) -> Iterable[InvariantViolation]:
        found = [v for key in list(self._compare.due(t_sim, t_wall)) for v in self._compared(key)]
        self._reference.forget(t_sim, t_wall)
        self._content.forget(t_sim, t_wall)
        return found

    def settle(self, end: Settlement) -> Iterable[InvariantViolation]:
        return [v for key in list(self._compare.drain()) for v in self._compared(key)]

    def state_size(self) -> int:
        return len(self._reference) + len(self._content) + len(self._compare)


def _session_ids(record: TraceRecord) -> Mapping[str, Any]:
    """The ids a record states about its session: top level first, then ``data``."""
    message = message_dict(record)
    data = data_of(message)
    return {key: message[key] if message.get(key) is not None else data.get(key) for key in _AGREED_IDS}


def differing(a: Any, b: Any, prefix: str = "") -> list[str]:
    """JSON pointers where two messages differ (at most a handful)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out.extend(differing(a.get(key), b.get(key), f"{prefix}/{key}"))
        return out[:8]
    return [] if a == b else [prefix or "/"]


def value_at(message: Any, pointer: str) -> Any:
    for part in pointer.strip("/").split("/"):
        message = message.get(part) if isinstance(message, dict) and part else message
    return message
