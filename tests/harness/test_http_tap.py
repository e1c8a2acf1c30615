"""The HTTP tap: requests and responses reported as they cross a real socket, the caller served as before."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import StreamingResponse

from chargetwin.contracts import default_validator
from chargetwin.contracts.catalog import CMS_EVENTS_CHANNEL
from chargetwin.harness.http_tap import TappingTransport, parse_body
from chargetwin.twin.services._http import EmbeddedHttpServer, bind
from chargetwin.twin.services.backend.cms_client import CmsClient
from chargetwin.twin.services.backend.exceptions import CmsError as BackendCmsError
from chargetwin.twin.services.cms.central import Transaction
from chargetwin.twin.services.cms.exceptions import CommandRejectedError, UnknownChargePointError
from chargetwin.twin.services.cms.rest import create_app as create_cms_app
from chargetwin.twin.stack import free_port

Exchange = tuple[str, str, str, Any, int | None, str]
EVENT = {"event": "connector_status_changed", "charger_id": "CP001", "transaction_id": None,
         "data": {"connector_id": 1, "status": "Available", "error_code": None, "timestamp": "2025-01-29T12:00:00Z"}}


class Recorder:
    """An :class:`~chargetwin.harness.http_tap.ExchangeTap` that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[Exchange] = []

    def __call__(self, hop: str, channel: str, direction: str, message: Any, status: int | None,
                 request_id: str) -> None:
        self.calls.append((hop, channel, direction, message, status, request_id))


