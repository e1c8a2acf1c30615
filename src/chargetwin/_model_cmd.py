"""``chargetwin model SCENARIO``: the world model alone, as fast as possible, and its KPIs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from ._overrides import add_override_options, with_overrides
from .twin.model.config import Scenario
from .twin.model.kpi import KpiCollector
from .twin.model.world import World
from .twin.scenario import ScenarioError, load_scenario

__all__ = ["add_model_parser", "run_model"]

KPI_FORMAT = 1
"""Version of the ``--out`` JSON layout; raised when a field changes meaning or goes away."""


def add_model_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "model",
        help="run the world model alone, as fast as possible, and report its KPIs",
        description="Run a scenario's world model without services: arrivals, queues, charging, "
                    "faults and maintenance. Prints the KPIs as a table; --out writes them as JSON.",
        epilog="SCENARIO is a TOML file, or the name of a bundled scenario (smoke, city-evening-peak, "
               "city-24h, maintenance-storm, steady-state). Exit codes: 0 done, 2 bad scenario or arguments.",
    )
    parser.add_argument("scenario", metavar="SCENARIO", help="scenario file or bundled scenario name")
    parser.add_argument("--out", type=Path, metavar="FILE", help="write the KPIs as JSON to FILE")
    add_override_options(parser)
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar on standard error (default: when it is a terminal)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print no table (with --out)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    err = Console(stderr=True, force_terminal=True if args.progress else None)
    try:
        scenario = with_overrides(load_scenario(args.scenario), args)
    except (ScenarioError, ValueError) as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    show = err.is_terminal if args.progress is None else args.progress
    result = run_model(scenario, console=err if show else None)
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            print(f"chargetwin: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
            return 2
    if not args.quiet:
        Console().print(kpi_table(result))
    return 0


def run_model(scenario: Scenario, *, console: Console | None = None) -> dict[str, Any]:
    """Run ``scenario``'s model to its end; the KPIs with what produced them (``--out`` format)."""
    started = time.perf_counter()
    world = World(scenario)
    kpis = KpiCollector(world)
    world.subscribe(kpis)
    if console is None:
        world.run()
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[clock]}"),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task(f"modelling {scenario.name}", total=scenario.run.duration, clock="")

            def advance(now: float, end: float) -> None:
                clock = scenario.run.start + timedelta(seconds=now)
                progress.update(task, completed=now, clock=f"simulated {clock:%a %H:%M}")
            world.run(progress=advance)
    wall = time.perf_counter() - started
    return {
        "format": KPI_FORMAT,
        "chargetwin": __version__,
        "scenario": {"name": scenario.name, "source": scenario.source, "seed": scenario.run.seed,
                     "start": scenario.run.start.isoformat(), "duration_s": scenario.run.duration,
                     "warmup_s": scenario.run.warmup},
        "network": {"stations": len(world.network.stations), "charge_points": len(world.charge_points),
                    "connectors": sum(1 for _ in world.network.connectors()), "users": len(world.drivers)},
        "wall_seconds": round(wall, 3),
        "kpis": kpis.result(),
    }


def kpi_table(result: dict[str, Any]) -> Table:
    """The KPIs of a ``run_model`` result as a table for people."""
    k, net, sc = result["kpis"], result["network"], result["scenario"]
    table = Table(title=f"{sc['name']} (seed {sc['seed']}): {net['stations']} stations, "
                        f"{net['connectors']} connectors, {net['users']} users; "
                        f"{sc['duration_s'] / 3600:g} h simulated in {result['wall_seconds']:.1f} s")
    table.add_column("KPI")
    table.add_column("value", justify="right")
    sessions = k["sessions"]
    rows = [
        ("sessions started / completed", f"{sessions['started']:,} / {sessions['completed']:,}"),
        ("  AC / DC (completed)", f"{sessions['by_kind']['AC']:,} / {sessions['by_kind']['DC']:,}"),
        ("energy delivered", f"{k['energy_delivered_kwh']:,.1f} kWh"),
        ("arrivals / balks / gave up", f"{k['arrivals']:,} / {k['balks']:,} / {k['gave_up']:,}"),
        ("wait p50 / p95", f"{k['waits_s']['p50'] / 60:.1f} / {k['waits_s']['p95'] / 60:.1f} min"),
        ("peak concurrent sessions", f"{k['peak_concurrent_sessions']:,}"),
        ("peak hourly utilisation", f"{max(k['utilisation_by_hour'].values(), default=0):.0%}"),
        ("faults / sessions ended by faults", f"{k['faults']:,} / {k['sessions_ended_by_fault']:,}"),
        ("maintenance windows", f"{k['maintenance_windows']:,}"),
        ("apps opened / of them browses", f"{k['apps_opened']:,} / {k['browses']:,}"),
        ("peak apps open (drivers and browsers)", f"{k['peak_apps_open']:,}"),
        ("meter samples", f"{k['meter_samples']:,}"),
    ]
    for kind in ("AC", "DC"):
        energy, duration = k["energy_per_session_kwh"][kind], k["session_duration_min"][kind]
        if energy["count"]:
            rows.append((f"{kind} energy per session p10/p50/p90",
                         f"{energy['p10']:.1f} / {energy['p50']:.1f} / {energy['p90']:.1f} kWh"))
            rows.append((f"{kind} session duration p10/p50/p90",
                         f"{duration['p10']:.0f} / {duration['p50']:.0f} / {duration['p90']:.0f} min"))
    for name, value in rows:
        table.add_row(name, value)
    return table
