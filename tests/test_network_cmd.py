"""``chargetwin network export``: what a target must be seeded with, as JSON and as CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from chargetwin._network_cmd import TABLES
from chargetwin.cli import main
from chargetwin.twin.model.world import World
from chargetwin.twin.scenario import load_scenario


def test_json_holds_every_station_charger_connector_and_user_of_the_scenario(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["network", "export", "smoke"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    world = World(load_scenario("smoke"))
    assert document["format"] == 1 and document["scenario"] == "smoke"
    assert [s["station_id"] for s in document["stations"]] == [s.spec.id for s in world.network.stations]
    chargers = {c["charger_id"]: c for s in document["stations"] for c in s["chargers"]}
    assert set(chargers) == set(world.charge_points)
    for cp_id, cp in world.charge_points.items():
        assert chargers[cp_id]["connectors"] == [c.id for c in cp.connectors]
        assert chargers[cp_id]["max_power_kw"] == cp.spec.max_power_kw
    assert [(u["user_id"], u["id_tag"]) for u in document["users"]] == [(d.user_id, d.id_tag)
                                                                         for d in world.drivers]
    assert "smoke: 3 stations, 5 chargers, 8 connectors, 40 users" in err


def test_csv_writes_four_tables_that_agree_with_the_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["network", "export", "smoke", "--format", "csv", "--out", str(tmp_path / "seed")]) == 0
    assert main(["network", "export", "smoke", "--out", str(tmp_path / "smoke.json")]) == 0
    document = json.loads((tmp_path / "smoke.json").read_text())
    rows = {}
    for name, columns in TABLES.items():
        with (tmp_path / "seed" / f"{name}.csv").open(newline="", encoding="utf-8") as table:
            reader = csv.DictReader(table)
            assert tuple(reader.fieldnames or ()) == columns
            rows[name] = list(reader)
    assert [r["station_id"] for r in rows["stations"]] == [s["station_id"] for s in document["stations"]]
    assert [(r["charger_id"], int(r["connector_id"])) for r in rows["connectors"]] == [
        (c["charger_id"], n) for s in document["stations"] for c in s["chargers"] for n in c["connectors"]]
    assert rows["stations"][0]["address"] == document["stations"][0]["address"]  # a comma inside, quoted
    assert len(rows["users"]) == len(document["users"])


def test_a_generated_network_follows_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    def stations(*seed: str) -> list[str]:
        assert main(["network", "export", "city-evening-peak", *seed]) == 0
        return [s["station_name"] for s in json.loads(capsys.readouterr().out)["stations"]]

    assert stations() == stations()
    assert stations() != stations("--seed", "8")


@pytest.mark.parametrize(("args", "says"), [
    (["--format", "csv"], "--out DIR"),
    (["--out", "{tmp}"], "is a folder"),
    (["--format", "csv", "--out", "{tmp}/file.txt"], "is a file"),
])
def test_nowhere_to_write_exits_2_saying_why(args: list[str], says: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file.txt").write_text("x")
    assert main(["network", "export", "smoke", *[a.format(tmp=tmp_path) for a in args]]) == 2
    assert says in capsys.readouterr().err


def test_an_unknown_scenario_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["network", "export", "no-such-scenario"]) == 2
    assert "no-such-scenario" in capsys.readouterr().err
