"""The gateway's decisions without sockets: admission, routing isolation, slow clients, welcome, presence."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import seed_message
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chargetwin.contracts import Validator
from chargetwin.twin.services.auth import InvalidTokenError
from chargetwin.twin.services.gateway import messages
from chargetwin.twin.services.gateway._backoff import reconnect_delays
from chargetwin.twin.services.gateway.presence import PresenceLedger
from chargetwin.twin.services.gateway.routing import (
    AT_CAPACITY,
    AUTHENTICATION_REQUIRED,
    CHANNEL_KINDS,
    CHANNEL_PATTERNS,
    INVALID_TOKEN,
    TOO_MANY_CONNECTIONS,
    Admitted,
    FloodGuard,
    Router,
    parse_channel,
    path_allowed,
    token_from_path,
    user_rejection,
)

users = st.integers(min_value=1, max_value=10**12)
kinds = st.sampled_from(CHANNEL_KINDS)


@dataclass(eq=False)
class FakeSocket:
    """A connection as the router sees it: anything hashable; ``unsent`` plays the transport's buffer."""

    name: str
    unsent: int = 0
    received: list[bytes] = field(default_factory=list)

    def __repr__(self) -> str:
        return self.name


def unsent(socket: FakeSocket) -> int:
    return socket.unsent


def verify(token: str) -> int:
    if not token.startswith("user-"):
        raise InvalidTokenError(token)
    return int(token.removeprefix("user-"))


def router(*, max_connections: int = 100, max_buffer_bytes: int = 1000) -> Router[FakeSocket]:
    return Router(max_connections=max_connections, max_buffer_bytes=max_buffer_bytes)


def live(r: Router[FakeSocket], user_id: int, name: str = "") -> FakeSocket:
    socket = FakeSocket(name or f"s{user_id}-{r.connection_count}")
    assert r.admit(socket, f"user-{user_id}", verify) == Admitted(user_id)
    assert r.go_live(socket) == []
    return socket


# --- channels and tokens ------------------------------------------------------------


def test_the_three_patterns_cover_the_seed_channels() -> None:
    assert CHANNEL_PATTERNS == ("user:*:notifications", "user:*:session_updates", "user:*:charger_updates")


@given(users, kinds)
def test_every_canonical_channel_names_its_user(user_id: int, kind: str) -> None:
    assert parse_channel(f"user:{user_id}:{kind}") == (user_id, kind)
    assert parse_channel(f"user:{user_id}:{kind}".encode()) == (user_id, kind)


@pytest.mark.parametrize("channel", [
    "user:007:notifications", "user:0:notifications", "user:-1:notifications", "user:+1:notifications",
    "user:1:notification", "user:1:notifications:x", "user:1:2:notifications", "user::notifications",
    "users:1:notifications", " user:1:notifications", "user:1:notifications\n", "user:\u0661:notifications",
    "user:1:*", "user:*:notifications",
])
def test_channels_that_route_nowhere(channel: str) -> None:
    assert parse_channel(channel) is None


@given(st.text(max_size=40))
def test_a_channel_routes_only_in_its_canonical_form(channel: str) -> None:
    parsed = parse_channel(channel)
    if parsed is not None:
        assert channel == f"user:{parsed[0]}:{parsed[1]}"


@pytest.mark.parametrize(("path", "token"), [
    ("/?token=abc.def.ghi", "abc.def.ghi"), ("?token=abc", "abc"), ("/gateway?x=1&token=t%2Bu", "t+u"),
    ("/?token=a&token=b", "a"), ("/", None), ("/?token=", None), ("/?tok=abc", None), ("/token=abc", None),
])
def test_token_from_the_query_string(path: str, token: str | None) -> None:
    assert token_from_path(path) == token


@pytest.mark.parametrize(("path", "allowed"), [
    ("/", True), ("/?token=abc", True), ("/?token=a&x=1", True),
    ("/ws", False), ("/ws?token=abc", False), ("/gateway/", False), ("//", False), ("/%2F", False),
])
def test_the_gateway_is_at_the_root(path: str, allowed: bool) -> None:
    assert path_allowed(path) is allowed


def test_a_user_the_backend_does_not_list_is_refused_as_an_invalid_token() -> None:
    assert user_rejection(registry=True, member=False) is INVALID_TOKEN
    assert user_rejection(registry=True, member=True) is None
    assert user_rejection(registry=False, member=False) is None, "no list (another backend): cannot tell, admit"


# --- admission ----------------------------------------------------------------------


