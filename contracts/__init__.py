"""The machine-readable contracts of the EV-charging protocol, and their validator.

``chargetwin.contracts`` depends on nothing else of chargetwin. It holds the
JSON Schemas (``schemas/``), the OpenAPI and AsyncAPI documents that
reference them, the close codes, the seed's examples and counter-examples,
and :class:`Validator`, the one entry point every other component uses::

    from chargetwin.contracts import default_validator
    violations = default_validator().validate(message, channel="websocket", direction="receive")
"""

from __future__ import annotations

from .exceptions import ContractLoadError, ContractsError, RecordError, UnknownChannelError
from .records import Record, check_record, iter_lines, parse_record
from .rules import RULES, Rule
from .validator import Validator, default_validator, json_pointer
from .validator_rules import ROUTING_RULES, SCHEMA_KEYWORDS, RoutingRule
from .violations import Violation

__all__ = [
    "ROUTING_RULES",
    "RULES",
    "SCHEMA_KEYWORDS",
    "ContractLoadError",
    "ContractsError",
    "Record",
    "RecordError",
    "RoutingRule",
    "Rule",
    "UnknownChannelError",
    "Validator",
    "Violation",
    "check_record",
    "default_validator",
    "iter_lines",
    "json_pointer",
    "parse_record",
]
