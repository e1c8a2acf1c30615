"""The backend's use cases over real I/O: SQLite, Redis, the CMS; no HTTP framework here.

:class:`BackendService` runs each step of :class:`~.logic.BackendLogic` and
applies its effects: save to SQLite, then publish to Redis. Steps run one
at a time in the order they were asked for, in batches published in one
pipeline each, so Redis sees messages in the order the logic made them; no
step waits for the CMS.

Call order: :meth:`BackendService.open` (database, users, Redis keys), any
number of requests and events, :meth:`BackendService.close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chargetwin.contracts import default_validator
from chargetwin.contracts.catalog import CMS_EVENTS_CHANNEL

from ...clock import Clock
from ...model.config import StationSpec
from ..auth import (
    ExpiredTokenError,
    InvalidTokenError,
    MissingTokenError,
    bearer_token,
    issue_token,
    verify_token,
)
from ..settings import Settings
from ..users import TestUser
from .cms_client import CmsClient
from .exceptions import ApiError, BackendStartError, CmsError
from .logic import BackendLogic, Effects
from .messages import rfc3339
from .publisher import Publisher
from .state import Network, Session, SessionStatus, Users
from .store import Store

__all__ = ["LOGIN_CHANNEL", "START_CHANNEL", "STOP_CHANNEL", "BackendService"]

log = logging.getLogger("chargetwin.backend")

START_CHANNEL = "backend:/api/charging/start"
STOP_CHANNEL = "backend:/api/charging/stop"
LOGIN_CHANNEL = "backend:/api/auth/login"
_T = TypeVar("_T")
_STRUCTURAL = ("schema.", "message_")


def _invalid_body(violations: Sequence[Any]) -> ApiError:
    shown = "; ".join(f"{v.pointer or '(body)'}: {v.message}" for v in violations[:5])
    more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
    return ApiError(422, "Invalid request body", (shown + more)[:1900])


@dataclass(slots=True)
class _Queued:
    """A logic step waiting for its batch (:meth:`BackendService._step`)."""

    step: Callable[[datetime], tuple[Any, Effects]]
    best_effort: bool
    done: asyncio.Future[Any]


def _settle(done: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    """Give a waiting caller its result or error (not if it gave up waiting)."""
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)


CMS_ANSWER_MARGIN_S = 2.0
"""Seconds the backend waits for the CMS beyond the CMS's own wait for the charger."""


