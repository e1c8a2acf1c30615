"""``schema_and_rules``: every message against the contracts (schema, semantic rules, routing).

``chargetwin validate``'s verdict on each record: a record on a channel or
direction no contract covers is a violation with rule ``unknown_channel``.
Records sharing one message object (a fan-out's copies, see
:func:`~chargetwin.harness.trace.read_trace`) on the same kind of route are
validated once. The twin's own records (hop ``twin``: the model's ground
truth) and heartbeat pings and pongs (control frames) are not messages of
the protocol: they are neither judged nor counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chargetwin.contracts import UnknownChannelError, Validator, Violation, default_validator
from chargetwin.contracts.catalog import HEARTBEAT_DIRECTIONS

from .._access import route_key
from .._interning import ByIdentity
from ..trace import TraceRecord
from ._base import Check, InvariantViolation

__all__ = ["SchemaAndRules"]


class SchemaAndRules(Check):
    name = "schema_and_rules"

    def __init__(self, *, validator: Validator | None = None) -> None:
        super().__init__()
        validator = validator or default_validator()
        self._verdicts = ByIdentity(lambda message, key: _validate(validator, message, *key))

    def observe(self, record: TraceRecord) -> Iterable[InvariantViolation]:
        if record.hop == "twin" or record.direction in HEARTBEAT_DIRECTIONS:
            return ()
        self.checked += 1
        found = self._verdicts.get(record.message, (route_key(record.channel), record.channel, record.direction,
                                                    record.status))
        if not found:
            return ()
        if isinstance(found, UnknownChannelError):
            return (InvariantViolation(self.name, str(found), record.hop, (record,), rule="unknown_channel",
                                       pointer=""),)
        return [InvariantViolation(self.name, f"{v.rule} at {v.pointer or '(whole message)'}: {v.message}",
                                   record.hop, (record,), v.expected, v.actual, rule=v.rule, pointer=v.pointer,
                                   spec=v.spec) for v in found]


def _validate(validator: Validator, message: Any, _route: str, channel: str, direction: str,
              status: int | None) -> list[Violation] | UnknownChannelError:
    try:
        return validator.validate(message, channel=channel, direction=direction, status=status)
    except UnknownChannelError as error:
        return error
