"""The reference backend (the seed's "Laravel backend"): auth, start/stop, CMS events, Redis, SQLite.

::

    from chargetwin.twin.services.backend import Backend

    async with Backend(settings=settings, stations=stations, users=users, clock=clock, redis=redis) as backend:
        ...  # serving on backend.url

Layers (docs/stack.md, "The backend's session logic"): :mod:`.logic` is the
session state machine without I/O (:mod:`.messages` builds what it
publishes); :mod:`.store` (SQLite), :mod:`.publisher` (Redis) and
:mod:`.cms_client` (httpx) are its adapters, :mod:`.service` runs each step
through them, :mod:`.app` is the FastAPI layer and :mod:`.server` serves it.
"""

from __future__ import annotations

from .app import create_app, service_of
from .exceptions import ApiError, BackendError, BackendStartError, CmsError
from .logic import BackendLogic, Effects
from .server import Backend
from .service import BackendService

__all__ = [
    "ApiError",
    "Backend",
    "BackendError",
    "BackendLogic",
    "BackendService",
    "BackendStartError",
    "CmsError",
    "Effects",
    "create_app",
    "service_of",
]
