"""Model-only speed: a 24 h day of a 1,000-station, 4,000-connector city, on one core.

A benchmark, not a test: it reports figures and asserts nothing. Run it with
``nox -s bench`` (or ``python benchmarks/bench_model.py``). It runs the
bundled ``city-24h`` scenario (over 20,000 sessions, a meter sample of every
transaction every minute) several times and reports the median wall time of
two variants measured in the same run: the model with the KPI collector
listening (what ``chargetwin model`` does) and the model with a sink that
only receives each event (the cost of the model itself, meter samples made).
Target: under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chargetwin.twin.model.kpi import KpiCollector
from chargetwin.twin.model.world import World
from chargetwin.twin.scenario import load_scenario

TARGET_S = 10.0


def _with_kpis(scenario: Any) -> dict[str, Any]:
    world = World(scenario)
    kpis = KpiCollector(world)
    world.subscribe(kpis)
    world.run()
    return kpis.result()


def _bare(scenario: Any) -> dict[str, Any]:
    received = [0]

    def sink(event: object) -> None:
        received[0] += 1

    World(scenario, sinks=[sink]).run()
    return {"events": received[0]}


def _time(variant: Callable[[Any], dict[str, Any]], scenario: Any, rounds: int) -> tuple[list[float], dict[str, Any]]:
    times, result = [], {}
    for _ in range(rounds):
        start = time.perf_counter()
        result = variant(scenario)
        times.append(time.perf_counter() - start)
    return times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="city-24h", help="scenario file or bundled name (default city-24h)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    scenario = load_scenario(args.scenario)
    figures: dict[str, Any] = {"scenario": scenario.name, "target_s": TARGET_S, "variants": {}}
    print(f"model-only speed, one core, {scenario.name}: median of {args.rounds} runs")
    print(f"{'variant':<34}{'median s':>10}{'min':>8}{'max':>8}  sessions  meter samples")
    kpis: dict[str, Any] = {}
    for name, variant in (("model + KPI collector", _with_kpis), ("model, events only received", _bare)):
        times, result = _time(variant, scenario, args.rounds)
        kpis = result if "sessions" in result else kpis
        figures["variants"][name] = {"median_s": round(statistics.median(times), 3),
                                     "min_s": round(min(times), 3), "max_s": round(max(times), 3)}
        sessions = kpis["sessions"]["started"] if kpis else 0
        samples = kpis["meter_samples"] if kpis else 0
        print(f"{name:<34}{statistics.median(times):>10.2f}{min(times):>8.2f}{max(times):>8.2f}"
              f"  {sessions:>8,}  {samples:>13,}")
    figures["sessions_started"] = kpis["sessions"]["started"]
    figures["meter_samples"] = kpis["meter_samples"]
    met = figures["variants"]["model + KPI collector"]["median_s"] < TARGET_S
    print(f"target: a day with >= 20,000 sessions in under {TARGET_S:.0f} s: {'met' if met else 'NOT met'}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
