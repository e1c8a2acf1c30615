"""Coverage of the spec: every message the contracts know, against what the run exercised.

results.json's ``coverage`` (written by the runner from
``chargetwin.contracts.coverage``) has one item per message, each in one of
four states. A state the report does not know is shown as it is, never
folded into another: an item that was not exercised must not read as a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._format import number
from ._words import SpecRef, spec_ref

__all__ = ["GROUP_ORDER", "STATES", "STATE_WORDS", "Coverage", "CoverageGroup", "CoverageItem", "coverage",
           "state_class"]

STATES: Final = ("valid", "violations", "never seen", "not observed")
"""The states of an item, in the order of the matrix's columns."""

STATE_WORDS: Final = {
    "valid": "seen, every one valid",
    "violations": "seen, with violations",
    "never seen": "never seen in this run",
    "not observed": "not observed: the run could not see it (for example heartbeats, counted by the apps)",
}

GROUP_ORDER: Final = ("REST", "CMS events", "WebSocket", "Redis", "Close codes", "Heartbeat", "OCPP")
"""Groups in the order of ``chargetwin.contracts.coverage.GROUPS``; others follow in order of appearance."""


def state_class(state: str) -> str:
    """The CSS class of a state's cell (``st-other`` for a state this report does not know)."""
    return {"valid": "st-valid", "violations": "st-violations", "never seen": "st-never",
            "not observed": "st-unobserved"}.get(state, "st-other")


@dataclass(frozen=True, slots=True)
class CoverageItem:
    key: str
    label: str
    spec: SpecRef | None
    seen: str
    invalid: str
    state: str

    @property
    def css(self) -> str:
        return state_class(self.state)


@dataclass(frozen=True, slots=True)
class CoverageGroup:
    name: str
    anchor: str
    items: tuple[CoverageItem, ...]

    def count(self, state: str) -> int:
        return sum(1 for item in self.items if item.state == state)


@dataclass(frozen=True, slots=True)
class Coverage:
    """``present`` is false when results.json has no ``coverage``; ``states`` are the matrix's columns."""

    present: bool
    groups: tuple[CoverageGroup, ...] = ()
    states: tuple[str, ...] = STATES
    unmatched: str = "0"

    @property
    def items(self) -> int:
        return sum(len(g.items) for g in self.groups)

    def count(self, state: str) -> int:
        return sum(g.count(state) for g in self.groups)


def coverage(document: Mapping[str, Any] | None, *, spec_url: str | None = None) -> Coverage:
    """The coverage matrix of results.json's ``coverage`` (``present`` false when it has none)."""
    if document is None:
        return Coverage(False)
    by_group: dict[str, list[CoverageItem]] = {}
    for raw in document.get("items") or ():
        group = raw.get("group") if isinstance(raw.get("group"), str) else "Other"
        by_group.setdefault(group, []).append(_item(raw, spec_url))
    names = [g for g in GROUP_ORDER if g in by_group] + [g for g in by_group if g not in GROUP_ORDER]
    groups = tuple(CoverageGroup(name, "cov-" + "".join(c if c.isalnum() else "-" for c in name.lower()),
                                 tuple(by_group[name])) for name in names)
    seen = [item.state for g in groups for item in g.items]
    states = STATES + tuple(dict.fromkeys(s for s in seen if s not in STATES))
    return Coverage(True, groups, states, number(document.get("unmatched", 0)))


def _item(raw: Mapping[str, Any], spec_url: str | None) -> CoverageItem:
    key: str = raw["key"]
    label = raw["label"] if isinstance(raw.get("label"), str) else key
    spec = raw.get("spec") if isinstance(raw.get("spec"), str) else None
    return CoverageItem(key, label, spec_ref(spec, spec_url), number(raw.get("seen")), number(raw.get("invalid")),
                        raw["state"])
