"""The appendix "Spec sections cited": each section of the protocol document the report links to.

The protocol document is not shipped inside the report; every spec link of
the report points here instead, where each section lists the rules, checks
and coverage items that cite it (and, given its URL, links out to it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chargetwin.contracts import RULES

from ._coverage import Coverage
from ._tables import CheckRow
from ._violations import Group
from ._words import SpecRef, spec_ref

__all__ = ["Citation", "SpecSection", "appendix"]

_LABELS_SHOWN = 6


@dataclass(frozen=True, slots=True)
class Citation:
    """Who cites a section, in words, and where in the report it is (None: nowhere in particular)."""

    text: str
    href: str | None = None


@dataclass(frozen=True, slots=True)
class SpecSection:
    """A cited section and who cites it."""

    ref: SpecRef
    citations: tuple[Citation, ...]


def appendix(*, groups: Iterable[Group], checks: Iterable[CheckRow], coverage: Coverage,
             spec_url: str | None = None) -> tuple[SpecSection, ...]:
    """Every section cited by a violated rule, a check, a coverage item or a rule of the contracts."""
    refs: dict[str, SpecRef] = {}
    cited: dict[str, dict[str, Citation]] = {}

    def cite(ref: SpecRef | None, name: str, text: str, href: str | None = None) -> None:
        if ref is not None:
            refs.setdefault(ref.anchor, ref)
            cited.setdefault(ref.anchor, {})[name] = Citation(text, href)

    for rule in RULES.values():
        cite(spec_ref(rule.spec, spec_url), rule.name, f"rule {rule.name}")
    for group in groups:
        name = group.rule or group.check
        plural = "" if group.count == 1 else "s"
        cite(group.spec, name, f"rule {name} ({group.check}): {group.count} violation{plural} in this run",
             "#" + group.anchor)
    for check in checks:
        cite(check.spec, "check " + check.name, f"check {check.name}", "#checks")
    for ref, labels in _coverage_labels(coverage).items():
        shown = ", ".join(labels[:_LABELS_SHOWN]) + (", …" if len(labels) > _LABELS_SHOWN else "")
        cite(ref, "coverage", f"{len(labels)} coverage item{'' if len(labels) == 1 else 's'}: {shown}", "#coverage")
    return tuple(SpecSection(refs[a], tuple(cited[a].values())) for a in sorted(refs, key=lambda a: _order(refs[a])))


def _coverage_labels(coverage: Coverage) -> dict[SpecRef, list[str]]:
    labels: dict[SpecRef, list[str]] = {}
    for group in coverage.groups:
        for item in group.items:
            if item.spec is not None:
                labels.setdefault(item.spec, []).append(item.label)
    return labels


def _order(ref: SpecRef) -> tuple[int, tuple[int, ...], str]:
    """Numbered sections first, by their numbers (``3.2`` after ``3``), then the others by name."""
    found = re.match(r"(\d+(?:\.\d+)*)\.?\s", ref.section)
    numbers = tuple(int(n) for n in found.group(1).split(".")) if found else ()
    return (0 if numbers else 1, numbers, ref.section.lower())
