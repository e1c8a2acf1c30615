"""A scenario's pass/fail thresholds, judged against a run's figures.

:class:`Thresholds` is the ``[checks]`` section of a scenario as plain data
(so that a run writes it into its trace and ``chargetwin validate`` judges
the same limits); :func:`judge` turns it and the run's figures into one
:class:`Threshold` per limit, each passed or failed with a message whose
figures are printed at a precision that shows why. Every run also has
two limits of its own: the CMS's events were all delivered once the run
settled (else the stack saturated), and the run was complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..twin.model.config import ChecksSpec
from .latency import LATENCIES

__all__ = ["Threshold", "Thresholds", "figure", "judge"]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The limits a run must hold (None: no limit)."""

    max_violations: int = 0
    latency_p99_ms: Mapping[str, float] = field(default_factory=dict)
    max_clock_lag_p99_s: float | None = None
    max_balk_share: float | None = None

    @classmethod
    def of(cls, spec: ChecksSpec) -> Thresholds:
        return cls(spec.max_violations, dict(spec.latency_p99_ms), spec.max_clock_lag_p99_s, spec.max_balk_share)

    def to_dict(self) -> dict[str, Any]:
        return {"max_violations": self.max_violations, "latency_p99_ms": dict(self.latency_p99_ms),
                "max_clock_lag_p99_s": self.max_clock_lag_p99_s, "max_balk_share": self.max_balk_share}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Thresholds:
        """The thresholds of a ``twin:run`` record; ValueError naming the key that is not what it must be."""
        latency = data.get("latency_p99_ms", {})
        if not isinstance(latency, Mapping) or not all(_number(v) for v in latency.values()):
            raise ValueError("thresholds.latency_p99_ms must map latency names to numbers of milliseconds")
        for key in ("max_clock_lag_p99_s", "max_balk_share"):
            if data.get(key) is not None and not _number(data[key]):
                raise ValueError(f"thresholds.{key} must be a number or null, not {data[key]!r}")
        violations = data.get("max_violations", 0)
        if not isinstance(violations, int) or isinstance(violations, bool):
            raise ValueError(f"thresholds.max_violations must be a whole number, not {violations!r}")
        return cls(violations, {str(k): float(v) for k, v in latency.items()}, data.get("max_clock_lag_p99_s"),
                   data.get("max_balk_share"))


@dataclass(frozen=True, slots=True)
class Threshold:
    """One limit as judged: what, the limit and the measured figure (in ``unit``), and the verdict in words."""

    name: str
    limit: float | None
    measured: float | None
    unit: str
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "limit": self.limit, "measured": self.measured, "unit": self.unit,
                "passed": self.passed, "message": self.message}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def figure(value: float, other: float) -> str:
    """``value`` with as many significant figures as it takes to tell it from ``other`` (3 to 8)."""
    for digits in range(3, 9):
        text = f"{value:.{digits}g}"
        if text != f"{other:.{digits}g}" or value == other:
            return text
    return repr(value)


def _limit(name: str, measured: float, limit: float, unit: str, *, what: str) -> Threshold:
    passed = measured <= limit
    sign = "<=" if passed else ">"
    return Threshold(name, limit, measured, unit, passed,
                     f"{what} {figure(measured, limit)}{unit} {sign} {figure(limit, measured)}{unit}")


def judge(thresholds: Thresholds, *, violations: int, metrics: Mapping[str, Any], settle_s: float,
          complete: bool = True, stopped: str | None = None) -> list[Threshold]:
    """Every limit of ``thresholds`` and of every run against ``metrics`` (results.json's), in a fixed order.

    A figure the metrics lack (a trace that does not carry the clock lag,
    say) is not judged: its threshold is left out, except a latency limit,
    which fails when the run measured none of that latency.
    """
    found = [_limit("max_violations", violations, thresholds.max_violations, "", what="violations")]
    backlog = metrics.get("cms_event_backlog")
    if isinstance(backlog, Mapping) and _number(backlog.get("after_settle")):
        left = backlog["after_settle"]
        found.append(Threshold("cms_backlog_drained", 0, left, " events", left == 0,
                               "every CMS event was delivered once the run settled" if left == 0 else
                               f"the stack saturated: {left:,} CMS events still undelivered {settle_s:g} s after the "
                               f"end (backlog peaked at {backlog.get('max', 0):,}); try a lower --speed"))
    lag = metrics.get("clock_lag_s")
    if thresholds.max_clock_lag_p99_s is not None and isinstance(lag, Mapping) and _number(lag.get("p99")):
        found.append(_limit("clock_lag_p99", lag["p99"], thresholds.max_clock_lag_p99_s, " s", what="clock lag p99"))
    measured = metrics.get("latency_ms", {})
    for name, limit in thresholds.latency_p99_ms.items():
        stats = measured.get(name) if isinstance(measured, Mapping) else None
        if not isinstance(stats, Mapping) or not stats.get("count"):
            found.append(Threshold(f"latency {name} p99", limit, None, " ms", False,
                                   f"latency {name}: not measured in this run (known: {', '.join(LATENCIES)})"))
        else:
            found.append(_limit(f"latency {name} p99", stats["p99"], limit, " ms", what=f"latency {name} p99"))
    model = metrics.get("model")
    share = model.get("balk_share") if isinstance(model, Mapping) else None
    if thresholds.max_balk_share is not None and isinstance(share, int | float):
        found.append(_limit("balk_share", share * 100, thresholds.max_balk_share * 100, " %", what="balk share"))
    apps = metrics.get("app_violations")  # a recorded serve session: what the apps sent, judged live
    if isinstance(apps, Mapping) and _number(apps.get("total")):
        rules = ", ".join(f"{rule} {count}" for rule, count in dict(apps.get("by_rule") or {}).items())
        found.append(Threshold("app_violations", 0, apps["total"], "", apps["total"] == 0,
                               "the apps sent nothing that breaks the contract" if apps["total"] == 0 else
                               f"the apps broke the contract {apps['total']:,} time{'' if apps['total'] == 1 else 's'} "
                               f"as they went ({rules})"))
    found.append(Threshold("run_complete", None, None, "", complete,
                           "the run ran its whole duration" if complete else f"the run stopped early: {stopped}"))
    return found
