"""``chargetwin check``: contract checks against someone else's backend and gateway, over the wire."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console

from ._run_cmd import check_out
from .twin.scenario import ScenarioError, load_scenario

__all__ = ["add_check_parser"]

USERS = (1, 2, 3, 4)
"""The test users ``check`` logs in as, two per phase (a phase starts with no session left by another):
users 1-10 are never used by the simulated drivers."""


def add_check_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "check", help="contract checks against someone else's backend and gateway",
        description="Check a deployment's backend and gateway against the contracts, over the wire, in phases: "
                    "the REST contract (happy paths and every error the rulings list, two users) and the "
                    "WebSocket contract (refused tokens and their close codes, connected first, client frames, "
                    "the heartbeat, a session's pushes). Every message is validated and judged by the "
                    "cross-message checks of a run. The target must know the network's stations and test users "
                    "(chargetwin network export NETWORK); its charge points must be connected (for instance "
                    "chargetwin cms). Writes results.json and junit.xml into --out.",
        epilog="Secrets come from the environment only: CHARGETWIN_JWT_SECRET signs the expired and forged tokens "
               "as the target would (its own secret), CHARGETWIN_CHECK_PASSWORD is the test users' password "
               "(default: the twin's). Exit codes: 0 conform, 1 a case not met or a violation, 2 bad input.")
    parser.add_argument("--backend", required=True, metavar="URL", help="the backend's base URL (http://...)")
    parser.add_argument("--gateway", required=True, metavar="URL", help="the gateway's URL (ws://...)")
    parser.add_argument("--network", default="smoke", metavar="SCENARIO",
                        help="the scenario whose stations and users the target was seeded with (default: smoke)")
    parser.add_argument("--out", type=Path, default=Path("out/check"), help="output folder (default: out/check)")
    parser.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                        help="how long a push may take, e.g. the first meter value of a session (default 120)")
    parser.set_defaults(run=_run)


def _url(value: str, schemes: tuple[str, ...], flag: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ValueError(f"{flag} {value!r}: give a URL such as {schemes[0]}://host:port")
    return value.rstrip("/")


def _run(args: argparse.Namespace) -> int:
    import os

    from .harness.conformance.phases import TestUser
    from .harness.conformance.suite import CheckTarget, run_check
    from .twin.model.world import World
    from .twin.services.auth import issue_token
    from .twin.services.settings import Settings
    from .twin.services.users import PASSWORD, test_users

    try:
        backend = _url(args.backend, ("http", "https"), "--backend")
        gateway = _url(args.gateway, ("ws", "wss"), "--gateway")
        scenario = load_scenario(args.network)
        settings = Settings.from_env()
        if args.wait <= 0:
            raise ValueError("--wait must be above 0")
    except (ScenarioError, ValueError) as error:
        print(f"chargetwin: {error}", file=sys.stderr)
        return 2
    problem = check_out(args.out)
    if problem is not None:
        print(f"chargetwin: {problem}", file=sys.stderr)
        return 2
    world = World(scenario)
    password = os.environ.get("CHARGETWIN_CHECK_PASSWORD") or PASSWORD
    known = {u.user_id: u for u in test_users((d.user_id, d.id_tag) for d in world.drivers)}
    if not all(user_id in known for user_id in USERS):
        print(f"chargetwin: the network {scenario.name} has fewer than {len(USERS)} users", file=sys.stderr)
        return 2
    stations = [s.spec for s in world.network.stations]

    def sign(user_id: int, issued_at: datetime, lifetime_s: float) -> str:
        return issue_token(user_id, secret=settings.jwt_secret, ttl_s=lifetime_s, now=issued_at)

    target = CheckTarget(
        backend=backend, gateway=gateway, network=scenario.name, wait_s=args.wait, sign=sign,
        users=[TestUser(known[u].user_id, known[u].email, password) for u in USERS],
        connectors=[(cp.id, n) for s in stations for cp in s.charge_points for n in range(1, cp.connectors + 1)],
        tariffs={s.id: s.tariff_per_kwh for s in stations})
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"chargetwin check: backend {backend}, gateway {gateway}, network {scenario.name}",
                  markup=False)
    try:
        return asyncio.run(run_check(target, out=args.out, console=console))
    except KeyboardInterrupt:
        print("chargetwin: interrupted", file=sys.stderr)
        return 130
