"""The versions of chargetwin and of the components whose behaviour a run measures (results.json's ``versions``)."""

from __future__ import annotations

import platform
from contextlib import suppress
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from .. import __version__

__all__ = ["versions"]

MEASURED = ("ocpp", "websockets", "fastapi", "redis", "simpy", "hdrhistogram")


def versions() -> dict[str, str]:
    """chargetwin's version, Python's, and those of :data:`MEASURED` that are installed."""
    found = {"chargetwin": __version__, "python": platform.python_version()}
    for name in MEASURED:
        with suppress(PackageNotFoundError):
            found[name] = package_version(name)
    return found