def _run(go: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(go(), 20)
    return asyncio.run(bounded())


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a free loopback port; yields its base URL."""
    server = EmbeddedHttpServer(app, bind("127.0.0.1", 0), name="tap-test")
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


def _echo_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(GZipMiddleware, minimum_size=10)

    @app.post("/api/echo", status_code=201)
    async def echo(request: Request) -> dict[str, Any]:
        return {"success": True, "data": {"got": await request.json(), "padding": "x" * 200}}

    @app.get("/api/chunks")
    async def chunks() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"part{n};".encode()
        return StreamingResponse(parts(), media_type="text/plain")

    return app


def _tapping(recorder: Recorder, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=TappingTransport(recorder, hop="backend-cms", channel_prefix="cms:",
                                                        **options))


def test_a_request_and_its_gzipped_response_are_tapped_and_the_caller_still_reads_the_body() -> None:
    recorder = Recorder()

    async def go() -> list[httpx.Response]:
        async with serving(_echo_app()) as url, _tapping(recorder) as client:
            return [await client.post(url + "/api/echo", json={"n": n}) for n in (1, 2)]

    answers = _run(go)
    assert answers[0].headers["content-encoding"] == "gzip"  # the body crossed the wire encoded
    assert [a.json()["data"]["got"] for a in answers] == [{"n": 1}, {"n": 2}]
    first = {"success": True, "data": {"got": {"n": 1}, "padding": "x" * 200}}
    assert recorder.calls[:2] == [("backend-cms", "cms:/api/echo", "request", {"n": 1}, None, "1"),
                                  ("backend-cms", "cms:/api/echo", "response", first, 201, "1")]
    assert [(c[2], c[5]) for c in recorder.calls[2:]] == [("request", "2"), ("response", "2")]


def test_the_caller_can_still_stream_the_response() -> None:
    recorder = Recorder()

    async def go() -> tuple[bytes, str]:
        async with serving(_echo_app()) as url, _tapping(recorder) as client:
            identity = {"Accept-Encoding": "identity"}
            async with client.stream("GET", url + "/api/chunks", headers=identity) as answer:
                raw = b"".join([chunk async for chunk in answer.aiter_raw()])
            async with client.stream("GET", url + "/api/chunks") as answer:
                text = "".join([chunk async for chunk in answer.aiter_text()])
            return raw, text

    assert _run(go) == (b"part0;part1;part2;", "part0;part1;part2;")
    assert [(c[2], c[3], c[4]) for c in recorder.calls] == [("request", None, None),
                                                            ("response", "part0;part1;part2;", 200)] * 2


def test_the_request_id_header_names_the_exchange() -> None:
    recorder = Recorder()

    async def go() -> None:
        async with serving(_echo_app()) as url, _tapping(recorder, request_ids=iter(["a", "b"])) as client:
            await client.post(url + "/api/echo", json={}, headers={"X-Request-Id": "req-42"})
            await client.post(url + "/api/echo", json={})

    _run(go)
    assert [c[5] for c in recorder.calls] == ["req-42", "req-42", "a", "a"]


def test_a_refused_connection_is_raised_unchanged_and_only_the_request_is_tapped() -> None:
    recorder = Recorder()
    url = f"http://127.0.0.1:{free_port()}/api/echo"  # nothing listens there

    async def go() -> None:
        async with _tapping(recorder) as client:
            await client.post(url, json={"n": 1})

    with pytest.raises(httpx.ConnectError):
        _run(go)
    assert recorder.calls == [("backend-cms", "cms:/api/echo", "request", {"n": 1}, None, "1")]


def test_an_error_of_the_inner_transport_is_the_same_object_the_caller_gets() -> None:
    recorder = Recorder()
    error = httpx.ReadTimeout("too slow")

    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async def go() -> None:
        async with _tapping(recorder, inner=httpx.MockTransport(handler)) as client:
            await client.post("http://cms.test/api/charging/stop", json={})

    with pytest.raises(httpx.ReadTimeout) as raised:
        _run(go)
    assert raised.value is error
    assert [c[2] for c in recorder.calls] == ["request"]


class _BrokenStream(httpx.AsyncByteStream):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"success": '
        raise httpx.ReadError("connection reset")


def test_a_body_cut_short_raises_and_taps_no_response() -> None:
    recorder = Recorder()

    async def go() -> None:
        inner = httpx.MockTransport(lambda request: httpx.Response(200, stream=_BrokenStream()))
        async with _tapping(recorder, inner=inner) as client:
            await client.get("http://cms.test/api/x")

    with pytest.raises(httpx.ReadError):
        _run(go)
    assert [c[2] for c in recorder.calls] == ["request"]


class _Commands:
    """The CMS's commands: CP001 accepts a start, other chargers are unknown, every stop is rejected."""

    async def remote_start(self, charger_id: str, *, id_tag: str, connector_id: int = 1) -> int | None:
        if charger_id != "CP001":
            raise UnknownChargePointError(f"there is no charger {charger_id!r}")
        return None

    async def remote_stop(self, charger_id: str, *, connector_id: int | None = None,
                          transaction_id: int | None = None) -> Transaction:
        raise CommandRejectedError(f"charger {charger_id} rejected RemoteStopTransaction")


def test_the_backend_cms_records_of_the_real_cms_api_conform_to_the_contracts() -> None:
    recorder = Recorder()

    async def go() -> list[str]:
        failures = []
        async with serving(create_cms_app(_Commands())) as url, _tapping(recorder) as client:
            cms = CmsClient(client, base_url=url, timeout_s=5)
            assert await cms.remote_start(charger_id="CP001", connector_id=1, id_tag="RFID001") is None
            refused: list[Callable[[], Awaitable[Any]]] = [
                lambda: cms.remote_start(charger_id="CP999", connector_id=1, id_tag="RFID001"),
                lambda: cms.stop(charger_id="CP001", connector_id=1, transaction_id=7)]
            for call in refused:
                with pytest.raises(BackendCmsError) as raised:
                    await call()
                failures.append(raised.value.error)
        return failures

    assert _run(go) == ["Charger not found", "Stop rejected"]
    start, stop = "cms:/api/charging/remote_start", "cms:/api/charging/stop"
    assert [(c[1], c[2], c[4], c[5]) for c in recorder.calls] == [
        (start, "request", None, "1"), (start, "response", 200, "1"),
        (start, "request", None, "2"), (start, "response", 404, "2"),
        (stop, "request", None, "3"), (stop, "response", 409, "3")]
    validator = default_validator()
    for _, channel, direction, message, status, _ in recorder.calls:
        assert validator.validate(message, channel=channel, direction=direction, status=status) == [], message


def test_events_are_tapped_as_requests_and_the_response_is_handed_on_untouched() -> None:
    recorder = Recorder()
    accepted = httpx.Response(202)

    async def go() -> httpx.Response:
        inner = httpx.MockTransport(lambda request: accepted)
        transport = TappingTransport(recorder, hop="cms-backend", channel_prefix="backend:", inner=inner,
                                     responses=False)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post("http://backend.test/internal/cms/events", json=EVENT)

    assert _run(go) is accepted
    assert recorder.calls == [("cms-backend", CMS_EVENTS_CHANNEL, "request", EVENT, None, "1")]
    assert default_validator().validate(EVENT, channel=CMS_EVENTS_CHANNEL, direction="request") == []


@pytest.mark.parametrize(("answer", "status", "rules"), [
    (None, 202, []),
    ({"accepted": True}, 202, ["event_answer_empty"]),
    ({"success": False, "error": "Invalid request body", "message": "/event: unknown"}, 422, []),
    ("Unauthorized", 401, ["message_is_object"]),
])
def test_the_answer_to_an_event_is_empty_or_the_error_envelope(answer: object, status: int,
                                                              rules: list[str]) -> None:
    found = default_validator().validate(answer, channel=CMS_EVENTS_CHANNEL, direction="response", status=status)
    assert [v.rule for v in found] == rules


def test_closing_the_tap_closes_the_inner_transport() -> None:
    closed: list[bool] = []

    class Inner(httpx.AsyncBaseTransport):
        async def aclose(self) -> None:
            closed.append(True)

    async def go() -> None:
        async with _tapping(Recorder(), inner=Inner()):
            pass

    _run(go)
    assert closed == [True]


@pytest.mark.parametrize(("content", "parsed"), [
    (b"", None),
    (b'{"a": [1, 2.5, null]}', {"a": [1, 2.5, None]}),
    (b"not json", "not json"),
    (b'{"a": NaN}', '{"a": NaN}'),
    (b"\xff\xfe oops", "\ufffd\ufffd oops"),
])
def test_a_body_is_its_json_else_its_text(content: bytes, parsed: Any) -> None:
    assert parse_body(content) == parsed
