"""One self-contained HTML file from a run's results: :func:`render_report` and :func:`write_report`.

The page has no outside reference at all (styles, plots and the optional
script are inline), so it opens from disk and from a CI artifact alike.
Call order: :func:`write_report` reads ``results.json`` (and the earlier
files to compare with) through :mod:`._load`, :func:`render_report` checks
the documents, builds the view of each section (plain dataclasses of text)
and renders ``templates/report.html.j2`` with Jinja2, autoescape on.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

import jinja2

from ._appendix import SpecSection, appendix
from ._city import City, city
from ._coverage import STATE_WORDS, Coverage, coverage, state_class
from ._format import MISSING, duration, is_number, number
from ._load import check_results, read_results
from ._load import results_path as _results_file
from ._plots import Plot, draw
from ._tables import CheckRow, Table, capacity_tables, check_rows, key_figures, latency_table, model_tables
from ._violations import EXAMPLES_PER_RULE, Violations, violations
from .exceptions import ReportWriteError
from .trends import Comparison, run_label
from .trends import compare as compare_runs

__all__ = ["REPORT_NAME", "Header", "Report", "build_report", "render_report", "write_report"]

REPORT_NAME: Final = "report.html"

TEMPLATES: Final = Path(__file__).parent / "templates"

TRACE_NAME: Final = "trace.ndjson"


@dataclass(frozen=True, slots=True)
class Header:
    """The top of the report: the verdict with its counts, what ran, and how to run it again."""

    verdict: str
    headline: str
    counts: tuple[str, ...]
    caveats: tuple[str, ...]
    thresholds_failed: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]
    command: str | None
    key_figures: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One case of ``chargetwin check``: its phase, name, result (pass, fail or warning) and what came."""

    phase: str
    name: str
    result: str
    message: str
    spec: str


