"""Memory of a run against its length: peak RSS of ``chargetwin run`` for a short and a long run at one speed.

A benchmark, not a test: it reports figures and asserts nothing. Run it with
``nox -s bench`` (or ``python benchmarks/bench_memory.py``). The checks are
online: each keeps only what is live (open sessions, live sockets, pending
pairs), so a run 16 times as long, whose trace is 16 times as large, should
peak at about the same memory. Each variant is ``chargetwin run`` in a fresh
process (``--trace full``, ``--no-progress``), in turn, ``--rounds`` times;
the figures are medians. A run is two processes of ours: the stack's
(services, charge points, apps, model) and the harness's worker (checks,
figures, trace); each reports its peak RSS in results.json
(``peak_rss_mb``, ``harness_peak_rss_mb``), and their sum is the run's
figure. ``os.wait4`` gives the operating system's account too: the largest
single process of the run's tree (Redis included), rendering the report at
the end included.

``--peak`` adds the whole ``city-evening-peak`` at its declared speed with
``--trace none`` (about 80 minutes on 2 cores; one round).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = {
    "smoke 15 min": ["smoke", "--duration", "15m"],
    "smoke 4 h": ["smoke", "--duration", "4h"],
}
PEAK = {"city-evening-peak (whole, --trace none)": ["city-evening-peak", "--trace", "none"]}


def run_once(arguments: list[str], *, speed: float | None) -> dict[str, float]:
    """One ``chargetwin run``: wall seconds, peak RSS (MB) of the process tree and of the run, trace MB, messages."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        out = Path(folder) / "out"
        command = [sys.executable, "-m", "chargetwin", "run", *arguments, "--out", str(out), "--no-progress"]
        if speed is not None:
            command += ["--speed", str(speed)]
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - started
        if os.waitstatus_to_exitcode(status) not in (0, 1):
            raise SystemExit(f"{' '.join(command)} exited {os.waitstatus_to_exitcode(status)}")
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        trace = out / "trace.ndjson"
        stack = float(results["metrics"].get("peak_rss_mb") or 0.0)
        harness = float(results["metrics"].get("harness_peak_rss_mb") or 0.0)
        return {"wall_s": wall, "largest_process_mb": usage.ru_maxrss / 1024, "stack_mb": stack,
                "harness_mb": harness, "run_mb": stack + harness,
                "trace_mb": trace.stat().st_size / 1e6 if trace.exists() else 0.0,
                "messages": float(results["metrics"]["messages_checked"]),
                "verdict_pass": float(results["verdict"] == "pass")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=120.0, help="speed of the smoke variants (default 120)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each smoke variant (default 3)")
    parser.add_argument("--peak", action="store_true", help="also the whole city-evening-peak (about 80 minutes)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, arguments in VARIANTS.items():
            figures[name].append(run_once(arguments, speed=args.speed))
    if args.peak:
        for name, arguments in PEAK.items():
            figures[name] = [run_once(arguments, speed=None)]
    document = _report(figures, speed=args.speed)
    if args.out:
        args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _report(figures: dict[str, list[dict[str, float]]], *, speed: float) -> dict[str, Any]:
    medians = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for name, runs in figures.items()}
    print(f"Peak memory of chargetwin run (smoke at speed {speed:g}; medians of {len(figures['smoke 15 min'])} runs)")
    print("peak RSS in MB: the stack's process + the harness's worker = the run; the largest process (os.wait4)")
    print(f"{'variant':<42}{'wall s':>8}{'stack':>8}{'harness':>9}{'run':>8}{'largest':>9}{'trace MB':>10}"
          f"{'messages':>11}")
    for name, m in medians.items():
        print(f"{name:<42}{m['wall_s']:>8.1f}{m['stack_mb']:>8.1f}{m['harness_mb']:>9.1f}{m['run_mb']:>8.1f}"
              f"{m['largest_process_mb']:>9.1f}{m['trace_mb']:>10.1f}{m['messages']:>11,.0f}")
    short, long = medians["smoke 15 min"], medians["smoke 4 h"]
    ratios = {"run_rss": long["run_mb"] / short["run_mb"], "harness_rss": long["harness_mb"] / short["harness_mb"],
              "trace": long["trace_mb"] / short["trace_mb"]}
    print(f"4 h / 15 min: run peak RSS x{ratios['run_rss']:.2f} (harness x{ratios['harness_rss']:.2f}), "
          f"trace x{ratios['trace']:.1f}")
    return {"speed": speed, "medians": medians, "runs": figures, "ratios_4h_to_15min": ratios}


if __name__ == "__main__":
    main()
