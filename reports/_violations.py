"""The violations of a run, grouped by rule, most frequent first.

Every violation kept in results.json gets a compact row (check, rule, hop,
pointer, trace line, its words cut short). The first few of each rule get
the whole story: the words, expected against actual, and the offending
messages pretty-printed with the offending field marked. Full messages are
what makes a report large (a ``charger_list_update`` is up to 150 KB), so
each is printed within :data:`MESSAGE_BUDGET` characters and all of them
within :data:`DETAIL_BUDGET`; a cut says where the whole message is (its
line in the run's trace).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any, Final

from markupsafe import Markup

from ._format import MISSING, is_number, number, truncate
from ._pretty import pretty_json
from ._words import SpecRef, rule_words, spec_ref

__all__ = [
    "DETAIL_BUDGET",
    "EXAMPLES_PER_RULE",
    "MESSAGE_BUDGET",
    "RECORDS_PER_EXAMPLE",
    "Example",
    "Group",
    "RecordView",
    "Row",
    "Violations",
    "rst_markup",
    "violations",
]

EXAMPLES_PER_RULE: Final = 3
"""Violations of each rule shown in full; the rest get their compact row only."""

RECORDS_PER_EXAMPLE: Final = 3
"""Offending records printed per violation (an invariant may name many)."""

MESSAGE_BUDGET: Final = 20_000
"""Characters of one pretty-printed message, at most (about)."""

DETAIL_BUDGET: Final = 1_000_000
"""Characters of all pretty-printed messages of a report together: what keeps a peak run's report small."""

ROW_TEXT: Final = 120
"""Characters of a violation's words in its compact row."""

VALUE_TEXT: Final = 1_000
"""Characters of ``expected`` and ``actual`` as JSON."""


@dataclass(frozen=True, slots=True)
class Row:
    """One violation in a line: ``key`` (``check:index``, index into the check's examples) is its marker."""

    check: str
    index: int
    rule: str
    hop: str
    pointer: str
    line: str
    t_sim: str
    text: Markup  # escaped already, quotes left as they are: ten thousand rows must stay small

    @property
    def key(self) -> str:
        return f"{self.check}:{self.index}"


@dataclass(frozen=True, slots=True)
class RecordView:
    """An offending record: where it was seen, and its message (None when the report had no room left)."""

    line: str
    hop: str
    channel: str
    direction: str
    t_sim: str
    user_id: str
    socket_id: str
    json: Markup | None
    cut: bool
    marked: bool


@dataclass(frozen=True, slots=True)
class Example:
    """A violation in full."""

    row: Row
    message: str
    expected: str
    actual: str
    records: tuple[RecordView, ...]
    more_records: int


@dataclass(frozen=True, slots=True)
class Group:
    """Every violation of one rule of one check."""

    anchor: str
    check: str
    rule: str | None
    words: Markup
    spec: SpecRef | None
    rows: tuple[Row, ...]
    examples: tuple[Example, ...]

    @property
    def count(self) -> int:
        return len(self.rows)


@dataclass(frozen=True, slots=True)
class Violations:
    """``kept``: violations in results.json (and so in the report); ``counted``: found by the checks."""

    groups: tuple[Group, ...]
    kept: int
    counted: int
    cut_checks: tuple[tuple[str, int, int], ...]  # (check, kept, counted) where results.json kept fewer
    budget_spent: bool


@dataclass
class _Budget:
    left: int
    spent: bool = field(default=False)


def rst_markup(text: str) -> Markup:
    """Escaped ``text`` with ````code```` (reStructuredText, as the rules' docstrings write it) as ``<code>``."""
    parts = text.split("``")
    return Markup("".join(f"<code>{escape(p)}</code>" if i % 2 else escape(p) for i, p in enumerate(parts)))


