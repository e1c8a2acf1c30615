"""``chargetwin model``: KPIs of bundled scenarios, overrides, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chargetwin._model_cmd import run_model
from chargetwin.cli import main
from chargetwin.twin.scenario import bundled_scenarios, load_scenario


def test_smoke_prints_a_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deep" / "kpis.json"
    assert main(["model", "smoke", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "sessions started / completed" in table and "smoke (seed" in table
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["format"] == 1 and result["scenario"]["name"] == "smoke"
    assert result["kpis"]["sessions"]["started"] > 0
    assert result["kpis"]["meter_samples"] > 0


def test_seed_and_duration_overrides(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["model", "smoke", "-q", "--seed", "1", "--duration", "1h", "--out", str(first)]) == 0
    assert main(["model", "smoke", "-q", "--seed", "2", "--duration", "1h", "--out", str(second)]) == 0
    a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (first, second))
    assert a["scenario"]["duration_s"] == 3600 and a["scenario"]["seed"] == 1
    assert a["kpis"] != b["kpis"]


@pytest.mark.parametrize(("args", "message"), [
    (["model", "no-such-scenario"], "no-such-scenario"),
    (["model", "smoke", "--duration", "soon"], "--duration"),
    (["model", "smoke", "--duration", "0s"], "longer than 0 s"),
])
def test_bad_input_exits_2_without_a_traceback(args: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_malformed_scenario_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\n[run]\nstart = 2025-01-29T16:00:00+02:00\nduration = "-5m"\n',
                   encoding="utf-8")
    assert main(["model", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "run.duration" in err


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_every_bundled_scenario_runs_its_first_half_hour(name: str) -> None:
    from dataclasses import replace

    scenario = load_scenario(name)
    scenario = replace(scenario, run=replace(scenario.run, duration=min(scenario.run.duration, 1800.0)))
    result = run_model(scenario)
    assert result["network"]["connectors"] > 0


def test_the_24h_city_is_plausible() -> None:
    """city-24h against published figures (sources in the scenario's comments)."""
    kpis: dict[str, Any] = run_model(load_scenario("city-24h"))["kpis"]
    assert kpis["sessions"]["started"] >= 20_000
    assert 8 <= kpis["energy_per_session_kwh"]["AC"]["mean"] <= 15
    assert 60 <= kpis["plugged_duration_min"]["AC"]["mean"] <= 300  # a few hours
    assert 20 <= kpis["session_duration_min"]["DC"]["mean"] <= 45
    assert kpis["balk_share"] <= 0.15
