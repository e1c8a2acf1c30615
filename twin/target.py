"""Someone else's services as the stack of a run: ``chargetwin run SCENARIO --target TARGET.toml``.

A target file names the target's URLs and how each test user gets a token
(docs/target-format.md)::

    [target]
    backend = "https://api.staging.example.com"
    gateway = "wss://ws.staging.example.com"
    ocpp = "wss://ocpp.staging.example.com"     # the central system; the twin's charge points connect to it
    redis = "REDIS_URL"                          # optional: the NAME of a variable holding the URL
    boot_timeout_s = 60                          # optional: how long the charge points may take to boot

    [tokens]
    kind = "login"                               # login | sign | env | command
    password = "STAGING_TEST_PASSWORD"           # login: the variable holding the test users' password

Secrets are never in the file: it names environment variables. A
:class:`TargetStack` has what a run uses of :class:`~.stack.Stack`: the
world and the clock, the model runner, the URLs and a token per user. It
starts nothing of the target's: the twin's charge points connect to its
central system and the simulated apps use its backend and gateway.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .clock import SimClock
from .model.config import Scenario
from .model.world import App, World
from .runner import ModelRunner
from .services.auth import issue_token
from .services.chargepoints import ChargePointFleet
from .services.settings import Settings
from .services.users import PASSWORD, test_users
from .stack import StackUrls

__all__ = ["Target", "TargetError", "TargetStack", "load_target"]

TOKEN_KINDS = ("login", "sign", "env", "command")


class TargetError(ValueError):
    """A target file that cannot be used: the message names the file, the key and what to do."""


@dataclass(frozen=True, slots=True)
class Target:
    """A target's URLs and how its test users get tokens (secrets as read from the environment)."""

    source: str
    backend: str
    gateway: str
    ocpp: str
    redis: str | None
    tokens: str  # one of TOKEN_KINDS
    password: str = PASSWORD  # login
    secret: str = ""  # sign
    token_variable: str = ""  # env: a variable per user, "{user_id}" in its name
    command: tuple[str, ...] = ()  # command: argv printing a user's token, "{user_id}" in an argument
    boot_timeout_s: float = 60.0  # how long the twin's charge points may take to connect and boot


