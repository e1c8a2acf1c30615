"""The backend's calls to the CMS REST API (``contracts/openapi/cms.openapi.yaml``), and their errors.

:func:`error_for_status` and :func:`error_for_transport` map what went wrong
to the answer the app gets (DESIGN ruling 6): they are pure and tested
without sockets; :class:`CmsClient` is the thin httpx adapter.

=========================================  ======  ==========================
CMS outcome                                to app  ``error``
=========================================  ======  ==========================
not reachable (connection refused, ...)    503     CMS unavailable
no answer within ``cms_timeout_s``         503     CMS unavailable
404 unknown charger / transaction          404     Charger not found / No active session
409 the charging point rejected            409     Charger not available / Stop rejected
503 the charging point is not connected    503     Charger offline
504 the charging point did not answer      503     Charger not responding
other 5xx                                  502     CMS error
anything else (4xx, a broken body)         502     Bad CMS response
=========================================  ======  ==========================
"""

from __future__ import annotations

from typing import Any

import httpx

from .exceptions import CmsError

__all__ = ["CmsClient", "error_for_status", "error_for_transport"]

START, STOP = "start", "stop"
_MESSAGE_LIMIT = 500


def _cms_message(body: Any, fallback: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"].strip():
        return str(body["message"])[:_MESSAGE_LIMIT]
    return fallback


def error_for_status(status: int, body: Any, *, action: str) -> CmsError:
    """The app's error for a CMS answer with HTTP ``status`` >= 300 (``body``: its JSON, or None)."""
    if status == 404:
        if action == STOP:
            return CmsError(404, "No active session", _cms_message(body, "The charger has no such transaction."))
        return CmsError(404, "Charger not found", _cms_message(body, "The CMS does not know this charger."))
    if status == 409:
        if action == STOP:
            return CmsError(409, "Stop rejected", _cms_message(body, "The charger rejected the remote stop."))
        return CmsError(409, "Charger not available",
                        _cms_message(body, "The requested charger is currently unavailable"))
    if status == 503:
        return CmsError(503, "Charger offline", _cms_message(body, "The charger is not connected to the CMS."))
    if status == 504:
        return CmsError(503, "Charger not responding", _cms_message(body, "The charger did not answer the CMS."))
    if status >= 500:
        return CmsError(502, "CMS error", f"The CMS failed (HTTP {status}): "
                                          f"{_cms_message(body, 'no explanation given')}")
    return CmsError(502, "Bad CMS response", f"The CMS answered HTTP {status}: "
                                             f"{_cms_message(body, 'no explanation given')}")


def error_for_transport(error: httpx.HTTPError, *, url: str, timeout_s: float) -> CmsError:
    """The app's error when no HTTP answer came from the CMS at all."""
    if isinstance(error, httpx.TimeoutException):
        return CmsError(503, "CMS unavailable", f"The CMS did not answer within {timeout_s:g} s; try again later.")
    return CmsError(503, "CMS unavailable", f"The CMS at {url} cannot be reached; try again later.")


class CmsClient:
    """``POST /api/charging/remote_start`` and ``/api/charging/stop`` on the CMS; raises :class:`CmsError`."""

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, timeout_s: float) -> None:
        self._client = client
        self._base = str(client.base_url).rstrip("/") if str(client.base_url) else base_url.rstrip("/")
        self._timeout_s = timeout_s

    async def remote_start(self, *, charger_id: str, connector_id: int, id_tag: str) -> int | None:
        """RemoteStartTransaction; the transaction id if the CMS already knows it."""
        data = await self._post("/api/charging/remote_start", {
            "charger_id": charger_id, "id_tag": id_tag, "connector_id": connector_id}, action=START)
        transaction_id = data.get("transaction_id")
        return transaction_id if isinstance(transaction_id, int) and not isinstance(transaction_id, bool) else None

    async def stop(self, *, charger_id: str, connector_id: int, transaction_id: int) -> None:
        """RemoteStopTransaction of ``transaction_id`` (SPEC-NOTES N-13)."""
        await self._post("/api/charging/stop", {
            "charger_id": charger_id, "connector_id": connector_id, "transaction_id": transaction_id}, action=STOP)

    async def _post(self, path: str, body: dict[str, Any], *, action: str) -> dict[str, Any]:
        url = self._base + path
        try:
            answer = await self._client.post(url, json=body, timeout=self._timeout_s)
        except httpx.HTTPError as error:
            raise error_for_transport(error, url=self._base, timeout_s=self._timeout_s) from error
        try:
            parsed: Any = answer.json()
        except ValueError:
            parsed = None
        if answer.status_code >= 300:
            raise error_for_status(answer.status_code, parsed, action=action)
        if not (isinstance(parsed, dict) and parsed.get("success") is True and isinstance(parsed.get("data"), dict)):
            raise CmsError(502, "Bad CMS response",
                           f"The CMS answered HTTP {answer.status_code} without a success envelope.")
        data: dict[str, Any] = parsed["data"]
        return data