def test_admission_checks_token_presence_validity_then_capacity() -> None:
    r = router(max_connections=1)
    assert r.admit(FakeSocket("a"), None, verify) is AUTHENTICATION_REQUIRED
    assert r.admit(FakeSocket("b"), "garbage", verify) is INVALID_TOKEN
    assert r.connection_count == 0, "a rejected connection is not registered"
    first = live(r, 5)
    assert r.admit(FakeSocket("c"), "user-6", verify) is AT_CAPACITY
    assert r.admit(FakeSocket("d"), None, verify) is AUTHENTICATION_REQUIRED
    r.remove(first)
    assert r.admit(FakeSocket("e"), "user-6", verify) == Admitted(6), "capacity counts concurrent connections"


def test_a_verifier_that_crashes_rejects_the_token() -> None:
    def broken(token: str) -> int:
        raise KeyError(token)

    assert router().admit(FakeSocket("a"), "x", broken) is INVALID_TOKEN


def test_rejections_are_the_close_codes_of_the_contracts(validator: Validator) -> None:
    for rejection in (AUTHENTICATION_REQUIRED, INVALID_TOKEN, AT_CAPACITY):
        close = {"code": rejection.code, "reason": rejection.reason}
        assert validator.validate(close, channel="websocket", direction="close") == []


# --- routing ------------------------------------------------------------------------


def test_a_message_goes_to_every_socket_of_its_user_and_no_other() -> None:
    r = router()
    phone, tablet, other = live(r, 1, "phone"), live(r, 1, "tablet"), live(r, 2, "other")
    routing = r.route(b"user:1:session_updates", b"{}", unsent=unsent)
    assert set(routing.send) == {phone, tablet} and routing.user_id == 1
    assert other not in routing.send
    assert r.route(b"user:3:notifications", b"{}", unsent=unsent).send == ()


def test_messages_for_a_welcoming_socket_are_queued_then_handed_back_in_order() -> None:
    r = router()
    socket = FakeSocket("s")
    r.admit(socket, "user-1", verify)
    for i in range(3):
        routing = r.route("user:1:notifications", b"m%d" % i, unsent=unsent)
        assert routing.send == () and routing.queued == 1
    assert not r.is_live(socket)
    assert r.go_live(socket) == [b"m0", b"m1", b"m2"]
    assert r.is_live(socket) and r.go_live(socket) == []
    assert r.route("user:1:notifications", b"m3", unsent=unsent).send == (socket,)


def test_bad_channels_and_payloads_are_reported_not_routed() -> None:
    r = router()
    live(r, 7)
    assert r.route(b"user:007:notifications", b"{}", unsent=unsent).problem
    routing = r.route(b"user:7:notifications", b"\xff\xfe", unsent=unsent)
    assert routing.problem == "payload is not UTF-8 text" and routing.send == ()


def test_a_slow_socket_is_dropped_and_the_others_still_get_the_message() -> None:
    r = router(max_buffer_bytes=100)
    slow, fast = live(r, 1, "slow"), live(r, 1, "fast")
    slow.unsent = 60
    routing = r.route("user:1:notifications", b"x" * 41, unsent=unsent)
    assert routing.dropped == (slow,) and routing.send == (fast,)
    assert r.user_of(slow) is None and r.connections_of(1) == {fast}
    assert r.remove(slow) is None, "already unregistered"


def test_the_buffer_may_fill_up_to_the_limit() -> None:
    r = router(max_buffer_bytes=100)
    socket = live(r, 1)
    socket.unsent = 60
    assert r.route("user:1:notifications", b"x" * 40, unsent=unsent).send == (socket,)


def test_a_big_message_to_a_socket_that_keeps_up_is_not_a_reason_to_drop_it() -> None:
    r = router(max_buffer_bytes=100)
    socket = live(r, 1)
    assert r.route("user:1:notifications", b"x" * 1000, unsent=unsent).send == (socket,)


def test_the_queue_of_a_welcoming_socket_is_bounded_too() -> None:
    r = router(max_buffer_bytes=100)
    socket = FakeSocket("s")
    r.admit(socket, "user-1", verify)
    assert r.route("user:1:notifications", b"x" * 60, unsent=unsent).queued == 1
    assert r.route("user:1:notifications", b"x" * 60, unsent=unsent).dropped == (socket,)
    assert r.go_live(socket) == []


