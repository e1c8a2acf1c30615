"""The backend's CMS client: requests as the contracts say, and every failure mapped (DESIGN ruling 6)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from chargetwin.contracts import default_validator
from chargetwin.twin.services.backend.cms_client import CmsClient, error_for_status, error_for_transport
from chargetwin.twin.services.backend.exceptions import ApiError, CmsError

Handler = Callable[[httpx.Request], httpx.Response]


def _run(handler: Handler, call: Callable[[CmsClient], Any]) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await call(CmsClient(client, base_url="http://cms.test:8001", timeout_s=0.5))
    return asyncio.run(go())


def _start(cms: CmsClient) -> Any:
    return cms.remote_start(charger_id="CP001", connector_id=2, id_tag="RFID001")


def _stop(cms: CmsClient) -> Any:
    return cms.stop(charger_id="CP001", connector_id=2, transaction_id=789)


def test_requests_follow_the_cms_contract() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = json.loads(request.content)
        data = {"charger_id": body["charger_id"], "status": "Accepted"}
        data |= {"connector_id": 2, "transaction_id": 77} if request.url.path.endswith("remote_start") else \
            {"transaction_id": body["transaction_id"]}
        return httpx.Response(200, json={"success": True, "data": data})

    assert _run(handler, _start) == 77
    assert _run(handler, _stop) is None
    validator = default_validator()
    for request, channel in zip(seen, ("cms:/api/charging/remote_start", "cms:/api/charging/stop"), strict=True):
        assert str(request.url) == "http://cms.test:8001" + channel.split(":", 1)[1]
        assert validator.validate(json.loads(request.content), channel=channel, direction="request") == []
    assert json.loads(seen[1].content) == {"charger_id": "CP001", "connector_id": 2, "transaction_id": 789}


def test_the_client_base_url_wins_over_the_settings() -> None:
    async def go() -> str:
        urls: list[str] = []

        def handler(request: httpx.Request) -> httpx.Response:
            urls.append(str(request.url))
            return httpx.Response(200, json={"success": True, "data": {"charger_id": "CP001", "connector_id": 2,
                                                                       "status": "Accepted"}})

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://elsewhere:9") as client:
            await _start(CmsClient(client, base_url="http://cms.test:8001", timeout_s=1))
        return urls[0]

    assert asyncio.run(go()) == "http://elsewhere:9/api/charging/remote_start"


@pytest.mark.parametrize(("status", "action", "expected"), [
    (404, "start", (404, "Charger not found")),
    (404, "stop", (404, "No active session")),
    (409, "start", (409, "Charger not available")),
    (409, "stop", (409, "Stop rejected")),
    (503, "start", (503, "Charger offline")),
    (504, "stop", (503, "Charger not responding")),
    (500, "start", (502, "CMS error")),
    (502, "stop", (502, "CMS error")),
    (422, "start", (502, "Bad CMS response")),
    (401, "stop", (502, "Bad CMS response")),
])
def test_cms_statuses_map_to_the_apps(status: int, action: str, expected: tuple[int, str]) -> None:
    body = {"success": False, "error": "Rejected", "message": "The charge point said no."}

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    with pytest.raises(CmsError) as caught:
        _run(handler, _start if action == "start" else _stop)
    assert (caught.value.status, caught.value.error) == expected
    assert "The charge point said no." in caught.value.message
    assert error_for_status(status, None, action=action).message  # a message even without a body


@pytest.mark.parametrize(("failure", "why"), [
    (httpx.ConnectError("refused"), "cannot be reached"),
    (httpx.ReadTimeout("slow"), "did not answer within 0.5 s"),
    (httpx.ConnectTimeout("slow"), "did not answer within 0.5 s"),
    (httpx.RemoteProtocolError("garbage"), "cannot be reached"),
])
def test_no_answer_is_503(failure: httpx.HTTPError, why: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        failure.request = request
        raise failure

    with pytest.raises(CmsError) as caught:
        _run(handler, _start)
    assert (caught.value.status, caught.value.error) == (503, "CMS unavailable")
    assert why in caught.value.message
    assert error_for_transport(httpx.ConnectError("x"), url="http://cms", timeout_s=1).status == 503


@pytest.mark.parametrize("answer", [
    httpx.Response(200, text="OK"),
    httpx.Response(200, json={"success": False}),
    httpx.Response(200, json=[1, 2]),
    httpx.Response(500, text="<html>Internal Server Error</html>"),
])
def test_a_broken_answer_is_502(answer: httpx.Response) -> None:
    with pytest.raises(CmsError) as caught:
        _run(lambda _: answer, _start)
    assert caught.value.status == 502
    assert caught.value.envelope() == {"success": False, "error": caught.value.error,
                                       "message": caught.value.message}
    assert isinstance(caught.value, ApiError)
