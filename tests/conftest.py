"""Fixtures shared by every test: the validator and the bundled example records."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from chargetwin.contracts import Validator, default_validator
from chargetwin.contracts.schemas import CONTRACTS_DIR

# CI runs the same examples every time (derandomized); people get fresh ones. No deadlines:
# a loaded machine must not turn a slow example into a failure.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.register_profile("thorough", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# No test writes serve's state into the user's own data folder (a test that means to names its own).
os.environ.setdefault("CHARGETWIN_STATE", tempfile.mkdtemp(prefix="chargetwin-test-state-"))

EXAMPLES = CONTRACTS_DIR / "examples"
SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_3059bdbbd16f9258.txt"


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def seed_message(line: int) -> Any:
    """The seed's JSON example that starts at ``line`` of the protocol document (a fresh copy)."""
    for record in read_ndjson(EXAMPLES / "seed.ndjson"):
        if record["source"]["line"] == line:
            return record["message"]
    raise LookupError(f"no seed example at line {line}")


@pytest.fixture(scope="session")
def validator() -> Validator:
    return default_validator()


@pytest.fixture(scope="session")
def seed_text() -> str:
    if not SEED.is_file():
        pytest.skip(f"the protocol document is not at {SEED} (it lies in ../shared beside the checkout)")
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def redis_server() -> Any:
    """A private, real redis-server for the tests of this process (never the machine's own)."""
    from chargetwin.twin.services.redis_server import start_redis

    server = start_redis()
    yield server
    server.stop()
