"""How a run compares with earlier ones: each figure's change, and whether that is better or worse.

:func:`figures` reads the figures of one results document (verdict,
throughput, latency percentiles, violations per check, coverage counts, the
model's KPIs, capacity); :func:`compare` sets a run against an earlier one,
figure by figure. Every change is told in words as well as by an arrow and
a colour ("up 12 ms (+8.1 %), worse"), so that colour is never the only
signal. Figures with no better direction (the model's KPIs depend on the
scenario) are called "changed", not judged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ._format import MISSING, is_number, mapping, number

__all__ = ["Change", "Comparison", "Figure", "compare", "figures", "run_label"]

Better = Literal["higher", "lower"] | None
Value = float | int | str | None


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure a run is judged by; ``key`` identifies it across runs, ``better`` which way is good."""

    key: str
    section: str
    label: str
    better: Better = None
    digits: int = 2


@dataclass(frozen=True, slots=True)
class Change:
    """One figure, before and now.

    ``direction``: ``up``, ``down``, ``same``, ``changed`` (text values),
    ``new`` (absent before), ``gone`` (absent now); ``assessment``:
    ``better``, ``worse`` or ``neutral``.
    """

    figure: Figure
    before: Value
    now: Value
    delta: float | None
    relative: float | None
    direction: str
    assessment: str

    @property
    def arrow(self) -> str:
        return {"up": "▲", "down": "▼", "same": "=", "changed": "≠", "new": "+", "gone": "-"}[self.direction]

    @property
    def words(self) -> str:
        """The change in words: ``up 12 (+8.1 %), worse``."""
        if self.direction in ("new", "gone"):
            text = "not in the earlier run" if self.direction == "new" else "not in this run"
        elif self.direction == "changed":
            text = f"was {self.before}, now {self.now}"
        elif self.direction == "same":
            text = "unchanged"
        else:
            size = number(abs(self.delta or 0), self.figure.digits)
            share = f" ({self.relative:+.1%})".replace("%", " %") if self.relative is not None else ""
            text = f"{self.direction} {size}{share}"
        return text if self.assessment == "neutral" else f"{text}, {self.assessment}"

    def shown(self, value: Value) -> str:
        return number(value, self.figure.digits) if value is not None else MISSING


@dataclass(frozen=True, slots=True)
class Comparison:
    """This run against one earlier run; ``differs`` lists what differs in their set-up (scenario, seed, ...)."""

    label: str
    differs: tuple[str, ...]
    changes: tuple[Change, ...]

    @property
    def sections(self) -> tuple[tuple[str, tuple[Change, ...]], ...]:
        """The changes by section, in order of first appearance."""
        names = list(dict.fromkeys(c.figure.section for c in self.changes))
        return tuple((name, tuple(c for c in self.changes if c.figure.section == name)) for name in names)


_MODEL: Final = (("sessions started", ("sessions", "started")), ("sessions completed", ("sessions", "completed")),
                 ("energy delivered (kWh)", ("energy_delivered_kwh",)), ("drivers arriving", ("arrivals",)),
                 ("balks", ("balks",)), ("gave up", ("gave_up",)),
                 ("peak concurrent sessions", ("peak_concurrent_sessions",)), ("wait p90 (s)", ("waits_s", "p90")),
                 ("faults", ("faults",)), ("maintenance windows", ("maintenance_windows",)))

_CAPACITY: Final[tuple[tuple[str, tuple[str, ...], Better], ...]] = (("messages checked", ("messages_checked",), None),
                    ("messages per second", ("messages_per_second",), "higher"),
                    ("wall seconds", ("wall_seconds",), None),
                    ("clock lag p99 (ms)", ("clock_lag_s", "p99"), "lower"),
                    ("app sockets open at the peak", ("apps", "peak_sockets_open"), None),
                    ("dropped slow clients", ("gateway", "dropped_slow_clients"), "lower"),
                    ("CMS events queued after the settle", ("cms_event_backlog", "after_settle"), "lower"))

_COVERAGE: Final[tuple[tuple[str, Better], ...]] = (
    ("valid", "higher"), ("violations", "lower"), ("never seen", "lower"), ("not observed", None))


