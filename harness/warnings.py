"""Warnings: what a ruling allows but the seed's examples do not show (DESIGN ruling 9).

Apps are written from the seed's examples, so a message that differs from
them may break one even when the contracts allow it. :class:`SeedWarnings`
(a consumer of the pipeline) flags:

- ``transaction_id_null``: ``transaction_id: null`` where the seed shows a
  number (the start response, ``response``, ``active_session_update``;
  allowed by SPEC-NOTES N-15);
- ``status_not_in_seed``: a connector status the seed never shows
  (``Preparing``, ``SuspendedEV``, ``Finishing``, ...; allowed by N-06);
- ``push_on_connect_not_in_seed``: a ``charger_list_update`` or
  ``active_session_update`` pushed on connect, which the seed does not ask
  for (ruling 5 does).

:data:`RULING_ONLY_RULES` names the violations of the checks that only a
ruling asks for (a socket told nothing of its session on connect):
``chargetwin check`` counts them as warnings too. ``--strict`` turns every
warning into a violation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from .pipeline import Consumer, Found
from .trace import TraceRecord

__all__ = ["RULING_ONLY_RULES", "SEED_STATUSES", "SeedWarning", "SeedWarnings"]

SEED_STATUSES: Final = frozenset({"Available", "Charging", "Unavailable", "Occupied"})
"""The connector statuses the seed's examples show (SPEC-NOTES N-06)."""

_CONNECTOR_STATUSES: Final = frozenset({"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE",
                                        "Finishing", "Reserved", "Unavailable", "Faulted", "Occupied"})

RULING_ONLY_RULES: Final = frozenset({"active_session_update_missing"})
"""Rules of the checks whose violation breaks a ruling that the seed does not make."""

KEPT: Final = 20
"""Warnings kept in full per rule; the counts cover all."""

_STATUS_KEYS: Final = ("status", "previous_status", "new_status", "connector_status")
_TRANSACTION_MESSAGES: Final = ("response", "active_session_update")


@dataclass(frozen=True, slots=True)
class SeedWarning:
    """One warning: its rule, what differs in words, the spec's ruling, and the record's line."""

    rule: str
    message: str
    spec: str
    line: int
    channel: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "spec": self.spec, "line": self.line,
                "channel": self.channel}


class SeedWarnings(Consumer):
    """Flags what differs from the seed's examples; per socket it remembers only whether the welcome is over."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.kept: dict[str, list[SeedWarning]] = {}
        self._welcome: dict[int, int] = {}  # socket id -> messages seen since connected, during the welcome

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def add(self, rule: str, message: str, spec: str, record: TraceRecord | None = None) -> None:
        self.counts[rule] += 1
        kept = self.kept.setdefault(rule, [])
        if len(kept) < KEPT:
            kept.append(SeedWarning(rule, message, spec, record.line if record else 0,
                                    record.channel if record else ""))

    def on_record(self, record: TraceRecord) -> Found:
        message = record.message
        if not isinstance(message, dict):
            return None
        if record.channel == "websocket" and record.direction == "close" and record.socket_id is not None:
            self._welcome.pop(record.socket_id, None)
        if record.direction not in ("response", "receive", "publish"):
            return None
        kind = message.get("type")
        data = message.get("data")
        if (record.channel == "backend:/api/charging/start" or kind in _TRANSACTION_MESSAGES) \
                and isinstance(data, dict) and "transaction_id" in data and data["transaction_id"] is None:
            self.add("transaction_id_null", f"{kind or record.channel}: transaction_id is null; the seed shows a "
                     "number", "N-15", record)
        for status in sorted(_statuses(message) - SEED_STATUSES):
            self.add("status_not_in_seed", f"{kind or record.channel}: connector status {status}, which the seed "
                     "never shows", "N-06", record)
        if record.channel == "websocket" and record.socket_id is not None:
            self._on_connect(record, kind)
        return None

    def _on_connect(self, record: TraceRecord, kind: Any) -> None:
        assert record.socket_id is not None
        if kind == "connected":
            self._welcome[record.socket_id] = 0
            return
        seen = self._welcome.get(record.socket_id)
        if seen is None:
            return
        if kind in ("charger_list_update", "active_session_update") and seen < 2:
            self._welcome[record.socket_id] = seen + 1
            self.add("push_on_connect_not_in_seed", f"{kind} pushed on connect; the seed asks only for connected",
                     "DESIGN ruling 5", record)
        else:
            del self._welcome[record.socket_id]

    def results(self) -> dict[str, Any]:
        """results.json's ``warnings``: how many in all and per rule, and the first of each rule."""
        return {"count": self.count, "rules": dict(self.counts),
                "examples": [w.to_dict() for kept in self.kept.values() for w in kept]}


def _statuses(message: dict[str, Any]) -> set[str]:
    """The connector statuses a message states anywhere (``status`` fields and ``connector_status`` lists)."""
    found: set[str] = set()
    stack: list[Any] = [message]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in _STATUS_KEYS and isinstance(value, str) and value in _CONNECTOR_STATUSES:
                    found.add(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return found
