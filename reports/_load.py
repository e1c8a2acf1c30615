"""Reading ``results.json`` (``docs/results-format.md``) with errors a person can act on.

:func:`read_results` reads a file; :func:`check_results` checks a document
already in memory (what :func:`~chargetwin.reports.render_report` is given).
Both check only what the report relies on: the keys it reads and their JSON
types. Missing optional parts (``coverage``, ``metrics.city``, ...) are not
errors: the report says they are not in the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from ._format import mapping
from .exceptions import (
    NotAResultsError,
    ResultsError,
    ResultsNotFoundError,
    ResultsSyntaxError,
    UnsupportedFormatError,
)

__all__ = ["RESULTS_NAME", "SUPPORTED_FORMATS", "check_results", "read_results", "results_path"]

SUPPORTED_FORMATS: Final = (1,)
"""The ``results_format`` versions this report reads."""

RESULTS_NAME: Final = "results.json"

_WRITTEN_BY: Final = "a results.json is what `chargetwin run SCENARIO --out DIR` writes into DIR"


def results_path(path: Path) -> Path:
    """``path`` itself, or ``path/results.json`` when ``path`` is a folder (a run's ``--out``)."""
    return path / RESULTS_NAME if path.is_dir() else path


def read_results(path: Path) -> dict[str, Any]:
    """The results document at ``path`` (a file, or a run's folder), checked by :func:`check_results`.

    Raises a :class:`~.exceptions.ResultsError` subclass whose message names
    the file, what was wrong and what to do.
    """
    file = results_path(path)
    source = str(file)
    document = _parse(_read_text(file, source), source)
    check_results(document, source=source)
    assert isinstance(document, dict)  # check_results refuses anything else
    return document


def _read_text(file: Path, source: str) -> str:
    if not file.exists():
        where = "the folder has no results.json" if file.name == RESULTS_NAME and file.parent.is_dir() \
            else "no such file"
        raise ResultsNotFoundError(f"{where}; {_WRITTEN_BY}. Check the path, or run the scenario first.",
                                   source=source)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ResultsError(f"cannot be read ({error.strerror or error}); check its permissions.",
                           source=source) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ResultsError(f"not UTF-8 text (byte {error.start} cannot be decoded); {_WRITTEN_BY}, in UTF-8.",
                           source=source) from None


def _parse(text: str, source: str) -> Any:
    if not text.strip():
        raise ResultsError("the file is empty: the run may have stopped before it wrote its results; "
                           "run the scenario again.", source=source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        hint = ("more than one JSON document: this looks like NDJSON (a trace?); give the run's results.json"
                if error.msg == "Extra data" else "the file was cut short or edited; run the scenario again")
        raise ResultsSyntaxError(f"not JSON ({error.msg}): {hint}.", source=source,
                                 line=error.lineno, column=error.colno) from None


def check_results(document: Any, *, source: str = "results") -> None:
    """Raise a :class:`~.exceptions.ResultsError` unless ``document`` is a results document this report reads."""
    if not isinstance(document, Mapping):
        raise NotAResultsError(f"the file holds {_kind(document)} (JSON), not an object; {_WRITTEN_BY}.",
                               source=source)
    _check_format(document, source)
    _check_top(document, source)
    checks = document["checks"]
    for index, check in enumerate(checks):
        _check_check(check, f"/checks/{index}", source)
    coverage = document.get("coverage")
    if coverage is not None:
        _check_coverage(coverage, source)


def _check_format(document: Mapping[str, Any], source: str) -> None:
    if "results_format" not in document:
        if "trace_format" in document:
            raise NotAResultsError("this is a trace record, not a run's results; give the results.json "
                                   "beside the trace.", source=source)
        keys = ", ".join(sorted(map(str, document))[:8]) or "none"
        raise NotAResultsError(f"no results_format key (keys found: {keys}): not a results file; {_WRITTEN_BY}.",
                               source=source)
    version = document["results_format"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise NotAResultsError(f"results_format must be a whole number, found {_kind(version)}.",
                               source=source, pointer="/results_format")
    if version not in SUPPORTED_FORMATS:
        wrote = mapping(document.get("versions")).get("chargetwin")
        who = f"chargetwin {wrote} wrote it" if wrote else "the file does not say which chargetwin wrote it"
        readable = ", ".join(map(str, SUPPORTED_FORMATS))
        raise UnsupportedFormatError(
            f"results_format {version} is not supported: this chargetwin reads format {readable}; {who}. "
            f"Render it with the chargetwin that wrote it, or upgrade.", source=source)


def _check_top(document: Mapping[str, Any], source: str) -> None:
    verdict = document.get("verdict")
    if verdict not in ("pass", "fail"):
        raise NotAResultsError(f'verdict must be "pass" or "fail", found {_kind(verdict)}.',
                               source=source, pointer="/verdict")
    _expect(document.get("checks"), list, "/checks", source, required=True)
    for key in ("failed_checks", "thresholds_failed"):
        _expect(document.get(key), list, f"/{key}", source)
    for key in ("metrics", "scenario", "versions"):
        _expect(document.get(key), Mapping, f"/{key}", source)
    metrics = document.get("metrics") or {}
    _expect(metrics.get("city"), Mapping, "/metrics/city", source)


def _check_check(check: Any, pointer: str, source: str) -> None:
    _expect(check, Mapping, pointer, source, required=True)
    _expect(check.get("name"), str, f"{pointer}/name", source, required=True)
    for key in ("checked", "violations"):
        value = check.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise NotAResultsError(f"must be a whole number, found {_kind(value)}.", source=source,
                                   pointer=f"{pointer}/{key}")
    examples = check.get("examples")
    _expect(examples, list, f"{pointer}/examples", source)
    for index, example in enumerate(examples or ()):
        _expect(example, Mapping, f"{pointer}/examples/{index}", source, required=True)


def _check_coverage(coverage: Any, source: str) -> None:
    _expect(coverage, Mapping, "/coverage", source, required=True)
    _expect(coverage.get("items"), list, "/coverage/items", source, required=True)
    for index, item in enumerate(coverage["items"]):
        pointer = f"/coverage/items/{index}"
        _expect(item, Mapping, pointer, source, required=True)
        _expect(item.get("key"), str, f"{pointer}/key", source, required=True)
        _expect(item.get("state"), str, f"{pointer}/state", source, required=True)


_NAMES: Final[dict[type, str]] = {list: "an array", Mapping: "an object", str: "a string"}


def _expect(value: Any, kind: type, pointer: str, source: str, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, kind):
        raise NotAResultsError(f"expected {_NAMES.get(kind, kind.__name__)}, found {_kind(value)}; "
                               f"{_WRITTEN_BY}.", source=source, pointer=pointer)


def _kind(value: Any) -> str:
    if value is None:
        return "null (or nothing)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"the string {shown!r}"
    return "an array" if isinstance(value, list) else "an object"
