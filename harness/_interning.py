"""Private: one parsed object per distinct message text, for the fan-out's copies.

A charger update reaches Redis once per connected user and every app's
socket once: hundreds of copies of the same text within milliseconds. The
taps parse, validate and encode each distinct text once (:class:`Interner`)
and reuse the results for its copies, keyed by the parsed object's identity
(:class:`ByIdentity`). Both are small and bounded: they only need to span
one burst of copies, not the run (a burst's copies are one object), and
they hold no large message (a 150 KB charger list parses to megabytes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["ByIdentity", "Interner"]

_V = TypeVar("_V")


class Interner:
    """``parse(text)``: ``json.loads(text)``, the same object for the same text while it is remembered.

    Text that is not JSON parses to itself (the checks judge it), or, with
    ``strict``, raises ValueError (NaN and Infinity included: they are not
    JSON). Callers must not mutate what they get back: copies share it.
    """

    def __init__(self, *, size: int = 256, strict: bool = False, max_text: int = 65536) -> None:
        self._size = size
        self._max_text = max_text
        self._strict = strict
        self._parsed: dict[str, Any] = {}

    def parse(self, text: str | bytes) -> Any:
        if isinstance(text, bytes):
            text = text.decode() if self._strict else text.decode(errors="replace")
        parsed = self._parsed.get(text, _MISSING)
        if parsed is _MISSING:
            try:
                parsed = json.loads(text, parse_constant=_no_constant) if self._strict else json.loads(text)
            except ValueError:
                if self._strict:
                    raise
                parsed = text
            if len(text) > self._max_text:  # a whole charger list: one per connect, never copied
                return parsed
            if len(self._parsed) >= self._size:
                del self._parsed[next(iter(self._parsed))]  # the oldest: dicts keep insertion order
            self._parsed[text] = parsed
        return parsed


class ByIdentity(Generic[_V]):
    """A bounded memo of ``compute(obj, key)`` by ``(key, id(obj))``; it holds ``obj`` so that its id stays its own."""

    def __init__(self, compute: Callable[[Any, Any], _V], *, size: int = 64) -> None:
        self._compute = compute
        self._size = size
        self._memo: dict[tuple[Hashable, int], tuple[Any, _V]] = {}

    def get(self, obj: Any, key: Hashable = None) -> _V:
        slot = (key, id(obj))
        found = self._memo.get(slot)
        if found is not None and found[0] is obj:
            return found[1]
        value = self._compute(obj, key)
        if len(self._memo) >= self._size:
            del self._memo[next(iter(self._memo))]
        self._memo[slot] = (obj, value)
        return value


_MISSING: Any = object()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
