"""Generated junk against the backend, the gateway and the CMS's OCPP endpoint; they keep serving throughout.

Hypothesis throws requests, handshakes and frames no client should send at a
running stack (real sockets), a bounded number of each. A 5xx answer from the
backend (an error it did not foresee) or a service that stops answering a
well-formed client (checked every few examples and at the end) fails the test.
The counts of what was tried are printed (``pytest -s``) for the notes.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stack_testkit import quiet, settings_for
from webapp_testkit import StackThread, with_external_charge_point
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from chargetwin.twin.stack import Stack

ADMIN = "fuzz-admin-token"
EXTERNAL = "FUZZ1"
EXAMPLES = 120
"""Examples per target: three targets, about ten seconds each."""
CHECK_EVERY = 25

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
junk_text = st.text(max_size=200) | json_values.map(json.dumps)
header_values = st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ", max_size=60)
query_text = st.text(alphabet="".join(c for c in string.printable if c not in " \t\r\n\x0b\x0c#"), max_size=60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with with_external_charge_point(tmp_path_factory.mktemp("fuzz"), EXTERNAL, admin_token=ADMIN,
                                    gateway_open_timeout_s=2.0) as running:
        yield running


class Tally:
    """What a target was sent, and what came back."""

    def __init__(self, name: str) -> None:
        self.name, self.tried, self.answers = name, 0, {}  # type: tuple[str, int, dict[str, int]]

    def saw(self, what: str) -> None:
        self.tried += 1
        self.answers[what] = self.answers.get(what, 0) + 1

    def report(self) -> None:
        print(f"\nfuzz {self.name}: {self.tried} inputs; answers {dict(sorted(self.answers.items()))}; crashes 0")


def _token(stack: Stack) -> str:
    answer = httpx.post(f"{stack.urls.backend}/api/auth/login",
                        json={"email": "user1@chargetwin.example", "password": "chargetwin"}, timeout=10)
    assert answer.status_code == 200, f"the backend no longer logs in a good user: {answer.text}"
    token: str = answer.json()["data"]["token"]
    return token


def _still_serving(stack: Stack) -> None:
    """A well-formed client of each service is served."""
    token = _token(stack)
    assert httpx.get(f"{stack.urls.backend}/api/health", timeout=10).status_code == 200
    with connect(f"{stack.urls.gateway}/?token={token}", open_timeout=10) as socket_:
        assert json.loads(socket_.recv(timeout=10))["type"] == "connected"
    with connect(f"{stack.urls.ocpp}/{EXTERNAL}", subprotocols=[Subprotocol("ocpp1.6")], open_timeout=10) as cms:
        cms.send(json.dumps([2, "alive", "Heartbeat", {}]))
        assert json.loads(cms.recv(timeout=10))[:2] == [3, "alive"]


start_bodies = st.fixed_dictionaries({"charger_id": st.sampled_from(["CP001", "CP004", "NOPE"]) | st.text(max_size=8),
                                      "connector_id": st.integers(-5, 50)}).map(lambda b: json.dumps(b).encode())


def fuzz_backend(stack: Stack, *, paths: st.SearchStrategy[str], methods: st.SearchStrategy[str],
                 bodies: st.SearchStrategy[bytes]) -> Tally:
    """Throw generated requests at the backend; AssertionError on a 5xx or a backend that stops serving."""
    tally = Tally("backend")
    token = _token(stack)

    @FUZZ
    @given(method=methods, path=paths, auth=st.none() | st.just(f"Bearer {token}") | header_values,
           content_type=st.none() | st.just("application/json") | header_values, body=bodies)
    def example(method: str, path: str, auth: str | None, content_type: str | None, body: bytes) -> None:
        headers = {k: v for k, v in (("Authorization", auth), ("Content-Type", content_type)) if v is not None}
        try:
            answer = httpx.request(method, stack.urls.backend + path, content=body, headers=headers, timeout=10)
        except (httpx.InvalidURL, httpx.LocalProtocolError):
            return  # not a request httpx can send (a header value with spaces at its ends, say)
        assert answer.status_code < 500, (method, path, headers, body, answer.status_code, answer.text)
        tally.saw(str(answer.status_code))
        if tally.tried % CHECK_EVERY == 0:
            _still_serving(stack)

    example()
    _still_serving(stack)
    return tally


def test_the_backend_answers_junk_without_an_error_of_its_own(stack: Stack) -> None:
    endpoints = st.sampled_from(["/api/auth/login", "/api/charging/start", "/api/charging/stop", "/api/health",
                                 "/internal/cms/events", "/twin/violations"])
    tally = fuzz_backend(stack, paths=st.one_of(endpoints, endpoints, endpoints, st.text(  # mostly real endpoints
        alphabet=string.ascii_letters + "/%?&=.", max_size=30).map(lambda p: "/" + p)),
        methods=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH"]),
        bodies=st.binary(max_size=300) | junk_text.map(str.encode) | start_bodies)
    tally.report()
    assert tally.tried >= EXAMPLES // 2


def test_the_backend_fuzzer_finds_a_backend_that_fails(tmp_path: Path) -> None:
    """The check can fail: a backend that answers 500 to some start bodies (fault ``server_error``) is caught."""
    faulty = settings_for(tmp_path, inject_fault="server_error")
    with StackThread(quiet(), faulty, speed=60.0) as running, pytest.raises(AssertionError, match="500"):
        fuzz_backend(running.stack, paths=st.just("/api/charging/start"), methods=st.just("POST"),
                     bodies=start_bodies)


def test_the_gateway_survives_junk_handshakes_and_frames(stack: Stack) -> None:
    tally = Tally("gateway")
    token = _token(stack)

    @FUZZ
    @given(query=query_text,
           frames=st.lists(st.binary(max_size=200) | junk_text, max_size=5))
    def example(query: str, frames: list[bytes | str]) -> None:
        for url in (f"{stack.urls.gateway}/?{query}", f"{stack.urls.gateway}/?token={token}"):
            try:
                with connect(url, open_timeout=5) as socket_:
                    for frame in frames:
                        socket_.send(frame)
                    socket_.recv(timeout=0.2)
                    tally.saw("open")
            except (InvalidStatus, InvalidHandshake):
                tally.saw("refused")
            except InvalidURI:
                return  # not a URL the client can open
            except ConnectionClosed as closed:
                tally.saw(f"closed {closed.rcvd.code if closed.rcvd else 'abruptly'}")
            except TimeoutError:
                tally.saw("open")
        if tally.tried % CHECK_EVERY == 0:
            _still_serving(stack)

    example()
    _still_serving(stack)
    tally.report()
    assert tally.tried >= EXAMPLES


def test_the_cms_answers_junk_ocpp_frames_and_keeps_the_connection(stack: Stack) -> None:
    tally = Tally("cms-ocpp")
    actions = st.sampled_from(["BootNotification", "StatusNotification", "StartTransaction", "StopTransaction",
                               "MeterValues", "Authorize", "Heartbeat", "DataTransfer"]) | st.text(max_size=15)
    frames = (st.tuples(st.just(2), st.text(max_size=10), actions, json_values).map(list)
              | st.lists(json_values, max_size=5) | junk_text)

    @FUZZ
    @given(frame=frames)
    def example(frame: Any) -> None:
        with connect(f"{stack.urls.ocpp}/{EXTERNAL}", subprotocols=[Subprotocol("ocpp1.6")],
                     open_timeout=5) as cms:
            cms.send(frame if isinstance(frame, str) else json.dumps(frame))
            try:
                answer = json.loads(cms.recv(timeout=0.3))
                tally.saw({2: "call", 3: "result", 4: f"error {answer[2]}"}.get(answer[0], "other")
                          if isinstance(answer, list) and answer else "other")
            except TimeoutError:
                tally.saw("no answer")
            cms.send(json.dumps([2, "still", "Heartbeat", {}]))  # the connection survived
            while (answer := json.loads(cms.recv(timeout=10)))[1:2] != ["still"]:
                pass
            assert answer[0] == 3
        if tally.tried % CHECK_EVERY == 0:
            _still_serving(stack)

    example()
    _still_serving(stack)
    tally.report()
    assert tally.tried >= EXAMPLES // 2