def _get(node: Any, path: Sequence[str]) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def figures(results: Mapping[str, Any]) -> list[tuple[Figure, Value]]:
    """The figures of one results document, in the order a trend table shows them."""
    metrics = mapping(results.get("metrics"))
    found: list[tuple[Figure, Value]] = [(Figure("verdict", "Verdict", "verdict"), results.get("verdict"))]
    for check in results.get("checks") or ():
        found.append((Figure(f"violations.{check['name']}", "Violations per check", check["name"], "lower", 0),
                      check.get("violations")))
    found.append((Figure("thresholds_failed", "Violations per check", "thresholds failed", "lower", 0),
                  len(results.get("thresholds_failed") or ())))
    found.extend(_coverage(results.get("coverage")))
    found.extend(_latency(metrics.get("latency_ms")))
    for label, path, better in _CAPACITY:
        scale = 1000.0 if path[0] == "clock_lag_s" else 1.0
        value = _get(metrics, path)
        found.append((Figure("capacity." + ".".join(path), "Capacity", label, better),
                      value * scale if is_number(value) else value))
    for label, path in _MODEL:
        found.append((Figure("model." + ".".join(path), "The city (model)", label), _get(metrics.get("model"), path)))
    return found


def _coverage(coverage: Any) -> list[tuple[Figure, Value]]:
    items = coverage.get("items") if isinstance(coverage, Mapping) else None
    if not isinstance(items, list):
        return []
    states = [item.get("state") for item in items if isinstance(item, Mapping)]
    return [(Figure(f"coverage.{state}", "Coverage of the spec", f"items {state}", better, 0), states.count(state))
            for state, better in _COVERAGE]


def _latency(latency_ms: Any) -> list[tuple[Figure, Value]]:
    if not isinstance(latency_ms, Mapping):
        return []
    return [(Figure(f"latency.{name}.{p}", "Latency (ms)", f"{name} {p}", "lower", 1), _get(stats, (p,)))
            for name, stats in latency_ms.items() for p in ("p50", "p99")]


def compare(now: Mapping[str, Any], before: Mapping[str, Any], *, label: str | None = None) -> Comparison:
    """``now`` against the earlier ``before``: every figure of either, in ``now``'s order."""
    current, earlier = figures(now), figures(before)
    earlier_by_key = {f.key: (f, v) for f, v in earlier}
    current_keys = {f.key for f, _ in current}
    rows = [_change(f, earlier_by_key.get(f.key, (f, None))[1], v) for f, v in current]
    rows += [_change(f, v, None) for f, v in earlier if f.key not in current_keys]
    rows = [row for row in rows if row.before is not None or row.now is not None]
    return Comparison(label or run_label(before), _differences(now, before), tuple(rows))


def _change(figure: Figure, before: Value, now: Value) -> Change:
    if before is None or now is None:
        return Change(figure, before, now, None, None, "new" if before is None else "gone", "neutral")
    if not (is_number(before) and is_number(now)):
        same = before == now
        return Change(figure, before, now, None, None, "same" if same else "changed",
                      "neutral" if same else _verdict_assessment(figure, before, now))
    assert isinstance(before, (int, float)) and isinstance(now, (int, float))
    delta = float(now) - float(before)
    relative = delta / abs(before) if before else None
    direction = "same" if delta == 0 else ("up" if delta > 0 else "down")
    return Change(figure, before, now, delta, relative, direction, _assessment(figure.better, delta))


def _assessment(better: Better, delta: float) -> str:
    if better is None or delta == 0:
        return "neutral"
    return "better" if (delta > 0) == (better == "higher") else "worse"


def _verdict_assessment(figure: Figure, before: Value, now: Value) -> str:
    if figure.key != "verdict":
        return "neutral"
    return "better" if now == "pass" and before == "fail" else "worse" if now == "fail" else "neutral"


def run_label(results: Mapping[str, Any]) -> str:
    """A run in a few words: ``smoke, seed 42, speed 60x, chargetwin 0.1.0``."""
    scenario, versions = mapping(results.get("scenario")), mapping(results.get("versions"))
    parts = [str(scenario.get("name", "unnamed scenario"))]
    if scenario.get("seed") is not None:
        parts.append(f"seed {scenario['seed']}")
    if is_number(scenario.get("speed")):
        parts.append(f"speed {number(scenario['speed'])}x")
    if versions.get("chargetwin"):
        parts.append(f"chargetwin {versions['chargetwin']}")
    return ", ".join(parts)


def _differences(now: Mapping[str, Any], before: Mapping[str, Any]) -> tuple[str, ...]:
    a, b = mapping(now.get("scenario")), mapping(before.get("scenario"))
    return tuple(f"{key}: {b.get(key, MISSING)} then, {a.get(key, MISSING)} now"
                 for key in ("name", "source", "seed", "speed", "duration_s") if a.get(key) != b.get(key))