@dataclass(frozen=True, slots=True)
class WarningRow:
    """A warning rule: how many, and the first example's words and trace line."""

    rule: str
    count: int
    message: str
    spec: str
    line: int


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the template shows, section by section, as text and trusted markup."""

    title: str
    generator: str
    source: str | None
    trace: str
    header: Header
    coverage: Coverage
    violations: Violations
    checks: tuple[CheckRow, ...]
    latency: Table | None
    latency_plots: tuple[Plot, ...]
    city: City
    city_plots: tuple[Plot, ...]
    model: tuple[Table, ...]
    capacity: tuple[Table, ...]
    capacity_plots: tuple[Plot, ...]
    comparisons: tuple[Comparison, ...]
    appendix: tuple[SpecSection, ...]
    state_words: Mapping[str, str]
    examples_per_rule: int = EXAMPLES_PER_RULE
    cases: tuple[CaseRow, ...] = ()
    warnings: tuple[WarningRow, ...] = ()

    def state_class(self, state: str) -> str:
        return state_class(state)

    def violations_of(self, check: str) -> str | None:
        """The anchor of the first (most frequent) rule group of ``check``, if it has violations listed."""
        return next((g.anchor for g in self.violations.groups if g.check == check), None)


def render_report(results: Mapping[str, Any], *, compare: Sequence[Mapping[str, Any]] = (),
                  source: str | None = None, spec_url: str | None = None,
                  compare_sources: Sequence[str] = ()) -> str:
    """The HTML report of ``results`` (a results.json document), trends against the earlier ``compare``.

    ``source`` names the results file (shown, and used in error messages);
    ``compare_sources`` names the earlier files, in the order of ``compare``;
    ``spec_url``, the base URL of the published protocol document, adds an
    outbound link to every cited section. Raises a
    :class:`~.exceptions.ResultsError` when a document is not a results
    document this version reads.
    """
    report = build_report(results, compare=compare, source=source, spec_url=spec_url,
                          compare_sources=compare_sources)
    return _environment().get_template("report.html.j2").render(report=report)


def build_report(results: Mapping[str, Any], *, compare: Sequence[Mapping[str, Any]] = (),
                 source: str | None = None, spec_url: str | None = None,
                 compare_sources: Sequence[str] = ()) -> Report:
    """The view of every section (what :func:`render_report` renders); checks the documents first."""
    check_results(results, source=source or "results")
    labels = [*compare_sources, *(f"earlier results {i + 1}" for i in range(len(compare_sources), len(compare)))]
    for earlier, label in zip(compare, labels, strict=False):
        check_results(earlier, source=label)
    metrics: Mapping[str, Any] = results.get("metrics") or {}
    scenario: Mapping[str, Any] = results.get("scenario") or {}
    city_doc = metrics.get("city")
    found = violations(results["checks"], spec_url=spec_url)
    checks = check_rows(results["checks"], spec_url=spec_url)
    cover = coverage(results.get("coverage"), spec_url=spec_url)
    return Report(
        title=f"{results['verdict'].upper()}: {scenario.get('name', 'run')} (chargetwin conformance report)",
        generator=_version(), source=source, trace=_trace_name(source),
        header=_header(results, cover, found),
        coverage=cover, violations=found, checks=checks,
        latency=latency_table(metrics.get("latency_ms"), metrics.get("latency_descriptions")),
        latency_plots=(draw("latency_over_time", metrics.get("latency_over_time"),
                            start=_scenario_start(results)),
                       draw("latency_histograms", metrics.get("latency_histograms"))),
        city=city(city_doc, duration_s=scenario.get("duration_s")),
        city_plots=tuple(draw(name, city_doc) for name in ("city_sessions", "city_status_mix", "city_queue",
                                                            "city_energy", "city_timeline")) if city_doc else (),
        model=model_tables(metrics.get("model")),
        capacity=capacity_tables(metrics),
        capacity_plots=(draw("throughput", metrics.get("throughput")),),
        comparisons=tuple(compare_runs(results, earlier, label=_compare_label(earlier, label))
                          for earlier, label in zip(compare, labels, strict=False)),
        appendix=appendix(groups=found.groups, checks=checks, coverage=cover, spec_url=spec_url),
        state_words=STATE_WORDS,
        cases=_cases(results.get("cases")),
        warnings=_warnings(results.get("warnings")),
    )


def _cases(raw: Any) -> tuple[CaseRow, ...]:
    """The cases of a check's results (none in a run's)."""
    if not isinstance(raw, list):
        return ()
    return tuple(CaseRow(str(c.get("phase", "")), str(c.get("name", "")),
                         "pass" if c.get("passed") else "warning" if c.get("warning") else "fail",
                         str(c.get("message", "")), str(c.get("spec", "")))
                 for c in raw if isinstance(c, dict))


def _warnings(raw: Any) -> tuple[WarningRow, ...]:
    """One row per warning rule, with its first example."""
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), dict):
        return ()
    examples = [e for e in raw.get("examples") or () if isinstance(e, dict)]
    rows = []
    for rule, count in raw["rules"].items():
        first = next((e for e in examples if e.get("rule") == rule), {})
        rows.append(WarningRow(str(rule), int(count) if isinstance(count, int) else 0, str(first.get("message", "")),
                               str(first.get("spec", "")), int(first.get("line") or 0)))
    return tuple(rows)


def write_report(results_path: Path, out: Path | None = None, *, compare: Sequence[Path] = (),
                 spec_url: str | None = None) -> Path:
    """Read ``results_path`` (a results.json, or a run's folder), write its report, return the report's path.

    ``out`` defaults to ``report.html`` beside the results; an existing
    folder gets ``report.html`` inside. ``compare`` are earlier results
    files (or run folders), oldest first. Raises
    :class:`~.exceptions.ResultsError` for a results file that cannot be
    used and :class:`~.exceptions.ReportWriteError` when the report cannot
    be written.
    """
    file = _results_file(results_path)
    results = read_results(file)
    earlier_files = [_results_file(path) for path in compare]
    earlier = [read_results(path) for path in earlier_files]
    html = render_report(results, compare=earlier, source=str(file), spec_url=spec_url,
                         compare_sources=[str(path) for path in earlier_files])
    target = out if out is not None else file.with_name(REPORT_NAME)
    if target.is_dir():
        target = target / REPORT_NAME
    _write(target, html)
    return target


def _scenario_start(results: Mapping[str, Any]) -> str | None:
    """The simulated start of the run (ISO), for clock times on a plot's axis; None in older results files."""
    scenario = results.get("scenario")
    start = scenario.get("start") if isinstance(scenario, Mapping) else None
    return start if isinstance(start, str) else None


def _write(target: Path, html: str) -> None:
    """Write through a temporary file beside ``target``: a reader never sees half a report.

    The file is created with ``open`` (not ``mkstemp``), so the user's umask
    applies: a report is for sharing, not private.
    """
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            temporary.write_text(html, encoding="utf-8")
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise ReportWriteError(f"{target}: cannot write the report ({error.strerror or error}); check that the "
                               f"folder exists and is writable, or pass another output path.") from None


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _version() -> str:
    try:
        return f"chargetwin {version('chargetwin')}"
    except PackageNotFoundError:
        return "chargetwin"


def _trace_name(source: str | None) -> str:
    if source is None:
        return f"the run's trace ({TRACE_NAME})"
    return f"the run's trace ({Path(source).with_name(TRACE_NAME)})"


def _compare_label(earlier: Mapping[str, Any], source: str) -> str:
    return f"{run_label(earlier)} ({source})"


def _header(results: Mapping[str, Any], cover: Coverage, found: Violations) -> Header:
    verdict = results["verdict"]
    checks = results["checks"]
    failed = [c["name"] for c in checks if c["violations"]] + [str(c) for c in results.get("failed_cases") or ()]
    thresholds = tuple(str(t) for t in results.get("thresholds_failed") or ())
    failed_checks = [c["name"] for c in checks if c["violations"]]
    counts = [f"{len(failed_checks)} of {len(checks)} checks failed" if failed_checks
              else f"all {len(checks)} checks passed",
              f"{number(found.counted)} violation{'' if found.counted == 1 else 's'}"
              + (f" ({number(found.kept)} kept in the results file)" if found.kept < found.counted else ""),
              f"{len(thresholds)} threshold{'' if len(thresholds) == 1 else 's'} failed" if thresholds
              else "every threshold held",
              f"{number((results.get('metrics') or {}).get('messages_checked'))} messages checked"]
    if isinstance(results.get("cases"), list):
        cases = results["cases"]
        unmet = len(results.get("failed_cases") or ())
        counts.insert(0, f"{len(cases) - unmet} of {len(cases)} cases met")
    if isinstance(results.get("warnings"), dict):
        counts.append(f"{number(results['warnings'].get('count'))} warnings"
                      + (" (--strict: they fail)" if results.get("strict") else ""))
    return Header(verdict, _headline(verdict, failed, thresholds), tuple(counts),
                  _incomplete(results) + _caveats(cover), thresholds, _facts(results),
                  _command(results.get("scenario") or {}), key_figures(results))


def _incomplete(results: Mapping[str, Any]) -> tuple[str, ...]:
    """A run stopped early: everything below is what it saw before it stopped."""
    if results.get("complete", True) is not False:
        return ()
    why = results.get("stopped") or "no reason recorded"
    return (f"INCOMPLETE RUN: it stopped early ({why}); every figure and verdict below covers only what it saw "
            "before it stopped",)


def _headline(verdict: str, failed: Sequence[str], thresholds: Sequence[str]) -> str:
    if verdict == "pass":
        return "PASS: the system spoke the protocol in every message and check of this run"
    reasons = ([f"violations or cases not met: {', '.join(failed)}"] if failed else []) \
        + [f"threshold: {t}" for t in thresholds]
    return "FAIL: " + ("; ".join(reasons) or "the results file says so, with no failed check or threshold")


def _caveats(cover: Coverage) -> tuple[str, ...]:
    if not cover.present:
        return ("coverage of the spec is not in this results file: what the run did not exercise is unknown",)
    parts = [f"{cover.count(s)} {s}" for s in cover.states if s != "valid" and cover.count(s)]
    text = (f"coverage: {cover.count('valid')} of {cover.items} spec items seen and valid"
            + (f"; {', '.join(parts)}" if parts else ""))
    unexercised = cover.count("never seen") + cover.count("not observed")
    if unexercised:
        text += f" — this run says nothing about the {unexercised} items it did not exercise"
    return (text,)


_TARGET_ROLES = ("backend", "gateway", "redis", "cms", "ocpp")
"""What a check's results name of its target, in the order of ``chargetwin check``'s options."""


def _is_check(scenario: Mapping[str, Any]) -> bool:
    return "backend" in scenario and "gateway" in scenario and "seed" not in scenario


def _facts(results: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    scenario: Mapping[str, Any] = results.get("scenario") or {}
    metrics: Mapping[str, Any] = results.get("metrics") or {}
    versions: Mapping[str, Any] = results.get("versions") or {}
    if _is_check(scenario):  # chargetwin check: the target, not a scenario
        return (("check of", str(scenario.get("name", MISSING))),
                *((role, str(scenario[role])) for role in _TARGET_ROLES if scenario.get(role)),
                ("network", str(scenario.get("network", MISSING))),
                ("started", str(scenario.get("start", MISSING))),
                ("wall time", duration(metrics.get("wall_seconds"))),
                ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or MISSING))
    city_doc = metrics.get("city")
    speed = scenario.get("speed")
    return (("scenario", str(scenario.get("name", MISSING))),
            ("scenario file", str(scenario.get("source", MISSING))),
            ("seed", str(scenario.get("seed", MISSING))),
            ("speed", f"{number(speed)} x real time" if is_number(speed) else MISSING),
            ("simulated duration", duration(scenario.get("duration_s"))),
            ("simulated start", str(city_doc.get("start", MISSING)) if isinstance(city_doc, Mapping) else MISSING),
            ("wall time", duration(metrics.get("wall_seconds"))),
            ("versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or MISSING))


def _command(scenario: Mapping[str, Any]) -> str | None:
    """``chargetwin run <scenario source> --seed N --speed S --duration D``: the command that runs it again
    (the duration too, since ``--duration`` may have cut the scenario's)."""
    if _is_check(scenario):
        options = [f"--{role} {shlex.quote(str(scenario[role]))}" for role in _TARGET_ROLES if scenario.get(role)]
        network = f" --network {shlex.quote(str(scenario['network']))}" if scenario.get("network") else ""
        return f"chargetwin check {' '.join(options)}{network}"
    where = scenario.get("source") or scenario.get("name")
    if not where:
        return None
    parts = ["chargetwin", "run", shlex.quote(str(where))]
    if scenario.get("seed") is not None:
        parts += ["--seed", shlex.quote(str(scenario["seed"]))]
    if is_number(scenario.get("speed")):
        parts += ["--speed", f"{scenario['speed']:g}"]
    if is_number(scenario.get("duration_s")):
        parts += ["--duration", f"{scenario['duration_s']:g}"]
    return " ".join(parts)
