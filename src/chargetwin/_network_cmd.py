"""``chargetwin network export SCENARIO``: what a target's backend must know before the twin can drive it.

The twin's charge points connect with their ids, its apps log in as its
test users and start charging on its connectors: a team's staging backend
must be seeded with the same stations, charge points, connectors, tariffs
and users. This writes them in documented files (docs/network-export.md)
that a seeder can load: one JSON document, or four CSV tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._overrides import with_overrides
from ._service_options import RESERVED_USERS
from .twin.model.config import Scenario
from .twin.scenario import ScenarioError, load_scenario

__all__ = ["EXPORT_FORMAT", "TABLES", "add_network_parser", "network_tables"]

EXPORT_FORMAT = 1
"""The version of the export's layout (docs/network-export.md); bumped when a field changes meaning."""

TABLES: dict[str, tuple[str, ...]] = {
    "stations": ("station_id", "station_name", "address", "latitude", "longitude", "tariff_per_kwh", "currency"),
    "chargers": ("charger_id", "station_id", "kind", "max_power_kw", "phases", "voltage", "connectors"),
    "connectors": ("charger_id", "connector_id"),
    "users": ("user_id", "email", "name", "id_tag", "password"),
}
"""Each CSV table's columns, in order: the JSON document uses the same names."""


def add_network_parser(commands: Any) -> None:
    network = commands.add_parser(
        "network", help="the stations, charge points, tariffs and users a target must know",
        description="What a team's backend must be seeded with before the twin can drive it.")
    actions = network.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export", help="write a scenario's network and test users for a seeder",
        description="Write the scenario's stations, charge points, connectors, tariffs and test users: one JSON "
                    "document (to standard output, or --out FILE) or four CSV tables (stations.csv, "
                    "chargers.csv, connectors.csv, users.csv in the folder --out). docs/network-export.md "
                    "describes every field.",
        epilog="Exit codes: 0 written, 2 bad input or nowhere to write.")
    export.add_argument("scenario", metavar="SCENARIO", help="scenario file or bundled name")
    export.add_argument("--format", choices=("json", "csv"), default="json", help="json (default) or csv")
    export.add_argument("--out", type=Path, metavar="PATH",
                        help="json: the file (default: standard output); csv: the folder (required)")
    export.add_argument("--seed", type=int, help="override the scenario's seed (a generated network depends on it)")
    export.set_defaults(run=_run, duration=None)


def network_tables(scenario: Scenario) -> dict[str, list[dict[str, Any]]]:
    """The rows of each table of :data:`TABLES` for ``scenario``'s network and drivers."""
    from .twin.model.world import World
    from .twin.services.users import test_users

    world = World(scenario, reserved_users=RESERVED_USERS)
    stations = [s.spec for s in world.network.stations]
    return {
        "stations": [{"station_id": s.id, "station_name": s.name, "address": s.address, "latitude": s.latitude,
                      "longitude": s.longitude, "tariff_per_kwh": s.tariff_per_kwh, "currency": s.currency}
                     for s in stations],
        "chargers": [{"charger_id": cp.id, "station_id": s.id, "kind": cp.kind, "max_power_kw": cp.max_power_kw,
                      "phases": cp.phases, "voltage": cp.voltage, "connectors": cp.connectors}
                     for s in stations for cp in s.charge_points],
        "connectors": [{"charger_id": cp.id, "connector_id": n}
                       for s in stations for cp in s.charge_points for n in range(1, cp.connectors + 1)],
        "users": [{"user_id": u.user_id, "email": u.email, "name": u.name, "id_tag": u.id_tag,
                   "password": u.password}
                  for u in test_users((d.user_id, d.id_tag) for d in world.drivers)],
    }


def _document(scenario: Scenario, tables: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The JSON layout: stations hold their chargers, chargers their connector ids."""
    chargers_of: dict[str, list[dict[str, Any]]] = {}
    for charger in tables["chargers"]:
        entry = {k: v for k, v in charger.items() if k not in ("station_id", "connectors")}
        entry["connectors"] = list(range(1, charger["connectors"] + 1))
        chargers_of.setdefault(charger["station_id"], []).append(entry)
    return {
        "format": EXPORT_FORMAT,
        "scenario": scenario.name,
        "seed": scenario.run.seed,
        "stations": [station | {"chargers": chargers_of.get(station["station_id"], [])}
                     for station in tables["stations"]],
        "users": tables["users"],
    }


def _run(args: argparse.Namespace) -> int:
    try:
        scenario = with_overrides(load_scenario(args.scenario), args)
    except (ScenarioError, ValueError) as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    if args.format == "csv" and args.out is None:
        print("chargetwin: --format csv writes four files: name their folder with --out DIR", file=sys.stderr)
        return 2
    tables = network_tables(scenario)
    try:
        if args.format == "csv":
            written = list(_write_csv(tables, args.out))
        elif args.out is None:
            json.dump(_document(scenario, tables), sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
            written = []
        else:
            if args.out.is_dir():
                raise IsADirectoryError(f"{args.out} is a folder: --format json writes one file")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(_document(scenario, tables), indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
            written = [args.out]
    except BrokenPipeError:  # the reader had enough (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:
        print(f"chargetwin: cannot write the export: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{len(rows):,} {name}" for name, rows in tables.items())
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    print(f"{scenario.name}: {counts}", file=sys.stderr)
    return 0


def _write_csv(tables: dict[str, list[dict[str, Any]]], folder: Path) -> Iterator[Path]:
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file: --format csv writes four files into a folder")
    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in TABLES.items():
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            writer.writerows(tables[name])
        yield path
