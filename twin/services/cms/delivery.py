"""Delivery of the CMS -> backend events: in order per charge point, never lost to a restart.

``docs/stack.md``, "CMS -> backend events": ``POST {backend}/internal/cms/events``
with ``X-Internal-Token``, answer 202. Each charge point has its own queue
and at most one request in flight, so its events arrive in the order its
OCPP messages came; different charge points do not wait for each other.
While the backend is unreachable or answers 5xx, the head of a queue is
retried with exponential backoff, forever; a 4xx answer is logged and the
event dropped (retrying a refused event would block the queue for good).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import httpx

__all__ = ["EventDelivery"]

_LOG = logging.getLogger(__name__)


MAX_IN_FLIGHT = 32
"""Events posted to the backend at once, across all charge points (the backend batches what arrives together)."""


class EventDelivery:
    """Queues events per ``charger_id`` and posts them to ``url``.

    Call order: :meth:`submit` from inside the running loop (it starts a
    worker for the charge point when needed), then :meth:`aclose`.
    ``transport`` is injectable (``httpx.MockTransport`` in tests). Backoff
    and the request timeout are in wall seconds.
    """

    def __init__(self, url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 backoff_initial: float = 0.05, backoff_max: float = 2.0, request_timeout: float = 10.0) -> None:
        self.url = url
        self._headers = {"X-Internal-Token": token}
        limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
        self._client = httpx.AsyncClient(transport=transport, timeout=request_timeout, limits=limits)
        # Charge points deliver in parallel, but never more than the pool holds: hundreds of requests
        # queued inside httpcore's pool cost time quadratic in their number (seen at 634 charge points).
        self._in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._backoff = (backoff_initial, backoff_max)
        self._queues: dict[str, deque[dict[str, Any]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._watched: dict[int, asyncio.Event] = {}  # id(event) -> set once it left its queue
        self.delivered = 0
        self.dropped = 0
        self._closed = False

    @property
    def pending(self) -> int:
        """Events not yet accepted by the backend (queued or in flight)."""
        return sum(len(q) for q in self._queues.values())

    def submit(self, event: dict[str, Any]) -> None:
        """Queue ``event`` behind the earlier events of its charge point."""
        if self._closed:
            _LOG.warning("event delivery is closed; %s of %s dropped", event.get("event"), event.get("charger_id"))
            self.dropped += 1
            return
        charger_id = str(event["charger_id"])
        self._queues.setdefault(charger_id, deque()).append(event)
        if charger_id not in self._workers:
            self._workers[charger_id] = asyncio.get_running_loop().create_task(
                self._drain(charger_id), name=f"cms-events-{charger_id}")

    async def wait_settled(self, event: dict[str, Any]) -> None:
        """Wait until ``event`` (submitted before) was delivered or dropped; at once if it already was."""
        queue = self._queues.get(str(event.get("charger_id")), ())
        if not any(queued is event for queued in queue):
            return
        settled = self._watched.setdefault(id(event), asyncio.Event())
        await settled.wait()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued event was delivered (or dropped); False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._workers:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(list(self._workers.values()), timeout=left)
        return True

    async def aclose(self, *, drain_timeout: float = 2.0) -> None:
        """Deliver what can be delivered within ``drain_timeout``, then stop; the rest is dropped and logged."""
        self._closed = True
        if not await self.wait_idle(drain_timeout):
            _LOG.warning("event delivery stopped with %d events undelivered", self.pending)
        for task in list(self._workers.values()):
            task.cancel()
        for task in list(self._workers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.dropped += self.pending
        self._queues.clear()
        await self._client.aclose()

    async def _drain(self, charger_id: str) -> None:
        queue = self._queues[charger_id]
        try:
            while queue:
                await self._deliver(queue[0])
                settled = self._watched.pop(id(queue.popleft()), None)
                if settled is not None:
                    settled.set()
        finally:
            del self._workers[charger_id]

    async def _deliver(self, event: dict[str, Any]) -> None:
        """Post until the backend takes or refuses ``event``; back off while it is down or failing."""
        delay, failures = self._backoff[0], 0
        while True:
            try:
                async with self._in_flight:
                    answer = await self._client.post(self.url, json=event, headers=self._headers)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if answer.status_code < 300:
                    self.delivered += 1
                    if failures:
                        _LOG.info("backend back after %d failed attempts", failures)
                    return
                if answer.status_code < 500:
                    self.dropped += 1
                    _LOG.warning("backend refused %s of %s with HTTP %d: %s", event.get("event"),
                                 event.get("charger_id"), answer.status_code, answer.text[:500])
                    return
                problem = f"HTTP {answer.status_code}"
            failures += 1
            log = _LOG.warning if failures == 1 else _LOG.debug
            log("cannot deliver %s of %s to %s (%s); retrying in %.2fs", event.get("event"),
                event.get("charger_id"), self.url, problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])
