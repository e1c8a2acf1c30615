"""Private helpers of the benchmarks that compare variants: each variant in a fresh process, alternating.

Variants alternate round by round so that a noisy neighbour on this shared
machine hurts them alike; each runs in its own interpreter, so one's imports
and event loop cannot leak into another's. A child prints its figure as the
last line of its standard output.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def measure(script: str, variants: Iterable[str], *, rounds: int, args: list[str]) -> dict[str, list[float]]:
    """Each variant's figures over ``rounds``: ``python script --child VARIANT *args`` per run."""
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name in figures:
            command = [sys.executable, script, "--child", name, *args]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            figures[name].append(float(output.strip().splitlines()[-1]))
    return figures


def report(title: str, column: str, figures: dict[str, list[float]], *, unit: str, out: Path | None,
           context: dict[str, Any]) -> None:
    """Print median, min and max of each variant under ``title``; also as JSON to ``out``."""
    print(title)
    print(f"{column:<28}{unit:>14}{'min':>10}{'max':>10}")
    document: dict[str, Any] = {**context, "unit": unit, "variants": {}}
    for name, values in figures.items():
        median = statistics.median(values)
        document["variants"][name] = {"median": round(median), "min": round(min(values)), "max": round(max(values))}
        print(f"{name:<28}{median:>14,.0f}{min(values):>10,.0f}{max(values):>10,.0f}")
    if out:
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