class BackendService:
    """Login, start, stop and CMS events, each a logic step plus its I/O."""

    def __init__(self, *, settings: Settings, stations: Sequence[StationSpec], users: Sequence[TestUser],
                 clock: Clock, redis: aioredis.Redis, cms: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.network = Network(stations)
        self.users = Users(users)
        self._user_list = list(users)
        self._redis = redis
        self._publisher = Publisher(redis, fault=settings.inject_fault)
        self._cms_given = cms
        self._http: httpx.AsyncClient | None = None
        self._cms: CmsClient | None = None
        self._store: Store | None = None
        self._logic: BackendLogic | None = None
        self._queue: list[_Queued] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches of steps published so far (each one Redis round trip; see :meth:`_step`)."""
        self._validator = default_validator()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._logic is not None

    @property
    def logic(self) -> BackendLogic:
        if self._logic is None:
            raise RuntimeError("the backend is not open: call open() first")
        return self._logic

    async def open(self) -> None:
        """Open the database, load what it holds, write the Redis keys; :class:`BackendStartError` if not."""
        try:
            store = Store(self.settings.database)
        except Exception as error:
            raise BackendStartError(f"cannot open the database {self.settings.database!r}: {error}") from error
        try:
            store.sync_users(self._user_list)
            stored = store.load()
            logic = BackendLogic(self.network, self.users, sessions=stored.sessions, connectors=stored.connectors,
                                 maintenance=stored.maintenance, next_session_id=stored.next_session_id)
            reconciled = logic.reconcile(now=self.clock.now())
            store.save(reconciled)
            await self._publisher.apply_all([reconciled, logic.snapshot(now=self.clock.now())])
            await self._drop_stale_session_keys(logic)
            # the gateway refuses a valid token of a user not in this set (it cannot ask the backend)
            await self._publisher.register_users(self.users.by_id)
        except (RedisError, OSError) as error:
            store.close()
            raise BackendStartError(f"cannot write to Redis at start: {error}") from error
        except BaseException:
            store.close()
            raise
        self._http = self._cms_given or httpx.AsyncClient()
        # the CMS waits up to cms_timeout_s for the charger: give it that, and time to answer
        self._cms = CmsClient(self._http, base_url=self.settings.cms_url,
                              timeout_s=self.settings.cms_timeout_s + CMS_ANSWER_MARGIN_S)
        self._store, self._logic = store, logic

    async def close(self) -> None:
        """Close the database and the CMS client made here (a client passed in stays open)."""
        if self._http is not None and self._cms_given is None:
            await self._http.aclose()
        if self._store is not None:
            self._store.close()
        self._http = self._cms = self._store = self._logic = None

    async def _drop_stale_session_keys(self, logic: BackendLogic) -> None:
        active = {f"chargetwin:active_session:{s.user_id}" for s in logic.sessions.values()
                  if s.status == SessionStatus.ACTIVE}
        stale = [key async for key in self._redis.scan_iter(match="chargetwin:active_session:*", count=1000)
                 if (key.decode() if isinstance(key, bytes) else key) not in active]
        if stale:
            await self._redis.delete(*stale)

    async def ping(self) -> None:
        """Check that Redis answers; 503 :class:`ApiError` if not."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as error:
            raise ApiError(503, "Redis unavailable", f"The backend cannot reach Redis: {error}") from error

    # --- authentication -------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> int:
        """The user id of an ``Authorization: Bearer`` header; 401 :class:`ApiError` otherwise."""
        try:
            user_id = verify_token(bearer_token(authorization), secret=self.settings.jwt_secret)
        except MissingTokenError as error:
            raise ApiError(401, "Authentication required", str(error)) from None
        except ExpiredTokenError as error:
            raise ApiError(401, "Authentication token expired", str(error)) from None
        except InvalidTokenError as error:
            raise ApiError(401, "Invalid authentication token", str(error)) from None
        if user_id not in self.users.by_id:
            raise ApiError(401, "Invalid authentication token", f"User {user_id} does not exist.")
        return user_id

    async def login(self, body: Any) -> dict[str, Any]:
        """``{token, user_id, expires_at}`` for a test user's email and password; 401 otherwise."""
        self._check(body, LOGIN_CHANNEL)
        assert self._store is not None
        user_id = self._store.check_password(body["email"], body["password"])
        if user_id is None or user_id not in self.users.by_id:
            raise ApiError(401, "Invalid credentials", "Wrong email or password.")
        # Tokens protect real sockets: they live in wall time (see auth.py).
        issued = datetime.now(UTC).replace(microsecond=0)
        ttl = self.settings.jwt_ttl_s
        token = issue_token(user_id, secret=self.settings.jwt_secret, ttl_s=ttl, now=issued)
        return {"token": token, "user_id": user_id, "expires_at": rfc3339(issued + timedelta(seconds=int(ttl)))}

    # --- start and stop -------------------------------------------------------------------

    async def start(self, user_id: int, body: Any) -> dict[str, Any]:
        """``POST /api/charging/start``: the response's ``data``; :class:`ApiError` for every failure."""
        self._check(body, START_CHANNEL)
        charger_id, connector_id = body["charger_id"], body.get("connector_id", 1)
        session = await self._step(lambda now: self.logic.begin_start(user_id, charger_id, connector_id, now=now))
        assert self._cms is not None
        try:
            transaction_id = await self._cms.remote_start(charger_id=charger_id, connector_id=connector_id,
                                                          id_tag=session.id_tag)
        except CmsError as error:
            failure = error
            if session.status != SessionStatus.ACTIVE:
                await self._step(lambda now: (None, self.logic.start_rejected(session, failure, now=now)),
                                 best_effort=True)
                raise
            log.warning("CMS answered %s to a start, but the transaction had started: %s", error.status, error)
            transaction_id = None
        except BaseException:  # cancelled, or a bug: do not leave an initiated session blocking the user
            if session.status == SessionStatus.INITIATED:
                assert self._store is not None
                self._store.save(self.logic.start_rejected(
                    session, ApiError(503, "Start interrupted", "The start was interrupted."), now=self.clock.now()))
            raise
        return await self._step(lambda now: self.logic.start_accepted(session, transaction_id, now=now),
                                best_effort=True)

    async def stop(self, user_id: int, body: Any) -> dict[str, Any]:
        """``POST /api/charging/stop``: the response's ``data``; :class:`ApiError` for every failure."""
        self._check(body, STOP_CHANNEL)
        session = self.logic.begin_stop(user_id, body.get("charger_id"))
        assert self._cms is not None and session.transaction_id is not None
        try:
            await self._cms.stop(charger_id=session.charger_id, connector_id=session.connector_id,
                                 transaction_id=session.transaction_id)
        except CmsError as error:
            failure = error
            await self._step(lambda now: (None, self.logic.stop_rejected(session, failure, now=now)),
                             best_effort=True)
            raise
        return await self._step(lambda now: self.logic.stop_accepted(session, now=now), best_effort=True)

    # --- CMS events -----------------------------------------------------------------------

    async def cms_event(self, event: Any) -> None:
        """One CMS event: 422 if it breaks its schema; 503 if Redis is down (the CMS then retries)."""
        violations = self._validator.validate(event, channel=CMS_EVENTS_CHANNEL, direction="request")
        structural = [v for v in violations if v.rule.startswith(_STRUCTURAL)]
        if structural:
            raise _invalid_body(structural)
        for violation in violations:
            log.warning("CMS event %s breaks %s: %s", event.get("event"), violation.rule, violation.message)
        await self._step(lambda now: (None, self.logic.handle(event, now=now)))

    async def set_maintenance(self, station_id: str, under_maintenance: bool, *, reason: str | None = None) -> None:
        """Put a station under maintenance, or take it out (for the twin's control API)."""
        await self._step(lambda now: (None, self.logic.set_maintenance(
            station_id, under_maintenance, reason=reason, now=now)))

    async def change_network(self, station: StationSpec | None, *, removed: str | None = None) -> None:
        """Add, replace or remove a station; apps get the new charger list (the twin's control API)."""
        await self._step(lambda now: (None, self.logic.change_network(station, removed=removed, now=now)))

    async def notify(self, user_id: int, title: str, text: str, data: dict[str, Any]) -> None:
        """Push a notification to a user (the twin's control API)."""
        await self._step(lambda now: (None, self.logic.notify(user_id, title, text, data, now=now)))

    async def session_error(self, user_id: int, error: str, text: str, error_code: str | None) -> None:
        """Push a ``session_error`` about the user's open session (the twin's control API)."""
        await self._step(lambda now: (None, self.logic.session_error(user_id, error, text, error_code, now=now)))

    # --- helpers --------------------------------------------------------------------------

    def _check(self, body: Any, channel: str) -> None:
        violations = self._validator.validate(body, channel=channel, direction="request")
        if violations:
            raise _invalid_body(violations)

    async def _step(self, step: Callable[[datetime], tuple[_T, Effects]], *, best_effort: bool = False) -> _T:
        """Run one logic step, save its rows, publish its messages, in order with every other step.

        Steps queue up while a batch is being published; the next batch runs
        every queued step in order, saves each, and publishes them all in one
        Redis round trip (group commit): under load, the backend's rate grows
        with the queue instead of being one step per round trip. Each caller
        gets its own result or error once its messages are published.
        ``best_effort``: a Redis failure is logged, not raised (the CMS already acted).
        """
        done: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(step, best_effort, done))
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run_queue(), name="backend-steps")
        return await done

    async def _run_queue(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._run_batch(batch)
                except BaseException as error:  # cancelled, or a bug: no caller waits forever
                    for item in (*batch, *self._queue):
                        _settle(item.done, error=error if isinstance(error, Exception) else
                                ApiError(503, "Backend stopping", "The backend stopped before this step ran."))
                    self._queue.clear()
                    raise
        finally:
            self._worker = None

    async def _run_batch(self, batch: list[_Queued]) -> None:
        assert self._store is not None
        applied: list[tuple[_Queued, Any, Effects]] = []
        for item in batch:
            try:
                result, effects = item.step(self.clock.now())
                self._store.save(effects)
            except Exception as error:
                _settle(item.done, error=error)
            else:
                applied.append((item, result, effects))
        self.batches += 1
        try:
            await self._publisher.apply_all([effects for _, _, effects in applied])
        except (RedisError, OSError) as error:
            log.error("could not publish to Redis: %s", error)
            for item, result, _ in applied:
                _settle(item.done, result=result, error=None if item.best_effort else ApiError(
                    503, "Redis unavailable", f"The backend cannot publish to Redis: {error}"))
            return
        for item, result, _ in applied:
            _settle(item.done, result=result)

    def next_transaction_id(self) -> int:
        """Where a CMS started beside this backend should number transactions from (see Store)."""
        assert self._store is not None, "open the service first"
        return self._store.next_transaction_id()

    def session(self, session_id: int) -> Session | None:
        """A session row (open or closed), for tests and the control API."""
        assert self._store is not None
        return self._store.session(session_id)