class RoutingMachine(RuleBasedStateMachine):
    """Any interleaving of connects, welcomes, publishes, slow buffers and closes: nobody gets another's message."""

    def __init__(self) -> None:
        super().__init__()
        self.router: Router[FakeSocket] = router(max_connections=8, max_buffer_bytes=64)
        self.user_of: dict[FakeSocket, int] = {}  # the model: every socket ever admitted
        self.open: set[FakeSocket] = set()
        self.welcoming: set[FakeSocket] = set()
        self.queued: dict[FakeSocket, list[bytes]] = {}
        self.seq = 0

    @rule(user_id=st.integers(min_value=1, max_value=4))
    def connect(self, user_id: int) -> None:
        socket = FakeSocket(f"s{len(self.user_of)}")
        decision = self.router.admit(socket, f"user-{user_id}", verify)
        if len(self.open) >= 8:
            assert decision is AT_CAPACITY
            return
        assert decision == Admitted(user_id)
        self.user_of[socket] = user_id
        self.open.add(socket)
        self.welcoming.add(socket)
        self.queued[socket] = []

    @precondition(lambda self: bool(self.welcoming))
    @rule(data=st.data())
    def welcome_done(self, data: st.DataObject) -> None:
        socket = data.draw(st.sampled_from(sorted(self.welcoming, key=repr)))
        self.welcoming.discard(socket)
        handed = self.router.go_live(socket)
        assert handed == self.queued.pop(socket)
        socket.received.extend(handed)

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data(), size=st.integers(min_value=0, max_value=100))
    def fill_buffer(self, data: st.DataObject, size: int) -> None:
        data.draw(st.sampled_from(sorted(self.open, key=repr))).unsent = size

    @rule(user_id=st.integers(min_value=1, max_value=5), kind=kinds, size=st.integers(min_value=0, max_value=40))
    def publish(self, user_id: int, kind: str, size: int) -> None:
        self.seq += 1
        payload = json.dumps({"to": user_id, "seq": self.seq, "pad": "x" * size}).encode()
        routing = self.router.route(f"user:{user_id}:{kind}", payload, unsent=unsent)
        mine = {s for s in self.open if self.user_of[s] == user_id}
        assert set(routing.send) | set(routing.dropped) <= mine
        assert set(routing.send).isdisjoint(self.welcoming)
        assert len(routing.send) + len(routing.dropped) + routing.queued == len(mine)
        for socket in routing.send:
            socket.received.append(payload)
        for socket in mine - set(routing.send) - set(routing.dropped):
            self.queued[socket].append(payload)
        for socket in routing.dropped:
            backlog = socket.unsent if socket not in self.welcoming else sum(map(len, self.queued[socket]))
            assert backlog > 0 and backlog + len(payload) > 64
            self.open.discard(socket)
            self.welcoming.discard(socket)

    @precondition(lambda self: bool(self.open))
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        socket = data.draw(st.sampled_from(sorted(self.open, key=repr)))
        assert self.router.remove(socket) == self.user_of[socket]
        self.open.discard(socket)
        self.welcoming.discard(socket)

    @invariant()
    def every_socket_holds_only_its_users_messages_in_order(self) -> None:
        for socket, user_id in self.user_of.items():
            received = [json.loads(p) for p in socket.received]
            assert all(m["to"] == user_id for m in received), f"{socket} got another user's message"
            assert [m["seq"] for m in received] == sorted(m["seq"] for m in received)

    @invariant()
    def the_router_agrees_with_the_model(self) -> None:
        assert self.router.connection_count == len(self.open)
        assert self.router.user_count == len({self.user_of[s] for s in self.open})
        for socket in self.open:
            assert self.router.is_live(socket) == (socket not in self.welcoming)


TestRoutingMachine = RoutingMachine.TestCase


# --- the messages the gateway writes itself -------------------------------------------

SEED_CHARGERS = seed_message(743)["data"]["chargers"]  # seed 4.7
SEED_SESSION = seed_message(792)["data"]  # seed 4.8


@pytest.mark.parametrize(("chargers", "session"), [(SEED_CHARGERS, SEED_SESSION), ([], None)])
def test_the_welcome_is_three_conforming_messages_in_order(validator: Validator, chargers: list[Any],
                                                           session: dict[str, Any] | None) -> None:
    cache = messages.ChargerListCache()
    chargers_json = cache.chargers_json(json.dumps(chargers, indent=1).encode())
    texts = messages.welcome(42, "2025-01-29T12:00:00.000Z", chargers_json=chargers_json, session=session)
    decoded = [json.loads(t) for t in texts]
    assert [m["type"] for m in decoded] == ["connected", "charger_list_update", "active_session_update"]
    for message in decoded:
        assert validator.validate(message, channel="websocket", direction="receive") == []
    assert decoded[0]["userId"] == 42
    assert decoded[1]["data"]["chargers"] == chargers
    assert decoded[2]["has_active_session"] is (session is not None) and decoded[2]["data"] == session


