"""The backend's HTTP API (FastAPI): ``contracts/openapi/backend.openapi.yaml``.

A thin adapter: each route parses the JSON body, authenticates, and hands
over to :class:`~.service.BackendService`. Every error, FastAPI's own
included, leaves as the ``{success: false, error, message}`` envelope with
DESIGN ruling 6's status; a client never sees a traceback.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ...clock import Clock
from ...model.config import StationSpec
from .._body_limit import BodyLimit
from .._http import read_json
from ..appwatch import AppWatch
from ..faults import server_error
from ..settings import Settings
from ..users import TestUser
from .exceptions import ApiError
from .service import BackendService

__all__ = ["LOOPBACK_ORIGINS", "WEBAPP_DIR", "create_app", "service_of"]

log = logging.getLogger("chargetwin.backend")

WEBAPP_DIR = Path(__file__).with_name("webapp")
"""The reference web client (plain HTML, CSS and JavaScript), served at ``/app/``."""

LOOPBACK_ORIGINS = r"^https?://(localhost|127(\.\d{1,3}){3}|\[::1\])(:\d{1,5})?$"
"""Browser origins allowed by default (``Settings.cors_origins == "loopback"``): any port on this machine."""

_TITLES = {400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 413: "Body too large", 415: "Unsupported media type"}


def service_of(app: FastAPI) -> BackendService:
    """The :class:`BackendService` behind an app made by :func:`create_app`."""
    service: BackendService = app.state.backend
    return service


def create_app(*, settings: Settings, stations: Sequence[StationSpec], users: Sequence[TestUser], clock: Clock,
               redis: aioredis.Redis, cms: httpx.AsyncClient | None = None,
               routers: Sequence[APIRouter] = (), watch: AppWatch | None = None) -> FastAPI:
    """The backend as an ASGI app.

    Its lifespan opens the service (SQLite at ``settings.database``, the Redis
    keys) unless it is open already (:class:`~.server.Backend` opens it before
    serving). ``redis`` and a given ``cms`` client stay the caller's to close.
    ``routers``: more routes (the twin's control API); their OpenAPI document
    is served at ``/twin/openapi.json``.
    ``watch``: judges the apps' requests and serves ``GET /twin/violations``.
    """
    service = BackendService(settings=settings, stations=stations, users=users, clock=clock, redis=redis, cms=cms)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        opened_here = not service.is_open
        if opened_here:
            await service.open()
        try:
            yield
        finally:
            if opened_here:
                await service.close()

    app = FastAPI(title="chargetwin reference backend: the twin's control API", lifespan=lifespan,
                  openapi_url="/twin/openapi.json" if routers else None, docs_url=None, redoc_url=None)
    app.state.backend = service
    _install_error_handlers(app, bare=settings.inject_fault == "bare_error")
    if watch is not None:
        watch.install(app)
    _add_routes(app, service)
    for router in routers:
        app.include_router(router)
    # outside the routes and the app checks, inside CORS (a browser sees the 413's CORS headers)
    app.add_middleware(BodyLimit, limit_bytes=settings.max_body_bytes)
    _add_cors(app, settings.cors_origins)
    app.mount("/app", StaticFiles(directory=WEBAPP_DIR, html=True), name="webapp")
    return app


def _add_cors(app: FastAPI, origins: str) -> None:
    """Let a browser build of the app call the API from the configured origins (preflights included)."""
    allowed = [o.strip().rstrip("/") for o in origins.split(",") if o.strip()]
    if not allowed or allowed == ["none"]:
        return
    regex = LOOPBACK_ORIGINS if "loopback" in allowed else None
    app.add_middleware(CORSMiddleware, allow_origins=[o for o in allowed if o != "loopback"],
                       allow_origin_regex=regex, allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                       allow_headers=["Authorization", "Content-Type", "X-Twin-Token"], max_age=600)


def _add_routes(app: FastAPI, service: BackendService) -> None:
    @app.post("/api/auth/login", include_in_schema=False)
    async def login(request: Request) -> dict[str, Any]:
        return {"success": True, "data": await service.login(await _json_body(request))}

    @app.post("/api/charging/start", include_in_schema=False)
    async def start_charging(request: Request) -> dict[str, Any]:
        user_id = service.authenticate(request.headers.get("authorization"))
        body = await _json_body(request)
        if service.settings.inject_fault == "server_error":  # tests only (faults.py)
            server_error(body)
        return {"success": True, "data": await service.start(user_id, body)}

    @app.post("/api/charging/stop", include_in_schema=False)
    async def stop_charging(request: Request) -> dict[str, Any]:
        user_id = service.authenticate(request.headers.get("authorization"))
        return {"success": True, "data": await service.stop(user_id, await _json_body(request))}

    @app.post("/internal/cms/events", status_code=202, include_in_schema=False)
    async def cms_event(request: Request) -> Response:
        token = request.headers.get("x-internal-token") or ""
        if not hmac.compare_digest(token.encode(), service.settings.internal_token.encode()):
            raise ApiError(401, "Authentication required", "This endpoint is for the CMS: send X-Internal-Token.")
        await service.cms_event(await _json_body(request))
        return Response(status_code=202)

    @app.get("/app", include_in_schema=False)
    async def app_page() -> Response:
        return RedirectResponse("/app/")

    @app.get("/api/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        await service.ping()
        return {"success": True, "data": {"status": "ok", "service": "backend"}}


async def _json_body(request: Request) -> Any:
    """The JSON body (an empty body is ``{}``); 422 if it is not JSON; 400 if the client left before sending it."""
    try:
        raw = await request.body()
    except ClientDisconnect:  # nobody to answer; no traceback for it (a CMS stopping mid-request)
        raise ApiError(400, "Client disconnected", "The request body did not arrive in full.") from None
    if not raw.strip():
        return {}
    try:
        return read_json(raw)
    except ValueError:
        raise ApiError(422, "Invalid request body", "The body is not valid JSON.") from None


def _envelope(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": False, "error": error, "message": message}, status_code=status,
                        headers=headers)


def _install_error_handlers(app: FastAPI, *, bare: bool = False) -> None:
    """``bare``: the ``bare_error`` fault (tests only, faults.py): errors without the envelope."""

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if bare:
            return JSONResponse({"error": exc.error}, status_code=exc.status, headers=headers)
        return _envelope(exc.status, exc.error, exc.message, headers)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        shown = "; ".join(f"{'/'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}" for e in exc.errors()[:5])
        return _envelope(422, "Invalid request body", shown[:1900] or "The request is not valid.")

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        title = _TITLES.get(exc.status_code, "HTTP error")
        detail = exc.detail if isinstance(exc.detail, str) else title
        return _envelope(exc.status_code, title, detail, dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _envelope(500, "Internal error", "The backend failed; the error is in its log.")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
