"""Reference services started one by one, each its own process, as a team would start stand-ins."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chargetwin.harness.conformance import reference

SECRET = "stand-in-tests-secret-of-more-than-thirty-two-bytes-length"
INTERNAL = "stand-in-tests-internal-token"


def standin_env(fault: str | None = None) -> dict[str, str]:
    return reference.standin_env(jwt_secret=SECRET, internal_token=INTERNAL, fault=fault)


@contextmanager
def standins(folder: Path, *, fault: str | None = None, speed: float = 30,
             charge_points: str = "simulated") -> Iterator[dict[str, Any]]:
    """``chargetwin backend``, ``cms`` and ``gateway`` on free ports: their ports, processes and URLs.

    ``charge_points="none"``: the CMS without its own (the test brings them, as ``check --ocpp`` does).
    """
    try:
        with reference.reference_services(folder, env=standin_env(fault), charge_points=charge_points,
                                          speed=speed) as started:
            yield {"ports": started.ports, "services": started.services, "backend": started.backend,
                   "gateway": started.gateway, "redis": started.redis, "ocpp": started.ocpp,
                   "cms": started.cms}
    except reference.StandInError as error:
        pytest.fail(str(error))