def test_the_error_message_conforms(validator: Validator) -> None:
    message = json.loads(messages.error(messages.RECEIVE_ONLY, "2025-01-29T12:00:00.000Z"))
    assert validator.validate(message, channel="websocket", direction="receive") == []


def test_an_absent_charger_list_is_empty_and_a_broken_one_is_reported() -> None:
    cache = messages.ChargerListCache()
    assert cache.chargers_json(None) == "[]"
    for raw in (b"{not json", b'{"a": 1}', b"\xff"):
        with pytest.raises(messages.SnapshotError):
            cache.chargers_json(raw)


def test_the_charger_list_is_parsed_once_per_value(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = messages.ChargerListCache()
    calls: list[str] = []
    real_loads = json.loads

    def counting_loads(text: str) -> Any:
        calls.append(text)
        return real_loads(text)

    monkeypatch.setattr(json, "loads", counting_loads)
    for _ in range(3):
        assert cache.chargers_json(b"[]") == "[]"
    assert cache.chargers_json(b"[ ]") == "[ ]"
    assert len(calls) == 2


def test_active_session_snapshot() -> None:
    assert messages.parse_active_session(None) is None
    assert messages.parse_active_session(json.dumps(SEED_SESSION).encode()) == SEED_SESSION
    for raw in (b"[]", b"nope"):
        with pytest.raises(messages.SnapshotError):
            messages.parse_active_session(raw)


# --- presence -----------------------------------------------------------------------


def test_presence_deltas_coalesce_and_survive_a_failed_write() -> None:
    ledger = PresenceLedger()
    ledger.opened(1)
    ledger.opened(1)
    ledger.opened(2)
    ledger.closed(2)
    assert ledger.take() == {1: 2}
    assert ledger.take() == {}
    ledger.closed(1)
    failed = ledger.take()
    ledger.opened(3)
    ledger.give_back(failed)
    assert ledger.pending == {1: -1, 3: 1}
    assert ledger.counts == {1: 1, 3: 1}
    ledger.reregister()
    assert ledger.take() == {1: 1, 3: 1}
    with pytest.raises(ValueError, match="no open socket"):
        ledger.closed(9)


@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=1, max_value=3), st.booleans()), max_size=60))
def test_whatever_is_written_adds_up_to_the_open_sockets(steps: list[tuple[bool, int, bool]]) -> None:
    ledger = PresenceLedger()
    written: dict[int, int] = {}
    for opening, user_id, write_fails in steps:
        if opening:
            ledger.opened(user_id)
        elif ledger.counts.get(user_id):
            ledger.closed(user_id)
        deltas = ledger.take()
        if write_fails:
            ledger.give_back(deltas)
        else:
            for u, d in deltas.items():
                written[u] = written.get(u, 0) + d
    for u, d in ledger.take().items():
        written[u] = written.get(u, 0) + d
    assert {u: n for u, n in written.items() if n} == ledger.counts


# --- backoff ------------------------------------------------------------------------


def test_reconnect_delays_grow_with_jitter_up_to_the_cap() -> None:
    delays = reconnect_delays(initial=0.1, maximum=1.0, rng=random.Random(1))
    firsts = [next(delays) for _ in range(10)]
    assert 0.05 <= firsts[0] <= 0.1
    assert all(0.5 <= d <= 1.0 for d in firsts[5:])
    with pytest.raises(ValueError):
        next(reconnect_delays(initial=0, rng=random.Random(1)))


def test_one_user_holds_at_most_max_per_user_sockets_and_gets_one_back_when_one_closes() -> None:
    router: Router[FakeSocket] = Router(max_connections=100, max_buffer_bytes=1024, max_per_user=2)
    first, second, third = FakeSocket("a"), FakeSocket("b"), FakeSocket("c")
    assert router.admit(first, "t", lambda _: 7) == Admitted(7)
    assert router.admit(second, "t", lambda _: 7) == Admitted(7)
    assert router.admit(third, "t", lambda _: 7) == TOO_MANY_CONNECTIONS
    assert router.admit(third, "t", lambda _: 8) == Admitted(8)  # another user is not held back
    router.remove(first)
    assert router.admit(FakeSocket("d"), "t", lambda _: 7) == Admitted(7)


def test_the_flood_guard_allows_limit_frames_per_window_and_forgets_old_ones() -> None:
    guard = FloodGuard(limit=3, window_s=10.0)
    assert [guard.allow(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert guard.allow(3.0) is False  # a fourth within 10 s
    fresh = FloodGuard(limit=3, window_s=10.0)
    assert all(fresh.allow(t * 4.0) for t in range(100))  # one frame every 4 s never floods
    with pytest.raises(ValueError):
        FloodGuard(limit=0)
