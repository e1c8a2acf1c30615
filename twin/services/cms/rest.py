"""The CMS's REST API (``contracts/openapi/cms.openapi.yaml``), a FastAPI app over :class:`Commands`.

Request bodies are checked against the contracts themselves
(``cms/remote-start.request``, ``cms/stop.request``), so the API accepts
exactly what the schemas allow. Every error, FastAPI's own included, is the
envelope ``{success: false, error, message}`` with a fitting status
(DESIGN ruling 6, SPEC-NOTES N-12).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chargetwin.contracts import default_validator

from .._body_limit import BodyLimit
from .central import Transaction
from .exceptions import CmsError

__all__ = ["Commands", "create_app", "error_response"]

_LOG = logging.getLogger(__name__)

REMOTE_START = "/api/charging/remote_start"
STOP = "/api/charging/stop"


class Commands(Protocol):
    """What the REST API asks of the CMS (:class:`~.service.Cms` provides it). Failures raise CmsError."""

    async def remote_start(self, charger_id: str, *, id_tag: str, connector_id: int = 1) -> int | None: ...

    async def remote_stop(self, charger_id: str, *, connector_id: int | None = None,
                          transaction_id: int | None = None) -> Transaction: ...


class _InvalidBody(Exception):
    """The request body is not JSON or breaks the request schema."""


def error_response(status: int, error: str, message: str) -> JSONResponse:
    """The error envelope (``rest/error.schema.json``)."""
    return JSONResponse({"success": False, "error": error[:500], "message": message[:2000]}, status_code=status)


async def _body(request: Request, channel: str) -> dict[str, Any]:
    """The JSON body, valid against the request schema of ``channel``, or :class:`_InvalidBody`."""
    try:
        body = json.loads(await request.body())
    except ValueError as error:
        raise _InvalidBody(f"the body is not JSON: {error}") from None
    violations = default_validator().validate(body, channel=channel, direction="request")
    if violations:
        raise _InvalidBody("; ".join(f"{v.pointer or '/'}: {v.message}" for v in violations[:5]))
    assert isinstance(body, dict)
    return body


def create_app(commands: Commands, *, max_body_bytes: int = 64 * 1024) -> FastAPI:
    """The REST API; each call waits for the charge point's answer (bounded by the CMS's timeout).
    Bodies over ``max_body_bytes`` are answered 413 before they are read."""
    app = FastAPI(title="chargetwin CMS stub", version="0.1.0", docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, limit_bytes=max_body_bytes)

    @app.post(REMOTE_START)
    async def remote_start(request: Request) -> JSONResponse:
        body = await _body(request, f"cms:{REMOTE_START}")
        connector_id = body.get("connector_id", 1)
        transaction_id = await commands.remote_start(body["charger_id"], id_tag=body["id_tag"],
                                                     connector_id=connector_id)
        return JSONResponse({"success": True, "data": {
            "charger_id": body["charger_id"], "connector_id": connector_id, "status": "Accepted",
            "transaction_id": transaction_id}})

    @app.post(STOP)
    async def stop(request: Request) -> JSONResponse:
        body = await _body(request, f"cms:{STOP}")
        transaction = await commands.remote_stop(body["charger_id"], connector_id=body.get("connector_id"),
                                                 transaction_id=body.get("transaction_id"))
        return JSONResponse({"success": True, "data": {
            "charger_id": transaction.charge_point_id, "connector_id": transaction.connector_id,
            "transaction_id": transaction.id, "status": "Accepted"}})

    @app.exception_handler(CmsError)
    async def cms_error(request: Request, error: CmsError) -> JSONResponse:
        _LOG.info("%s %s: %d %s", request.method, request.url.path, error.status, error)
        return error_response(error.status, error.title, str(error))

    @app.exception_handler(_InvalidBody)
    async def invalid_body(request: Request, error: _InvalidBody) -> JSONResponse:
        return error_response(422, "Invalid request", str(error))

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'/'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in error.errors())
        return error_response(422, "Invalid request", problems or "the request is not valid")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), f"{request.method} {request.url.path}: "
                              f"{error.detail}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        _LOG.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "Internal error", f"the CMS failed: {type(error).__name__}")

    return app
