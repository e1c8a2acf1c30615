"""Every schema, semantic rule and routing check has a counter-example that must fail.

Each record of ``contracts/examples/counter.ndjson`` states the violations it
must produce (rule and JSON pointer, and for schema and semantic rules the
schema) and, in words, why. A counter-example that fails for another reason,
or for more reasons than stated, fails its test.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from conftest import EXAMPLES, read_ndjson
from referencing import Registry, Resource

from chargetwin.contracts import ROUTING_RULES, RULES, Validator, parse_record
from chargetwin.contracts.schemas import schema_documents

COUNTER = read_ndjson(EXAMPLES / "counter.ndjson")


def _violations(validator: Validator, record: dict[str, Any]) -> list[Any]:
    parsed = parse_record(json.dumps(record), source="counter", line=0)
    return validator.validate(parsed.message, channel=parsed.channel, direction=parsed.direction,
                              status=parsed.status)


@pytest.mark.parametrize("record", COUNTER, ids=[f"{i + 1}-{r['expect'][0]['rule']}" for i, r in enumerate(COUNTER)])
def test_counter_example_fails_for_its_stated_reason(validator: Validator, record: dict[str, Any]) -> None:
    assert record["reason"].strip(), "every counter-example says why it must fail"
    found = _violations(validator, record)
    assert sorted((v.rule, v.pointer) for v in found) == sorted((e["rule"], e["pointer"]) for e in record["expect"])
    for expected in record["expect"]:
        if "schema" in expected:
            assert any(v.schema == expected["schema"] for v in found if v.rule == expected["rule"])
    assert all(v.spec for v in found), "every violation names the spec section its rule comes from"


def test_every_schema_has_a_counter_example() -> None:
    covered = {e["schema"] for r in COUNTER for e in r["expect"] if "schema" in e}
    assert set(schema_documents()) - {"defs"} - covered == set()


def test_every_semantic_rule_and_routing_check_has_a_counter_example() -> None:
    covered = {e["rule"] for r in COUNTER for e in r["expect"]}
    routing = {name for name, rule in ROUTING_RULES.items() if rule.spec}  # unknown_channel is raised, not returned
    assert (set(RULES) | routing) - covered == set()


def _reference_validator(name: str) -> jsonschema.Draft202012Validator:
    documents = schema_documents()
    registry: Registry[Any] = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents.values())
    return jsonschema.Draft202012Validator(documents[name], registry=registry)


@pytest.mark.parametrize("record", [r for r in COUNTER if r["expect"][0]["rule"].startswith("schema.")],
                         ids=lambda r: r["expect"][0]["schema"])
def test_the_reference_implementation_agrees_on_schema_counter_examples(record: dict[str, Any]) -> None:
    """A second, independent JSON Schema implementation rejects each schema counter-example too."""
    reference = _reference_validator(record["expect"][0]["schema"])
    assert not reference.is_valid(record["message"])
