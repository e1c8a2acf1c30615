"""The bundled contract files: JSON Schemas, close codes, API documents.

Everything is read from the package's own directory, once, and kept.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .catalog import SCHEMA_BASE
from .exceptions import ContractLoadError

__all__ = ["CONTRACTS_DIR", "SCHEMAS_DIR", "close_codes", "load_json", "schema_documents"]

CONTRACTS_DIR = Path(__file__).resolve().parent
SCHEMAS_DIR = CONTRACTS_DIR / "schemas"
_SUFFIX = ".schema.json"


def load_json(path: Path) -> Any:
    """Parse a bundled JSON file, or raise :class:`ContractLoadError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ContractLoadError(
            f"cannot read contract file {path}: {error}; reinstall chargetwin or restore the file"
        ) from error


@cache
def schema_documents() -> dict[str, dict[str, Any]]:
    """Every schema by name (its path under ``schemas/`` without ``.schema.json``).

    Checks that each ``$id`` is where the file lies, so that relative
    ``$ref`` s resolve the same from the files and from the ids.
    """
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(SCHEMAS_DIR.rglob("*" + _SUFFIX)):
        relative = path.relative_to(SCHEMAS_DIR).as_posix()
        document = load_json(path)
        if document.get("$id") != SCHEMA_BASE + relative:
            raise ContractLoadError(
                f"{path}: $id is {document.get('$id')!r} but must be {SCHEMA_BASE + relative!r}"
            )
        documents[relative[: -len(_SUFFIX)]] = document
    if not documents:
        raise ContractLoadError(f"no schemas found in {SCHEMAS_DIR}; reinstall chargetwin")
    return documents


@cache
def close_codes() -> dict[int, frozenset[str] | None]:
    """Close codes the gateway may send, each with its allowed reasons (None: any)."""
    allowed: dict[int, set[str] | None] = {}
    for entry in load_json(CONTRACTS_DIR / "close-codes.json")["codes"]:
        code, reason = entry["code"], entry["reason"]
        if reason is None:
            allowed[code] = None
        else:
            reasons = allowed.setdefault(code, set())
            if reasons is not None:
                reasons.add(reason)
    return {code: None if r is None else frozenset(r) for code, r in allowed.items()}
