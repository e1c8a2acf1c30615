"""The reference gateway on real sockets: a thin asyncio adapter around :class:`.routing.Router`.

``ws://host:port/?token=JWT`` (seed 2). One Redis connection per process,
PSUBSCRIBEd to the three channel patterns for all users; every message is
routed by the user id in its channel name and written, as received (its
bytes, encoded once), to that user's sockets (``docs/stack.md``, Gateway).
What the gateway decides lives in :mod:`.routing`, :mod:`.messages` and
:mod:`.presence`; this module only does the I/O.

Use::

    gateway = Gateway(settings=settings, clock=clock, redis_url=url)
    await gateway.start()          # subscribed to Redis, then listening
    ...                            # gateway.port, gateway.url, gateway.metrics()
    await gateway.stop()           # sockets closed with 1001, tasks cancelled, Redis closed

or ``async with Gateway(...) as gateway: ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from chargetwin.twin.clock import Clock
from chargetwin.twin.services import auth
from chargetwin.twin.services.faults import GATEWAY_FAULTS, GatewayFault
from chargetwin.twin.services.settings import Settings
from chargetwin.twin.services.timestamps import format_timestamp

from .._tasks import cancel_and_wait
from ..redis_server import redacted_url
from . import messages
from ._backoff import reconnect_delays
from .exceptions import GatewayStartError
from .presence import PresenceLedger
from .routing import (
    CHANNEL_PATTERNS,
    CLIENT_TOO_SLOW,
    TOO_MANY_MESSAGES,
    Admitted,
    FloodGuard,
    Rejection,
    Router,
    path_allowed,
    token_from_path,
    user_rejection,
)

if TYPE_CHECKING:  # the watch brings FastAPI; a gateway without one does not need it
    from ..appwatch import AppWatch

__all__ = ["ACTIVE_SESSION_KEY", "CHARGER_LIST_KEY", "CONNECTED_USERS_KEY", "USERS_KEY", "Gateway",
           "GatewayMetrics"]

log = logging.getLogger("chargetwin.gateway")

# Redis keys of docs/stack.md.
CHARGER_LIST_KEY: Final = "chargetwin:charger_list"
ACTIVE_SESSION_KEY: Final = "chargetwin:active_session:{user_id}"
CONNECTED_USERS_KEY: Final = "chargetwin:connected_users"
USERS_KEY: Final = "chargetwin:users"

SHUTDOWN: Final = Rejection(1001, "Gateway shutting down")
REDIS_DOWN: Final = Rejection(1013, "Try again later")

_REDIS_TIMEOUT_S: Final = 5.0

# HINCRBY for each (user, delta) pair, HDEL at 0 — atomically, so that two gateway
# processes cannot delete each other's fresh entry between the HINCRBY and the HDEL.
_PRESENCE_SCRIPT: Final = """
for i = 1, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return #ARGV / 2
"""


@dataclass(frozen=True, slots=True)
class GatewayMetrics:
    """A snapshot of the gateway's counters (``Gateway.metrics()``)."""

    connections: int
    """Sockets admitted and not yet closed (welcoming or live)."""
    users: int
    """Distinct users with at least one socket."""
    messages_received: int
    """Redis messages received."""
    messages_forwarded: int
    """Redis messages written to sockets: one message to three sockets counts 3."""
    messages_unrouted: int
    """Redis messages for users with no socket on this gateway."""
    messages_invalid: int
    """Redis messages not forwarded: channel not ``user:{id}:{kind}`` or payload not UTF-8."""
    dropped_slow_clients: int
    """Sockets closed 1013 "Client too slow"."""
    redis_reconnects: int
    """Times the subscription was restored after losing Redis."""
    redis_connected: bool
    """Subscribed to the three patterns right now."""
    client_frames: int
    """Frames received from apps (each answered with an ``error`` message)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Connections closed at once, by close reason (1008 ...)."""


