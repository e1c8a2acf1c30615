"""What each rule and check says, in words, and where in the protocol document it comes from.

Every rule of the contracts speaks for itself: semantic rules
(``chargetwin.contracts.RULES``) and the validator's routing checks
(``chargetwin.contracts.ROUTING_RULES``) have one summary line and a spec
section each, JSON Schema keywords one line each
(``chargetwin.contracts.SCHEMA_KEYWORDS``, for ``schema.<keyword>``
violations); this module holds no words of its own for them. Cross-message
checks are described by results.json itself (``checks[].description`` and
``checks[].spec``, written by the runner); a file without them shows the
check's name alone.

Spec sections are cited as strings ("3.2 Session Updates Channel"); the
report turns each into an anchor of its appendix (:func:`spec_anchor`) and,
given the base URL of the published protocol document, an outbound link
whose fragment is the heading's GitHub-style slug (:func:`spec_slug`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chargetwin.contracts import ROUTING_RULES, RULES, SCHEMA_KEYWORDS

__all__ = ["SpecRef", "normal_section", "rule_words", "spec_anchor", "spec_ref", "spec_slug"]


@dataclass(frozen=True, slots=True)
class SpecRef:
    """A cited section: its text, the report's anchor for it, and an outbound link when a spec URL is known."""

    section: str
    anchor: str
    url: str | None


def rule_words(rule: str | None, check: str, description: str | None) -> str:
    """What ``rule`` (of ``check``) asserts, in one line; ``code`` in double backquotes (reStructuredText)."""
    if rule is None:
        return description or f"The {check} check."
    if rule in RULES:
        summary: str = RULES[rule].summary
        return summary
    if rule.startswith("schema."):
        keyword = rule.removeprefix("schema.")
        return SCHEMA_KEYWORDS.get(keyword, f"The message breaks the JSON Schema keyword ``{keyword}``.")
    if rule in ROUTING_RULES:
        return ROUTING_RULES[rule].summary
    return f"The message breaks the rule ``{rule}``."


def normal_section(section: str) -> str:
    """One spelling per section: the validator writes ``->`` where the document has ``→``."""
    return " ".join(section.replace("->", "→").split())


def spec_slug(section: str) -> str:
    """The GitHub-style slug of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", normal_section(section).lower())
    return text.replace(" ", "-")


def spec_anchor(section: str) -> str:
    """The id of the section's entry in the report's appendix."""
    return "spec-" + (spec_slug(section) or "unnamed")


def spec_ref(section: str | None, spec_url: str | None) -> SpecRef | None:
    """The reference to ``section`` (None when no section is given)."""
    if not section:
        return None
    text = normal_section(section)
    url = f"{spec_url.split('#')[0]}#{spec_slug(text)}" if spec_url else None
    return SpecRef(text, spec_anchor(text), url)
