"""``chargetwin serve --record DIR``: everything a served stack sends and receives, into a trace as it happens.

:class:`Recording` taps the hops of a :class:`~chargetwin.twin.stack.Stack` as
``chargetwin run`` does (:mod:`.run`): the backend <-> CMS calls and the
CMS's events at the HTTP transport (:mod:`.http_tap`), every Redis message
(:mod:`.redis_tap`), every OCPP frame (the stack's ``ocpp_tap``) and the
model's truth (:class:`~.truth.ModelTap`); and, instead of simulated apps,
what people's apps send and receive, as the stack's
:class:`~chargetwin.twin.services.appwatch.AppWatch` sees it at the backend
and the gateway (``app-backend``, and ``gateway-app`` with the frames the
app sent as ``send``). Each record goes to ``DIR/trace.ndjson`` through a
:class:`~.trace.TraceWriter` as it is tapped (pushed to the file every
second; nothing is kept in memory), after a ``twin:run`` record and, once
the stack stopped, before a ``twin:end`` one: ``chargetwin validate DIR``
judges the session as it judges a run.

Call order::

    recording = Recording(out)                  # DIR made; an earlier DIR/trace.ndjson replaced
    stack = recording.stack(scenario, settings=..., speed=...)  # a Stack with every hop tapped
    await stack.start()
    await recording.start()                     # the Redis tap, the flushing
    ...
    await stack.stop()                          # the sockets' closes are recorded too
    await recording.close()                     # the twin:end record; everything on disk
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import httpx

from ..twin.model.config import Scenario
from ..twin.services.cms.delivery import MAX_IN_FLIGHT
from ..twin.stack import Stack
from ._hop_taps import HopTaps
from ._interning import Interner
from .checks import CheckParams
from .exceptions import TraceError
from .http_tap import TappingTransport
from .judge import RunEnd, RunHeader
from .redis_tap import tap_redis
from .trace import TraceRecord, TraceWriter, correlation_ids
from .truth import RUN, TWIN_END, ModelTap

__all__ = ["FLUSH_S", "TRACE_NAME", "Recording"]

log = logging.getLogger("chargetwin.recording")

TRACE_NAME: Final = "trace.ndjson"
FLUSH_S: Final = 1.0
"""Wall seconds between pushes of the written records to the file (a killed process loses at most these)."""



class Recording(HopTaps):
    """The trace of one served stack, written to ``out/trace.ndjson``; see the module's docstring."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / TRACE_NAME
        self.path.unlink(missing_ok=True)  # an earlier session's records must not pass for this one's
        self._writer = TraceWriter(self.path)
        self._wall0 = time.monotonic()
        self._messages = Interner()  # a fan-out's copies share one parsed message
        self._stack: Stack | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: OSError | None = None

    @property
    def records(self) -> int:
        return self._writer.records_written

    def stack(self, scenario: Scenario, **options: Any) -> Stack:
        """A :class:`Stack` of ``scenario`` (``options`` are Stack's) with every hop tapped into this recording."""
        events = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=MAX_IN_FLIGHT,
                                                              max_keepalive_connections=MAX_IN_FLIGHT))
        stack = Stack(scenario, ocpp_tap=self.ocpp,
                      cms_transport=TappingTransport(self.http, hop="backend-cms", channel_prefix="cms:"),
                      events_transport=TappingTransport(self.http, hop="cms-backend", channel_prefix="backend:",
                                                        inner=events), **options)
        self._stack = stack
        self.twin(RUN, "start", _header(scenario, stack).to_message())
        stack.world.subscribe(ModelTap(self.twin))
        if stack.watch is None:
            raise ValueError("a recording needs the stack's watch on its apps: pass watch_apps=True")
        stack.watch.listen(self.app)
        return stack

    async def start(self) -> None:
        """Tap the stack's Redis (once it started) and push the records to the file every :data:`FLUSH_S`."""
        assert self._stack is not None, "make the stack with Recording.stack first"
        ready = asyncio.Event()
        redis = asyncio.get_running_loop().create_task(tap_redis(
            self._stack.urls.redis, lambda channel, message: self.record("redis", channel, "publish", message),
            ready, parse=self._messages.parse))
        self._tasks = [redis, asyncio.get_running_loop().create_task(self._flush_every(FLUSH_S))]
        waiting = asyncio.ensure_future(ready.wait())
        await asyncio.wait((waiting, redis), timeout=10, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not ready.is_set():
            await self._cancel()
            raise TraceError(f"cannot tap the stack's Redis: {_said(redis)}", source=str(self.path))

    async def close(self, *, stopped: str | None = None) -> None:
        """Stop the taps, write the ``twin:end`` record and close the file (call after the stack stopped)."""
        await self._cancel()
        if self._writer.closed:
            return
        watch = self._stack.watch if self._stack is not None else None
        metrics = {} if watch is None else {"app_violations": {"total": watch.total, "by_rule": watch.by_rule}}
        end = RunEnd(complete=stopped is None, stopped=stopped, wall_seconds=round(time.monotonic() - self._wall0, 2),
                     metrics=metrics)
        self.twin(TWIN_END, "end", end.to_message())
        try:
            self._writer.close()
        except OSError as error:
            self._failed(error)

    async def _cancel(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # a Redis that went first is no news

    async def _flush_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                self._writer.flush()
            except OSError as error:
                self._failed(error)
                return

    # --- the taps ------------------------------------------------------------------------------

    def record(self, hop: str, channel: str, direction: str, message: Any, *, status: int | None = None,
                user_id: int | None = None, socket_id: int | None = None, charger_id: str | None = None,
                request_id: str | None = None) -> None:
        if self.failure is not None or self._writer.closed:
            return
        clock = self._stack.clock if self._stack is not None else None
        record = TraceRecord(hop=hop, channel=channel, direction=direction, message=message,
                             t_sim=round(clock.sim_seconds(), 3) if clock else 0.0,
                             t_wall=round(time.monotonic() - self._wall0, 4), status=status, user_id=user_id,
                             socket_id=socket_id, charger_id=charger_id, request_id=request_id,
                             **correlation_ids(message))
        try:
            try:
                self._writer.write(record)
            except TraceError:  # not JSON (NaN in a frame): recorded as text, for the checks to flag
                self._writer.write(replace(record, message=f"not JSON: {message!r}"))
        except OSError as error:
            self._failed(error)

    def _failed(self, error: OSError) -> None:
        """The disk refused: stop recording, say so once, and let the twin serve on."""
        if self.failure is None:
            self.failure = error
            log.error("recording stopped: cannot write %s: %s", self.path, error)


def _header(scenario: Scenario, stack: Stack) -> RunHeader:
    """The session's ``twin:run`` record: what was served; the checks' parameters; no limit but violations.

    A served session has no duration and no simulated apps: the latency
    limits of the scenario, which need their traffic, are not judged.
    """
    return RunHeader(
        scenario={"name": scenario.name, "source": scenario.source, "seed": scenario.run.seed, "speed": stack.speed,
                  "start": stack.start_time.isoformat(), "served": True},
        params=CheckParams(deadline_s=scenario.checks.session_started_deadline_s),
        tariffs={s.id: s.spec.tariff_per_kwh for s in stack.world.network.stations}, taps=("heartbeat",))


def _said(task: asyncio.Task[None]) -> str:
    if not task.done():
        return "no subscription within 10 s"
    error = None if task.cancelled() else task.exception()
    return f"{type(error).__name__}: {error}" if error else "it stopped"
