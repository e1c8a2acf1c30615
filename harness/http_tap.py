"""Tap HTTP hops at the transport: every request and its response, as they cross the wire.

:class:`TappingTransport` wraps an httpx transport and reports each request
and its response to an :class:`ExchangeTap` (in the harness, the trace's
taps). A service gets it through its HTTP client (``Stack(cms_transport=...,
events_transport=...)``), so the harness sees the real traffic without
importing the services' code paths.

Call order for one request:

1. ``on_exchange(hop, channel, "request", body, None, request_id)``, before
   the request is sent;
2. the inner transport sends it and the whole response body is read;
3. ``on_exchange(hop, channel, "response", body, status, request_id)``;
4. the caller gets a fresh, unread response holding the same status, headers
   and raw (still encoded) bytes, so it can read, stream or decode it as usual.

``channel`` is ``channel_prefix`` + the URL's path (``cms:/api/charging/stop``);
``body`` is the JSON of the body, else its text, or ``None`` when empty.
``request_id`` is the request's ``X-Request-Id`` header if it has one, else
the next id of the transport's counter (``"1"``, ``"2"``, ...): the two calls
of one exchange carry the same id.

A transport error (refused connection, timeout, a broken body) is re-raised
unchanged and tapped as nothing: the request stays without a response, as
no response came (a retry is a new request with a new id). Whatever
``on_exchange`` raises reaches the caller, as a tap bug should.

The response body is buffered whole before the caller sees it: fine for
REST calls, not meant for endless streams.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any, Protocol

import httpx

__all__ = ["ExchangeTap", "TappingTransport", "parse_body"]


class ExchangeTap(Protocol):
    """What a :class:`TappingTransport` calls: once for a request (``status`` None), once for its response."""

    def __call__(self, hop: str, channel: str, direction: str, message: Any, status: int | None,
                 request_id: str) -> None: ...


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(content: bytes, *, encoding: str = "utf-8") -> Any:
    """A body as a trace holds it: its JSON (strict: no NaN or Infinity), else its text; ``None`` if empty."""
    if not content:
        return None
    try:
        return json.loads(content, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return content.decode(encoding, errors="replace")


class TappingTransport(httpx.AsyncBaseTransport):
    """An httpx transport that reports every request and response it carries to ``on_exchange``.

    ``hop`` names the hop in every call (``backend-cms``); ``channel_prefix``
    goes before each request's path (``cms:``). ``inner`` does the sending
    (default: a plain ``httpx.AsyncHTTPTransport()``, with httpx's default
    limits); closing this transport closes it. ``request_ids`` yields the ids
    of requests without ``X-Request-Id`` (default ``"1"``, ``"2"``, ...).
    ``responses=False`` taps requests only and hands responses on untouched.
    """

    def __init__(self, on_exchange: ExchangeTap, *, hop: str, channel_prefix: str,
                 inner: httpx.AsyncBaseTransport | None = None, request_ids: Iterator[str] | None = None,
                 responses: bool = True) -> None:
        self.hop = hop
        self.channel_prefix = channel_prefix
        self._tap = on_exchange
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._ids = request_ids if request_ids is not None else (str(n) for n in itertools.count(1))
        self._responses = responses

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Tap the request, send it through the inner transport, tap the response, return a replay of it."""
        request_id = request.headers.get("x-request-id") or next(self._ids)
        channel = self.channel_prefix + request.url.path
        self._tap(self.hop, channel, "request", parse_body(await request.aread()), None, request_id)
        response = await self._inner.handle_async_request(request)
        if not self._responses:
            return response
        raw = await _read_raw(response)
        self._tap(self.hop, channel, "response", _decoded_body(response, raw), response.status_code, request_id)
        return _unread(response, raw, extensions=response.extensions)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def _read_raw(response: httpx.Response) -> bytes:
    """The raw (still encoded) body of an unread ``response``, which is then closed."""
    try:
        return b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()


def _unread(response: httpx.Response, raw: bytes, *, extensions: dict[str, Any] | None = None) -> httpx.Response:
    """A response with ``response``'s status and headers and the body ``raw``, not read yet.

    (``httpx.Response(content=...)`` would read it at once: a caller streaming it would get StreamConsumed.)
    """
    return httpx.Response(response.status_code, headers=response.headers, stream=httpx.ByteStream(raw),
                          extensions=extensions)


def _decoded_body(response: httpx.Response, raw: bytes) -> Any:
    """The parsed body of ``raw``, sent with ``response``'s headers (Content-Encoding undone)."""
    probe = _unread(response, raw)
    try:
        content = probe.read()
    except httpx.DecodingError:  # the caller meets the same error when it reads; the trace gets the raw bytes
        content = raw
    return parse_body(content, encoding=probe.encoding or "utf-8")