def load_target(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Target:
    """Read a target file; :class:`TargetError` naming the file and key for anything wrong."""
    env = os.environ if environ is None else environ
    source = os.fspath(path)
    try:
        document = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as error:
        raise TargetError(f"{source}: cannot read the target file: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise TargetError(f"{source}: not TOML: {error}") from None
    unknown = set(document) - {"target", "tokens", "ids"}
    if unknown:
        raise TargetError(f"{source}: unknown table(s) {', '.join(sorted(unknown))}; known: [target], [tokens]")
    if "ids" in document:
        raise TargetError(f"{source}: [ids] (mapping the twin's ids to yours) is not supported yet: seed the target "
                          "with the twin's ids (chargetwin network export)")
    table = document.get("target")
    if not isinstance(table, dict):
        raise TargetError(f"{source}: no [target] table with backend, gateway and ocpp URLs")
    urls = {key: _url(source, table, key, schemes) for key, schemes in
            (("backend", ("http", "https")), ("gateway", ("ws", "wss")), ("ocpp", ("ws", "wss")))}
    redis = None
    if table.get("redis") is not None:
        redis = _variable(source, "target.redis", table["redis"], env)
    tokens = document.get("tokens", {"kind": "login"})
    if not isinstance(tokens, dict):
        raise TargetError(f"{source}: [tokens] must be a table")
    kind = tokens.get("kind", "login")
    if kind not in TOKEN_KINDS:
        raise TargetError(f"{source}: tokens.kind = {kind!r}; use one of {', '.join(TOKEN_KINDS)}")
    password, secret, variable = PASSWORD, "", ""
    if kind == "login" and tokens.get("password") is not None:
        password = _variable(source, "tokens.password", tokens["password"], env)
    elif kind == "sign":
        secret = _variable(source, "tokens.secret", tokens.get("secret", "CHARGETWIN_JWT_SECRET"), env)
    elif kind == "env":
        named = tokens.get("variable")
        if not isinstance(named, str) or "{user_id}" not in named:
            raise TargetError(f"{source}: tokens.variable must name the variable of each user's token, with "
                              "{user_id} in it, e.g. \"STAGING_TOKEN_{user_id}\"")
        variable = named
    command: tuple[str, ...] = ()
    if kind == "command":
        argv = tokens.get("command")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) \
                or not any("{user_id}" in a for a in argv):
            raise TargetError(f"{source}: tokens.command must be a list of strings, one with {{user_id}} in it, e.g. "
                              "[\"./get-token\", \"--user\", \"{user_id}\"]")
        command = tuple(argv)
    boot = table.get("boot_timeout_s", 60.0)
    if isinstance(boot, bool) or not isinstance(boot, int | float) or boot <= 0:
        raise TargetError(f"{source}: target.boot_timeout_s = {boot!r}; give a number of seconds above 0")
    return Target(source, urls["backend"], urls["gateway"], urls["ocpp"], redis, kind, password, secret, variable,
                  command, float(boot))


def _url(source: str, table: dict[str, Any], key: str, schemes: tuple[str, ...]) -> str:
    value = table.get(key)
    if not isinstance(value, str) or urlsplit(value).scheme not in schemes or not urlsplit(value).netloc:
        raise TargetError(f"{source}: target.{key} = {value!r}; give a URL such as {schemes[0]}://host:port")
    return value.rstrip("/")


def _variable(source: str, key: str, name: Any, env: dict[str, str] | Any) -> str:
    if not isinstance(name, str) or not name:
        raise TargetError(f"{source}: {key} must name an environment variable (secrets are never in the file)")
    value = env.get(name)
    if not value:
        raise TargetError(f"{source}: {key} names the variable {name}, which is not set")
    return str(value)


class TargetStack:
    """The twin's side of a run against a target: the world, its charge points on the target's OCPP endpoint.

    Same call order as :class:`~.stack.Stack`. ``ocpp_tap`` gets each frame
    from the central system's view (``receive``: the charge point sent it),
    as the stack's CMS reports them.
    """

    def __init__(self, scenario: Scenario, target: Target, *, speed: float,
                 app_factory: Callable[[TargetStack], App] | None = None,
                 ocpp_tap: Callable[[str, str, str], None] | None = None,
                 on_lag: Callable[[float], None] | None = None) -> None:
        self.scenario = scenario
        self.target = target
        self.speed = speed
        self.world = World(scenario)
        self.users = test_users((d.user_id, d.id_tag) for d in self.world.drivers)
        self.clock: SimClock | None = None
        self.fleet: ChargePointFleet | None = None
        self.runner: ModelRunner | None = None
        self.gateway = None  # not ours: no metrics from inside it
        self.cms = None
        self._app_factory = app_factory
        self._ocpp_tap = ocpp_tap
        self._on_lag = on_lag
        self._tokens: dict[int, str] = {}
        self._http: httpx.AsyncClient | None = None

    @property
    def urls(self) -> StackUrls:
        t = self.target
        return StackUrls(backend=t.backend, cms="", ocpp=t.ocpp, gateway=t.gateway, redis=t.redis or "")

    async def start(self) -> None:
        """Connect the charge points and wait for their boots; then time runs and the apps go."""
        boot_timeout = self.target.boot_timeout_s
        self.clock = SimClock(self.scenario.run.start, speed=self.speed, held=True)
        self._http = httpx.AsyncClient(base_url=self.target.backend, timeout=30)

        def tap(charge_point_id: str, direction: str, frame: str) -> None:
            if self._ocpp_tap is not None:
                self._ocpp_tap(charge_point_id, "receive" if direction == "send" else "send", frame)

        self.fleet = ChargePointFleet(self.world, Settings(), self.clock, ocpp_url=self.target.ocpp, tap=tap)
        await self.fleet.start()
        try:
            await self.fleet.wait_ready(boot_timeout)
        except TimeoutError:
            missing = [cp.id for cp in self.fleet.charge_points.values() if not cp.ready.is_set()]
            await self.stop()
            raise TargetError(f"{len(missing)} charge points did not connect to {self.target.ocpp} and boot within "
                              f"{boot_timeout:g} s (first: {', '.join(missing[:3])}): is the central system up, and "
                              "does it know the twin's charge points (chargetwin network export)?") from None
        if self._app_factory is not None:
            self.world.app = self._app_factory(self)
        self.clock.begin()
        self.runner = ModelRunner(self.world, self.clock, on_lag=self._on_lag)
        self.runner.start()

    def token(self, user_id: int) -> str | Awaitable[str]:
        """The user's token: signed, from the environment, or (login) an awaitable of one, cached."""
        if user_id in self._tokens:
            return self._tokens[user_id]
        if self.target.tokens == "sign":
            return issue_token(user_id, secret=self.target.secret, ttl_s=24 * 3600, now=datetime.now(UTC))
        if self.target.tokens == "env":
            name = self.target.token_variable.replace("{user_id}", str(user_id))
            token = os.environ.get(name)
            if not token:
                raise TargetError(f"{self.target.source}: no token for user {user_id}: {name} is not set")
            return token
        if self.target.tokens == "command":
            return self._command(user_id)
        return self._login(user_id)

    async def _command(self, user_id: int) -> str:
        argv = [a.replace("{user_id}", str(user_id)) for a in self.target.command]
        try:
            process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                           stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(process.communicate(), 30)
        except (OSError, TimeoutError) as error:
            raise TargetError(f"{self.target.source}: tokens.command for user {user_id} failed: {error}") from None
        token = out.decode(errors="replace").strip()
        if process.returncode != 0 or not token:
            raise TargetError(f"{self.target.source}: tokens.command for user {user_id} exited {process.returncode} "
                              f"without a token: {err.decode(errors='replace').strip()[:200]}")
        self._tokens[user_id] = token
        return token

    async def _login(self, user_id: int) -> str:
        assert self._http is not None
        user = next(u for u in self.users if u.user_id == user_id)
        answer = await self._http.post("/api/auth/login", json={"email": user.email, "password": self.target.password})
        data = answer.json().get("data") if answer.headers.get("content-type", "").startswith("application/json") \
            else None
        token = data.get("token") if isinstance(data, dict) else None
        if answer.status_code != 200 or not isinstance(token, str):
            raise TargetError(f"user {user_id} ({user.email}) cannot log in to {self.target.backend}: HTTP "
                              f"{answer.status_code}")
        self._tokens[user_id] = token
        return token

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
            self.runner = None
        if self.fleet is not None:
            await self.fleet.stop()
            self.fleet = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await asyncio.sleep(0)
