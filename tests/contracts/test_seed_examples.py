"""Every JSON example of the seed document is a fixture that must validate."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from conftest import EXAMPLES, read_ndjson

from chargetwin.contracts import Validator, parse_record
from chargetwin.contracts.schemas import schema_documents

SEED_RECORDS = read_ndjson(EXAMPLES / "seed.ndjson")
OTHER_RECORDS = read_ndjson(EXAMPLES / "seed-non-json.ndjson")


def _record_id(record: dict[str, Any]) -> str:
    return f"line{record['source']['line']}-{record['channel']}-{record['direction']}"


def seed_json_blocks(text: str) -> list[tuple[int, Any]]:
    """(line, value) of every fenced code block of ``text`` that parses as JSON."""
    found = []
    for match in re.finditer(r"```\w*\n(.*?)```", text, re.S):
        try:
            value = json.loads(match.group(1))
        except ValueError:
            continue
        found.append((text.count("\n", 0, match.start()) + 1, value))
    return found


def test_the_fixture_file_holds_exactly_the_seeds_json_examples(seed_text: str) -> None:
    blocks = seed_json_blocks(seed_text)
    assert len(blocks) == 34
    assert [(r["source"]["line"], r["message"]) for r in SEED_RECORDS] == blocks


def test_a_changed_example_is_noticed(seed_text: str) -> None:
    edited = seed_text.replace('"display": "3/4"', '"display": "4/4"', 1)
    assert [v for _, v in seed_json_blocks(edited)] != [r["message"] for r in SEED_RECORDS]


@pytest.mark.parametrize("record", SEED_RECORDS + OTHER_RECORDS, ids=_record_id)
def test_seed_example_conforms(validator: Validator, record: dict[str, Any]) -> None:
    parsed = parse_record(json.dumps(record), source="seed", line=record["source"]["line"])
    violations = validator.validate(parsed.message, channel=parsed.channel, direction=parsed.direction,
                                    status=parsed.status)
    assert violations == []


def test_every_schema_is_valid_against_its_metaschema() -> None:
    documents = schema_documents()
    assert len(documents) >= 30
    for name, document in documents.items():
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        jsonschema.Draft202012Validator.check_schema(document)


def test_a_broken_schema_fails_the_metaschema_check() -> None:
    broken = dict(schema_documents()["messages/connected"], required="type")
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema(broken)