@dataclass(slots=True)
class _Counters:
    messages_received: int = 0
    messages_forwarded: int = 0
    messages_unrouted: int = 0
    messages_invalid: int = 0
    dropped_slow_clients: int = 0
    redis_reconnects: int = 0
    client_frames: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class Gateway:
    """The reference WebSocket gateway (the seed's "Node.js gateway").

    ``settings``: host, ``gateway_port`` (0: any free port, see :attr:`port`),
    ``jwt_secret``, ``gateway_max_connections``, ``gateway_ping_interval_s``,
    ``gateway_ping_timeout_s``, ``gateway_max_buffer_bytes``. ``clock``: the
    twin's clock, for the timestamps of the messages the gateway writes.
    ``redis_url``: defaults to ``settings.redis_url``; one is required.
    ``verify_token``: token -> user id, raising when invalid (default:
    :func:`chargetwin.twin.services.auth.verify_token` with
    ``settings.jwt_secret``). ``close_timeout``: how long a closing handshake
    may take before the TCP connection is aborted.
    ``startup_timeout``: how long :meth:`start` waits for Redis. ``rng``:
    jitter of the reconnection backoff. ``watch``: sees every handshake and
    frame of the apps (its connection class serves each socket).
    """

    def __init__(self, *, settings: Settings, clock: Clock, redis_url: str | None = None,
                 verify_token: Callable[[str], int] | None = None, close_timeout: float = 10.0,
                 startup_timeout: float = 10.0, rng: random.Random | None = None,
                 watch: AppWatch | None = None) -> None:
        url = redis_url or settings.redis_url
        if not url:
            raise ValueError("the gateway needs a Redis: pass redis_url= or set settings.redis_url (REDIS_URL)")
        self.settings = settings
        self._clock = clock
        self._redis_url = url
        self._verify = verify_token or partial(auth.verify_token, secret=settings.jwt_secret)
        self._close_timeout = close_timeout
        self._startup_timeout = startup_timeout
        self._rng = rng or random.Random()
        self._watch = watch
        self._router: Router[ServerConnection] = Router(
            max_connections=settings.gateway_max_connections, max_buffer_bytes=settings.gateway_max_buffer_bytes,
            max_per_user=settings.gateway_max_connections_per_user)
        self._presence = PresenceLedger()
        self._presence_lock = asyncio.Lock()
        self._chargers = messages.ChargerListCache()
        self._counters = _Counters()
        self._fault = GatewayFault(settings.inject_fault) if settings.inject_fault in GATEWAY_FAULTS else None
        self._server: Server | None = None
        self._redis: Redis | None = None
        self._presence_script: AsyncScript | None = None
        self._subscriber: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._redis_run_id: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopped = False

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to Redis, then listen on ``settings.host:settings.gateway_port``.

        Returns once both are done; :class:`GatewayStartError` (after
        cleaning up) when Redis does not answer within ``startup_timeout`` or
        the port cannot be bound.
        """
        if self._server is not None or self._subscriber is not None:
            raise RuntimeError("the gateway is already started")
        self._redis = Redis.from_url(self._redis_url, socket_timeout=_REDIS_TIMEOUT_S,
                                     socket_connect_timeout=_REDIS_TIMEOUT_S,
                                     retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
        self._presence_script = self._redis.register_script(_PRESENCE_SCRIPT)
        self._subscriber = asyncio.create_task(self._subscribe_forever(), name="gateway-redis-subscriber")
        try:
            async with asyncio.timeout(self._startup_timeout):
                await self._subscribed.wait()
        except TimeoutError:
            await self.stop()
            raise GatewayStartError(f"Redis at {redacted_url(self._redis_url)} did not answer within "
                                    f"{self._startup_timeout:g} s: start it, or set REDIS_URL") from None
        settings = self.settings
        try:
            self._server = await serve(
                self._handle, settings.host, settings.gateway_port,
                ping_interval=settings.gateway_ping_interval_s, ping_timeout=settings.gateway_ping_timeout_s,
                close_timeout=self._close_timeout, write_limit=settings.gateway_max_buffer_bytes,
                max_size=settings.gateway_max_client_frame_bytes, open_timeout=settings.gateway_open_timeout_s,
                # room for more client frames than the flood guard allows: a socket closed while its reading is
                # paused (incoming queue full) does not get its close frame out (websockets 17, measured)
                max_queue=4 * settings.gateway_client_frames_per_10s,
                create_connection=None if self._watch is None else self._watch.connection_type,
                # Per-connection deflate would encode each message once per socket.
                compression=None, logger=log, process_request=self._process_request)
        except OSError as exc:
            await self.stop()
            raise GatewayStartError(f"cannot listen on {settings.host}:{settings.gateway_port}: {exc}") from exc
        log.info("gateway listening on %s", self.url)

    async def stop(self) -> None:
        """Stop forwarding, close every socket with 1001, cancel the tasks, close Redis. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await _cancel(self._subscriber)
        if self._server is not None:
            self._server.close(close_connections=True, code=SHUTDOWN.code, reason=SHUTDOWN.reason)
            try:
                async with asyncio.timeout(self._close_timeout + 1.0):
                    await self._server.wait_closed()
            except TimeoutError:
                for connection in list(self._server.all_connections):
                    connection.transport.abort()
                await self._server.wait_closed()
        for task in list(self._tasks):
            await _cancel(task)
        if self._redis is not None:
            await self._redis.aclose()
        self._subscribed.clear()
        log.info("gateway stopped")

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port bound (useful with ``gateway_port=0``)."""
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}"

    def metrics(self) -> GatewayMetrics:
        c = self._counters
        return GatewayMetrics(
            connections=self._router.connection_count, users=self._router.user_count,
            messages_received=c.messages_received, messages_forwarded=c.messages_forwarded,
            messages_unrouted=c.messages_unrouted, messages_invalid=c.messages_invalid,
            dropped_slow_clients=c.dropped_slow_clients, redis_reconnects=c.redis_reconnects,
            redis_connected=self._subscribed.is_set(), client_frames=c.client_frames, rejected=dict(c.rejected))

    # --- one connection ------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Refuse the handshake of any path but the root (seed 2: ``ws://host:8080?token=JWT``) with 404."""
        if path_allowed(request.path):
            return None
        self._counters.rejected["HTTP 404"] += 1
        return connection.respond(HTTPStatus.NOT_FOUND, "The gateway's WebSocket is at /?token=JWT\n")

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        decision = self._router.admit(connection, token_from_path(connection.request.path), self._verify)
        if isinstance(decision, Admitted) and (unknown := await self._user_rejection(decision.user_id)):
            self._router.remove(connection)
            decision = unknown
        if isinstance(decision, Rejection):
            # SPEC-NOTES N-48: complete the handshake, then close with the seed's code and reason.
            self._counters.rejected[decision.reason] += 1
            log.info("rejected %s: %d %s", connection.remote_address, decision.code, decision.reason)
            code, reason = decision.code, decision.reason
            if self._fault is not None:  # tests only (faults.py)
                code, reason = self._fault.close_refused(code, reason)
            await connection.close(code, reason)
            return
        user_id = decision.user_id
        self._presence.opened(user_id)
        try:
            await self._flush_presence()
            if await self._welcome(connection, user_id):
                await self._receive_only(connection)
        except ConnectionClosed:
            pass
        finally:
            self._router.remove(connection)
            self._presence.closed(user_id)
            await self._flush_presence()

    async def _welcome(self, connection: ServerConnection, user_id: int) -> bool:
        """Send the three messages of ruling 5, then what was queued meanwhile; False if it closed instead."""
        try:
            chargers_raw, session_raw = await self._read_snapshot(user_id)
        except (RedisError, OSError) as exc:
            log.warning("cannot read the on-connect snapshot of user %d (%s); closing", user_id, exc)
            await connection.close(REDIS_DOWN.code, REDIS_DOWN.reason)
            return False
        try:
            chargers_json = self._chargers.chargers_json(chargers_raw)
        except messages.SnapshotError as exc:
            log.error("%s; sending an empty charger list", exc)
            chargers_json = "[]"
        try:
            session = messages.parse_active_session(session_raw)
        except messages.SnapshotError as exc:
            log.error("user %d: %s; sending no active session", user_id, exc)
            session = None
        if self._fault is not None:  # tests only (faults.py)
            session = self._fault.session_on_connect(session)
        timestamp = format_timestamp(self._clock.now())
        texts = list(messages.welcome(user_id, timestamp, chargers_json=chargers_json, session=session))
        if self._fault is not None:  # tests only (faults.py)
            texts = self._fault.welcome(texts)
        for text in texts:
            await connection.send(text)
        queued = self._router.go_live(connection)
        for payload in queued:
            broadcast([connection], payload, text=True)
        self._counters.messages_forwarded += len(queued)
        return True

    async def _user_rejection(self, user_id: int) -> Rejection | None:
        """Whether the backend knows ``user_id`` (``chargetwin:users``); 1013 when Redis does not answer."""
        assert self._redis is not None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.exists(USERS_KEY)
                pipe.sismember(USERS_KEY, str(user_id))
                registry, member = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("cannot check user %d in Redis (%s); closing", user_id, exc)
            return REDIS_DOWN
        rejection = user_rejection(registry=bool(registry), member=bool(member))
        if rejection is not None:
            log.warning("user %d is not in %s, the users the backend wrote at its start: refused (another backend "
                        "publishing here? delete the key)", user_id, USERS_KEY)
        return rejection

    async def _read_snapshot(self, user_id: int) -> tuple[bytes | None, bytes | None]:
        assert self._redis is not None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(CHARGER_LIST_KEY)
            pipe.get(ACTIVE_SESSION_KEY.format(user_id=user_id))
            chargers_raw, session_raw = await pipe.execute()
        return chargers_raw, session_raw

    async def _receive_only(self, connection: ServerConnection) -> None:
        # DESIGN ruling 4: any frame from an app gets an error message; the socket stays open,
        # unless the app floods it (SPEC-NOTES N-57).
        guard = FloodGuard(limit=self.settings.gateway_client_frames_per_10s, window_s=10.0)
        async for _frame in connection:
            self._counters.client_frames += 1
            if not guard.allow(time.monotonic()):
                self._counters.rejected[TOO_MANY_MESSAGES.reason] += 1
                log.info("closing a socket of user %s: it floods the receive-only socket",
                         self._router.user_of(connection))
                await self._close_within(connection, TOO_MANY_MESSAGES)
                return
            await connection.send(messages.error(messages.RECEIVE_ONLY,
                                                 format_timestamp(self._clock.now())))

    # --- Redis -----------------------------------------------------------------------

    async def _subscribe_forever(self) -> None:
        """Keep one subscription to the three patterns; on loss, reconnect with backoff and resubscribe."""
        delays = reconnect_delays(rng=self._rng)
        lost = False
        while True:
            client = Redis.from_url(self._redis_url, retry=Retry(NoBackoff(), 0), socket_keepalive=True,
                                    socket_connect_timeout=_REDIS_TIMEOUT_S)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(*CHANNEL_PATTERNS)
                async with asyncio.timeout(_REDIS_TIMEOUT_S):
                    await self._confirm(pubsub)
                await self._subscribed_again(reconnected=lost)
                lost, delays = False, reconnect_delays(rng=self._rng)
                await self._pump(pubsub)
            except Exception as exc:  # RedisError and OSError (TimeoutError too) expected; anything else logged
                self._subscribed.clear()
                delay = next(delays)
                reason = str(exc) or type(exc).__name__
                if not isinstance(exc, RedisError | OSError):
                    log.exception("Redis subscriber failed; retrying in %.2f s", delay)
                elif not lost:
                    log.warning("%s (%s); reconnecting with backoff, first retry in %.2f s",
                                "Redis subscription lost" if self._redis_run_id else "cannot subscribe to Redis",
                                reason, delay)
                else:
                    log.info("Redis still unreachable (%s); next retry in %.2f s", reason, delay)
                lost = True
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis 8
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    async def _confirm(self, pubsub: PubSub) -> None:
        confirmed = 0
        while confirmed < len(CHANNEL_PATTERNS):
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "psubscribe":
                confirmed += 1

    async def _subscribed_again(self, *, reconnected: bool) -> None:
        assert self._redis is not None
        run_id = str((await self._redis.info("server"))["run_id"])
        if self._redis_run_id is not None and run_id != self._redis_run_id:
            # A new Redis server: it holds none of our presence entries (the twin's keeps nothing on disk).
            log.warning("Redis restarted; registering the %d connected users again", len(self._presence.counts))
            self._presence.reregister()
        self._redis_run_id = run_id
        await self._flush_presence()
        self._subscribed.set()
        if reconnected:
            self._counters.redis_reconnects += 1
            log.warning("Redis subscription restored (%s)", ", ".join(CHANNEL_PATTERNS))

    async def _pump(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "pmessage":
                self._forward(message["channel"], message["data"])

    def _forward(self, channel: bytes, payload: bytes) -> None:
        """Route one Redis message: write it to the user's live sockets, drop the slow ones."""
        self._counters.messages_received += 1
        if self._fault is not None and self._fault.drop(payload):  # tests only (faults.py)
            return
        routing = self._router.route(channel, payload, unsent=_unsent)
        if routing.problem is not None:
            self._counters.messages_invalid += 1
            log.warning("Redis message not forwarded: %s", routing.problem)
            return
        if routing.send:
            broadcast(routing.send, payload, text=True)
            self._counters.messages_forwarded += len(routing.send)
        elif not routing.queued and not routing.dropped:
            self._counters.messages_unrouted += 1
        for connection in routing.dropped:
            self._counters.dropped_slow_clients += 1
            log.info("user %s: dropping a slow client (%d bytes unsent)", routing.user_id, _unsent(connection))
            self._spawn(self._close_within(connection, CLIENT_TOO_SLOW))

    async def _flush_presence(self) -> None:
        """Write the pending presence changes (one atomic script call); keep them on failure."""
        async with self._presence_lock:
            deltas = self._presence.take()
            if not deltas or self._presence_script is None:
                self._presence.give_back(deltas)
                return
            try:
                await self._presence_script(keys=[CONNECTED_USERS_KEY],
                                            args=[x for pair in deltas.items() for x in pair])
            except (RedisError, OSError) as exc:
                self._presence.give_back(deltas)
                log.warning("presence of %d users not written to Redis (%s); retrying once it is back",
                            len(deltas), exc)
            except BaseException:
                self._presence.give_back(deltas)
                raise

    # --- helpers ---------------------------------------------------------------------

    async def _close_within(self, connection: ServerConnection, rejection: Rejection) -> None:
        # close() waits until the write buffer drains, which a stalled app never does: bound it.
        try:
            async with asyncio.timeout(self._close_timeout):
                await connection.close(rejection.code, rejection.reason)
        except TimeoutError:
            connection.transport.abort()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _unsent(connection: ServerConnection) -> int:
    """Bytes written to the socket's transport and not yet accepted by the kernel."""
    return int(connection.transport.get_write_buffer_size())


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        await cancel_and_wait((task,))

