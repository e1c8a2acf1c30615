"""Validation throughput on one core: meter_value session updates and charger_status_update.

A benchmark, not a test: it reports figures and asserts nothing. Run it with
``nox -s bench`` (or ``python benchmarks/bench_validation.py``). Each figure is
the median of several rounds over a batch of distinct messages; the
alternatives (with or without JSON parsing, and the pure-Python reference
implementation ``jsonschema``) are measured in the same run, so that their
ratios hold even on a noisy machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chargetwin.contracts import default_validator
from chargetwin.contracts.durations import format_duration
from chargetwin.contracts.schemas import CONTRACTS_DIR, schema_documents
from chargetwin.contracts.status import STATUS_LABELS, count_classes, display_for, station_status

TARGET = 50_000
STATUSES = ("Available", "Charging", "Preparing", "Finishing", "Unavailable", "Faulted", "SuspendedEV")


def _seed(line: int) -> dict[str, Any]:
    for text in (CONTRACTS_DIR / "examples" / "seed.ndjson").read_text(encoding="utf-8").splitlines():
        record = json.loads(text)
        if record["source"]["line"] == line:
            return dict(record["message"])
    raise LookupError(line)


def meter_values(count: int) -> list[dict[str, Any]]:
    """Distinct, conforming meter_value updates of a session progressing minute by minute."""
    base = _seed(553)
    messages = []
    for i in range(count):
        message = copy.deepcopy(base)
        data = message["data"]
        wh = 1_000 + 370 * i
        kwh = round(wh / 1000, 2)
        remaining, duration = max(0, 7200 - 60 * i), 60 * i
        data.update(meter_value=wh, energy_consumed=kwh, energy_delivered=kwh, cost=round(kwh * 7.41, 2),
                    time_remaining=remaining, time_remaining_display=format_duration(remaining),
                    charging_duration=duration, charging_duration_display=format_duration(duration),
                    charge_percentage=min(100, 20 + i % 80))
        message["session_id"] = 1 + i % 500
        messages.append(message)
    return messages


def charger_status_updates(count: int) -> list[dict[str, Any]]:
    """Distinct, conforming charger_status_update messages of stations of 2 x 2 connectors."""
    base = _seed(614)
    messages = []
    for i in range(count):
        statuses = [STATUSES[(i * 7 + k * 3) % len(STATUSES)] for k in range(4)]
        counts = count_classes(statuses)
        status = station_status(available=counts["available"], total=4, unavailable=counts["unavailable"])
        message = copy.deepcopy(base)
        message.update(station_id=f"STATION{i % 150:03d}", charger_id=f"CP{i % 600:03d}", status=status)
        message["data"].update(
            available_connectors=counts["available"], connectors_in_use=counts["in_use"],
            connectors_unavailable=counts["unavailable"], total_connectors=4,
            display=display_for(status, available=counts["available"], total=4),
            connector_status=[{"connector_id": k + 1, "status": s} for k, s in enumerate(statuses[:2])],
            station_status=STATUS_LABELS[status])
        messages.append(message)
    return messages


def _rate(run: Callable[[], int], rounds: int) -> tuple[float, list[float]]:
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        done = run()
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates), rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the median is reported (default 7)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says

    validator = default_validator()
    workloads = {"meter_value": meter_values(args.messages),
                 "charger_status_update": charger_status_updates(args.messages)}
    for name, messages in workloads.items():
        bad = [v for m in messages for v in validator.validate(m, channel="websocket", direction="receive")]
        if bad:
            print(f"benchmark input {name} does not conform: {bad[0]}", file=sys.stderr)
            return 2

    figures: dict[str, Any] = {"target_messages_per_s": TARGET, "cpu_count": os.cpu_count(), "results": {}}
    print(f"validation throughput, one core, median of {args.rounds} rounds of {args.messages} messages")
    print(f"{'workload':<24}{'variant':<40}{'median msg/s':>14}{'min':>10}{'max':>10}")
    for name, messages in workloads.items():
        texts = [json.dumps(m) for m in messages]
        variants: dict[str, Callable[[], int]] = {
            "validate (schema + semantic rules)": lambda ms=messages: _validate_all(validator, ms),
            "json.loads + validate": lambda ts=texts: _parse_and_validate_all(validator, ts),
        }
        reference = _reference(name, messages[: max(1, args.messages // 20)])
        if reference is not None:
            variants["pure-Python jsonschema, schema only"] = reference
        results = {}
        for variant, run in variants.items():
            median, rates = _rate(run, args.rounds)
            results[variant] = {"median": round(median), "min": round(min(rates)), "max": round(max(rates))}
            print(f"{name:<24}{variant:<40}{median:>14,.0f}{min(rates):>10,.0f}{max(rates):>10,.0f}")
        figures["results"][name] = results
        met = results["validate (schema + semantic rules)"]["median"] >= TARGET
        print(f"{'':<24}target {TARGET:,} msg/s with semantic rules: {'met' if met else 'NOT met'}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


def _validate_all(validator: Any, messages: list[dict[str, Any]]) -> int:
    validate = validator.validate
    for message in messages:
        validate(message, channel="websocket", direction="receive")
    return len(messages)


def _parse_and_validate_all(validator: Any, texts: list[str]) -> int:
    validate, loads = validator.validate, json.loads
    for text in texts:
        validate(loads(text), channel="websocket", direction="receive")
    return len(texts)


def _reference(name: str, messages: list[dict[str, Any]]) -> Callable[[], int] | None:
    try:
        import jsonschema
        from referencing import Registry, Resource
    except ImportError:  # the test extra is not installed: skip the comparison
        return None
    documents = schema_documents()
    registry: Any = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in documents.values())
    schema = documents["messages/session_update/meter_value" if name == "meter_value" else f"messages/{name}"]
    reference = jsonschema.Draft202012Validator(schema, registry=registry)

    def run() -> int:
        for message in messages:
            reference.is_valid(message)
        return len(messages)
    return run


if __name__ == "__main__":
    sys.exit(main())
