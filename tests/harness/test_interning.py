"""The taps' memo of parsed, validated and encoded messages: one object per text, results per object."""

from __future__ import annotations

import gc

from chargetwin.harness._interning import ByIdentity, Interner


def test_the_same_text_parses_to_the_same_object() -> None:
    interner = Interner()
    first = interner.parse('{"type":"connected","userId":1}')
    assert interner.parse(b'{"type":"connected","userId":1}') is first
    assert first == {"type": "connected", "userId": 1}
    assert interner.parse('{"type":"connected","userId":2}') is not first


def test_text_that_is_not_json_parses_to_itself() -> None:
    assert Interner().parse("not json{") == "not json{"


def test_the_interner_forgets_the_oldest_text_beyond_its_size() -> None:
    interner = Interner(size=2)
    first = interner.parse("[1]")
    interner.parse("[2]")
    interner.parse("[3]")
    assert interner.parse("[1]") is not first  # parsed again: it was forgotten
    assert interner.parse("[3]") == [3]


def test_results_are_remembered_per_object_and_key() -> None:
    calls: list[tuple[object, object]] = []
    memo = ByIdentity(lambda obj, key: calls.append((obj, key)) or len(calls))
    message = {"a": 1}
    assert memo.get(message, "websocket") == 1
    assert memo.get(message, "websocket") == 1
    assert memo.get(message, "redis") == 2
    assert memo.get({"a": 1}, "websocket") == 3  # equal but another object: computed again
    assert len(calls) == 3


def test_a_reused_id_is_not_mistaken_for_the_object_it_held() -> None:
    memo: ByIdentity[int] = ByIdentity(lambda obj, key: len(obj), size=1)
    memo.get([1, 2, 3])
    memo.get([9])  # evicts the first; its id may now be reused
    gc.collect()
    assert memo.get([1]) == 1


def test_a_large_text_is_parsed_but_not_remembered() -> None:
    interner = Interner(max_text=10)
    big = '{"chargers": [1, 2, 3]}'
    assert interner.parse(big) == {"chargers": [1, 2, 3]}
    assert interner.parse(big) is not interner.parse(big)
