"""The internal HTTP hop (CMS -> backend events): requests per second, with and without sniffio installed.

A benchmark, not a test: it reports figures and asserts nothing. Run it with
``nox -s bench`` (or ``python benchmarks/bench_http.py``). Every meter
value of every charge point crosses this hop once, so its cost per request
bounds how fast a city can run. An httpx client posts small JSON events to
a uvicorn + FastAPI endpoint answering 202, 8 in flight (as the CMS's
delivery does), all in one process as in ``chargetwin run``. httpcore asks
``import sniffio`` on every request; without the package that is a failed
import, a search of ``sys.path``, each time. Each variant runs in a fresh
process; variants alternate; the median is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.abc
import importlib.machinery
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from _variants import measure, report  # benchmarks/ is the script's folder


class _WithoutSniffio(importlib.abc.MetaPathFinder):
    """``import sniffio`` fails as on a machine without it: after the same search of ``sys.path``."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "sniffio":
            importlib.machinery.PathFinder.find_spec("sniffio_is_not_installed")
            raise ModuleNotFoundError("No module named 'sniffio'", name=name)
        return None


if "--child" in sys.argv and "without sniffio" in sys.argv:  # before anything imports it (anyio, httpcore)
    sys.meta_path.insert(0, _WithoutSniffio())

from fastapi import FastAPI, Request, Response  # noqa: E402

VARIANTS = {"without sniffio": False, "with sniffio": True}
IN_FLIGHT = 8


def _app() -> Any:
    """The endpoint: read the JSON body, answer 202 (the backend's own does its work on top of this)."""
    app = FastAPI()

    @app.post("/internal/cms/events", status_code=202)
    async def event(request: Request) -> Response:
        await request.json()
        return Response(status_code=202)

    return app


async def _post_events(requests: int) -> float:
    import httpx  # after the variant's sys.modules change
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(_app(), log_level="warning", lifespan="off", http="h11"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/internal/cms/events"
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=IN_FLIGHT)) as client:

        async def post(n: int) -> None:
            async with gate:
                await client.post(url, json={"event": "meter_value", "charger_id": "CP001", "transaction_id": n,
                                             "data": {"energy_delivered": 4.2, "power": 22.0, "meter_value": 4200}})

        start = time.perf_counter()
        await asyncio.gather(*(post(n) for n in range(requests)))
        elapsed = time.perf_counter() - start
    server.should_exit = True
    await serving
    return requests / elapsed


def _child(variant: str, requests: int) -> None:
    assert VARIANTS[variant] == ("sniffio" in sys.modules or _importable("sniffio")), "variant not in effect"
    print(json.dumps(asyncio.run(_post_events(requests))))


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="events posted per run (default 3000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.requests)
        return 0
    figures = measure(__file__, VARIANTS, rounds=args.rounds, args=["--requests", str(args.requests)])
    report(f"internal HTTP hop: {args.requests} events, {IN_FLIGHT} in flight, median of {args.rounds}",
           "variant", figures, unit="requests/s", out=args.out, context={"requests": args.requests})
    return 0


if __name__ == "__main__":
    sys.exit(main())
