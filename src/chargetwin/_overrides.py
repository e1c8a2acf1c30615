"""Command-line overrides of a scenario's run settings, shared by ``model`` and ``run``."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from .twin.model.config import Scenario
from .twin.scenario.durations import parse_duration

__all__ = ["add_override_options", "with_overrides"]


def add_override_options(parser: Any) -> None:
    """``--seed`` and ``--duration`` on ``parser``."""
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--duration", metavar="DURATION", help="override the run's duration (e.g. 2h, 90m, 3600)")


def with_overrides(scenario: Scenario, args: argparse.Namespace) -> Scenario:
    """``scenario`` with ``args.seed`` and ``args.duration`` applied; ValueError naming the bad option."""
    run = scenario.run
    if args.seed is not None:
        run = replace(run, seed=args.seed)
    if args.duration is not None:
        try:
            duration = parse_duration(args.duration)
        except ValueError as error:
            raise ValueError(f"--duration: {error}") from None
        if duration <= 0:
            raise ValueError("--duration: must be longer than 0 s")
        run = replace(run, duration=duration)
    return replace(scenario, run=run)
