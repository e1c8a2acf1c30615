"""Pretty-printed JSON as escaped HTML, with the node at a JSON pointer in ``<mark>``.

Laid out like ``json.dumps(indent=2)``. Everything is escaped here, so the
result goes into a ``<pre>`` as is. A message can be large (a
``charger_list_update`` of a city is 150 KB), so printing has a budget of
characters: once it is spent, keys and items are left out (one line says
how many), except those on the way to the pointer, so the marked node is
always shown. A pointer to a key that is not there (``schema.required``)
marks a line where the key would be.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import Any, Final

__all__ = ["MAX_STRING", "PrettyJson", "parse_pointer", "pretty_json"]

MAX_STRING: Final = 300
"""Longer strings are cut to this many characters (and say how long they were)."""

_INDENT: Final = "  "

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PrettyJson:
    """``html``: escaped text for a ``<pre>``; ``cut``: parts were left out; ``marked``: the pointer was found."""

    html: str
    cut: bool
    marked: bool


def parse_pointer(pointer: str | None) -> Path | None:
    """The reference tokens of an RFC 6901 pointer ("" is the whole document); None when not a pointer."""
    if pointer is None or (pointer and not pointer.startswith("/")):
        return None
    if pointer == "":
        return ()
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/"))


def pretty_json(value: Any, pointer: str | None = None, *, budget: int = 20_000) -> PrettyJson:
    """``value`` pretty-printed within about ``budget`` characters, the node at ``pointer`` marked."""
    printer = _Printer(budget)
    lines = printer.node(value, parse_pointer(pointer), 0)
    return PrettyJson("\n".join(lines), printer.cut, printer.marked)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One entry's lines; ``json`` is false for a note (keys left out, a missing key): no comma after it."""

    lines: list[str]
    json: bool


class _Printer:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.cut = False
        self.marked = False

    def node(self, value: Any, target: Path | None, depth: int) -> list[str]:
        """Lines of ``value``: the first without indentation (the caller puts the key before it)."""
        if isinstance(value, dict):
            lines = self._container(list(value.items()), "{", "}", target, depth, keyed=True)
        elif isinstance(value, list):
            lines = self._container(list(enumerate(value)), "[", "]", target, depth, keyed=False)
        else:
            lines = [self._scalar(value)]
        if target == ():
            self.marked = True
            lines[0] = "<mark>" + lines[0]
            lines[-1] += "</mark>"
        return lines

    def _container(self, entries: list[tuple[Any, Any]], open_: str, close: str, target: Path | None,
                   depth: int, *, keyed: bool) -> list[str]:
        want = target[0] if target else None
        pad = _INDENT * (depth + 1)
        body: list[_Entry] = []
        skipped = 0
        for key, child in entries:
            on_path = want is not None and str(key) == want
            if self.budget <= 0 and not on_path:
                skipped += 1
                continue
            if skipped:
                body.append(self._elided(pad, skipped, keyed))
                skipped = 0
            body.append(self._entry(key, child, target[1:] if on_path and target else None, depth, keyed=keyed))
        if skipped:
            body.append(self._elided(pad, skipped, keyed))
        if want is not None and not any(str(key) == want for key, _ in entries):
            body.append(self._missing(pad, want, target or (), keyed=keyed))
        if not body:
            return [open_ + close]
        self.budget -= len(_INDENT) * depth + 2
        return [open_, *_with_commas(body), _INDENT * depth + close]

    def _entry(self, key: Any, child: Any, target: Path | None, depth: int, *, keyed: bool) -> _Entry:
        lines = self.node(child, target, depth + 1)
        prefix = escape(json.dumps(key, ensure_ascii=False), quote=False) + ": " if keyed else ""
        self.budget -= len(prefix) + len(_INDENT) * (depth + 1) + 2  # the key, the indentation, comma and newline
        lines[0] = _INDENT * (depth + 1) + prefix + lines[0]
        return _Entry(lines, json=True)

    def _scalar(self, value: Any) -> str:
        if isinstance(value, str) and len(value) > MAX_STRING:
            self.cut = True
            text = json.dumps(value[:MAX_STRING], ensure_ascii=False)[:-1] + f"…\" ({len(value):,} characters)"
        else:
            text = json.dumps(value, ensure_ascii=False, default=str)
        self.budget -= len(text)
        return escape(text, quote=False)

    def _elided(self, pad: str, count: int, keyed: bool) -> _Entry:
        self.cut = True
        what = ("key" if keyed else "item") + ("" if count == 1 else "s")
        return _Entry([f'{pad}<span class="elided">… {count:,} {what} left out</span>'], json=False)

    def _missing(self, pad: str, want: str, target: Path, *, keyed: bool) -> _Entry:
        self.marked = True
        name = escape(json.dumps(want, ensure_ascii=False), quote=False) if keyed else f"[{escape(want)}]"
        rest = "" if len(target) == 1 else " (and below it: /" + escape("/".join(target[1:])) + ")"
        return _Entry([f'{pad}<mark class="missing">{name}: missing here{rest}</mark>'], json=False)


def _with_commas(body: list[_Entry]) -> list[str]:
    """The entries' lines, with a comma after each JSON entry that another JSON entry follows."""
    last = max((i for i, entry in enumerate(body) if entry.json), default=-1)
    out: list[str] = []
    for index, entry in enumerate(body):
        if entry.json and index < last:
            out.extend([*entry.lines[:-1], entry.lines[-1] + ","])
        else:
            out.extend(entry.lines)
    return out
