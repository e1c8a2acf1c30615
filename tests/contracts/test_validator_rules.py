"""The one table of the validator's routing checks (words and spec section) and the words of schema keywords."""

from __future__ import annotations

import ast
import inspect
import json

import pytest
from conftest import EXAMPLES, read_ndjson

from chargetwin.contracts import (
    ROUTING_RULES,
    RULES,
    SCHEMA_KEYWORDS,
    UnknownChannelError,
    Validator,
    Violation,
    parse_record,
)
from chargetwin.contracts import validator as validator_module

COUNTER = read_ndjson(EXAMPLES / "counter.ndjson")


def _routing_rules_in_source() -> set[str]:
    """Every rule name the validator's source passes to ``_routing`` (its only way to make a routing violation)."""
    tree = ast.parse(inspect.getsource(validator_module))
    return {call.args[0].value for call in ast.walk(tree)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "_routing"
            and call.args and isinstance(call.args[0], ast.Constant)}


def _counter_violations(validator: Validator) -> list[Violation]:
    found: list[Violation] = []
    for record in COUNTER:
        parsed = parse_record(json.dumps(record), source="counter", line=0)
        found.extend(validator.validate(parsed.message, channel=parsed.channel, direction=parsed.direction,
                                        status=parsed.status))
    return found


def test_every_routing_check_the_validator_returns_has_words_and_a_spec_section() -> None:
    emitted = _routing_rules_in_source()
    assert len(emitted) >= 8, "the source scan found the validator's routing checks"
    for name in emitted:
        assert ROUTING_RULES[name].summary and ROUTING_RULES[name].spec, name
    assert {name for name, rule in ROUTING_RULES.items() if rule.spec} == emitted, "no stale entries in the table"


def test_routing_violations_cite_the_spec_section_of_the_table(validator: Validator) -> None:
    routing = [v for v in _counter_violations(validator) if not v.rule.startswith("schema.") and v.rule not in RULES]
    assert {v.rule for v in routing} == _routing_rules_in_source(), "the counter-examples reach every routing check"
    for v in routing:
        assert v.spec == ROUTING_RULES[v.rule].spec


def test_every_schema_violation_of_the_counter_examples_has_words(validator: Validator) -> None:
    keywords = {v.rule.removeprefix("schema.") for v in _counter_violations(validator) if v.rule.startswith("schema.")}
    assert keywords and keywords <= set(SCHEMA_KEYWORDS)


def test_an_unknown_channel_is_raised_and_its_rule_has_words_but_no_section(validator: Validator) -> None:
    with pytest.raises(UnknownChannelError):
        validator.validate({}, channel="mqtt", direction="receive")
    assert ROUTING_RULES["unknown_channel"].summary and ROUTING_RULES["unknown_channel"].spec is None


@pytest.mark.parametrize("words", [*(r.summary for r in ROUTING_RULES.values()), *SCHEMA_KEYWORDS.values()])
def test_words_are_one_line_sentences(words: str) -> None:
    assert "\n" not in words and words[0].isupper() and words.endswith(".")


def test_the_table_is_keyed_by_each_rule_name_and_names_no_semantic_rule() -> None:
    assert all(name == rule.name for name, rule in ROUTING_RULES.items())
    assert not set(ROUTING_RULES) & set(RULES)