def violations(checks: Sequence[Mapping[str, Any]], *, spec_url: str | None = None,
               detail_budget: int = DETAIL_BUDGET) -> Violations:
    """The violations of ``checks`` (results.json's ``checks``), grouped by rule, most frequent first."""
    order = {check["name"]: i for i, check in enumerate(checks)}
    buckets: dict[tuple[str, str | None], list[tuple[int, Mapping[str, Any]]]] = {}
    for check in checks:
        for index, example in enumerate(check.get("examples") or ()):
            buckets.setdefault((check["name"], _rule(example)), []).append((index, example))
    keys = sorted(buckets, key=lambda k: (-len(buckets[k]), order[k[0]], k[1] or ""))
    budget = _Budget(detail_budget)
    described = {check["name"]: check for check in checks}
    groups = tuple(_group(check, rule, buckets[check, rule], described[check], spec_url, budget)
                   for check, rule in keys)
    cut = tuple((c["name"], len(c.get("examples") or ()), c["violations"]) for c in checks
                if c["violations"] > len(c.get("examples") or ()))
    return Violations(groups, sum(g.count for g in groups), sum(c["violations"] for c in checks), cut,
                      budget.spent)


def _rule(example: Mapping[str, Any]) -> str | None:
    rule = example.get("rule")
    return rule if isinstance(rule, str) and rule else None


def _group(check: str, rule: str | None, found: Sequence[tuple[int, Mapping[str, Any]]],
           described: Mapping[str, Any], spec_url: str | None, budget: _Budget) -> Group:
    description = described.get("description")
    words = rule_words(rule, check, description if isinstance(description, str) else None)
    section = next((v["spec"] for _, v in found if isinstance(v.get("spec"), str) and v["spec"]), None)
    if section is None and isinstance(described.get("spec"), str):
        section = described["spec"]
    rows = tuple(_row(check, index, v) for index, v in found)
    examples = tuple(_example(row, v, budget) for row, (_, v) in zip(rows[:EXAMPLES_PER_RULE], found, strict=False))
    anchor = "rule-" + check + ("-" + "".join(c if c.isalnum() or c == "_" else "-" for c in rule) if rule else "")
    return Group(anchor, check, rule, rst_markup(words), spec_ref(section, spec_url), rows, examples)


def _row(check: str, index: int, v: Mapping[str, Any]) -> Row:
    first = _records(v)[:1]
    record = first[0] if first else {}
    return Row(check, index, _rule(v) or MISSING, _text(v.get("hop")), _text(v.get("pointer"), empty="(whole message)"),
               _text(record.get("line")), number(record.get("t_sim"), 1) if is_number(record.get("t_sim")) else MISSING,
               Markup(escape(truncate(_text(v.get("message")), ROW_TEXT), quote=False)))


def _records(v: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    records = v.get("records")
    return [r for r in records if isinstance(r, Mapping)] if isinstance(records, list) else []


def _example(row: Row, v: Mapping[str, Any], budget: _Budget) -> Example:
    records = _records(v)
    pointer = v.get("pointer") if isinstance(v.get("pointer"), str) else None
    views = tuple(_record(r, pointer if i == 0 else None, budget) for i, r in enumerate(records[:RECORDS_PER_EXAMPLE]))
    return Example(row, _text(v.get("message")), _json(v.get("expected")), _json(v.get("actual")), views,
                   max(0, len(records) - RECORDS_PER_EXAMPLE))


def _record(record: Mapping[str, Any], pointer: str | None, budget: _Budget) -> RecordView:
    printed = None
    if budget.left > 0:
        printed = pretty_json(record.get("message"), pointer, budget=min(MESSAGE_BUDGET, budget.left))
        budget.left -= len(printed.html)
    else:
        budget.spent = True
    return RecordView(_text(record.get("line")), _text(record.get("hop")), _text(record.get("channel")),
                      _text(record.get("direction")), number(record.get("t_sim"), 3), _text(record.get("user_id")),
                      _text(record.get("socket_id")), Markup(printed.html) if printed else None,
                      printed.cut if printed else True, printed.marked if printed else False)


def _text(value: Any, *, empty: str = MISSING) -> str:
    if value is None:
        return MISSING
    if value == "":
        return empty
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _json(value: Any) -> str:
    return truncate(json.dumps(value, ensure_ascii=False, default=str), VALUE_TEXT)
