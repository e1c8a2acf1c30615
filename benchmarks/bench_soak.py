"""Soak: ``chargetwin serve`` at high speed for a simulated day with a few hundred app sockets; its memory over time.

A benchmark, not a test: it reports figures and asserts nothing. Run it with
``nox -s bench`` (or ``python benchmarks/bench_soak.py --sockets 300 --speed
720 --days 1``). It starts ``serve`` in a fresh process (a fresh state folder,
free ports), logs its test users in, holds ``--sockets`` WebSockets open on
the gateway (spread over the users, each counting what it receives), and
samples the serve process's resident memory (``/proc``; Linux) every
``--every`` wall seconds until ``--days`` simulated days have passed (by the
twin's clock: where the machine cannot hold the speed, simulated time waits
for the services, and the run takes longer). It reports the speed it held,
the peak, the memory after warm-up (the first ``--warmup`` of the simulated
time) and the growth from there to the end: flat means a served twin can
run for days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _banner(process: asyncio.subprocess.Process, timeout: float = 120.0) -> dict[str, str]:
    """The URLs ``serve`` prints once it is up."""
    assert process.stdout is not None
    urls: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while "gateway" not in urls or "backend" not in urls:
            line = (await process.stdout.readline()).decode()
            if not line:
                raise SystemExit("serve stopped before it printed its URLs")
            found = re.match(r"\s+(backend|gateway)\s+(\S+?)(/\?token=TOKEN)?\s", line)
            if found:
                urls[found.group(1)] = found.group(2)
    return urls


async def _hold(url: str, token: str, counts: list[int], index: int, stop: asyncio.Event) -> None:
    """One app socket: reconnect if dropped, count messages, until ``stop``."""
    while not stop.is_set():
        try:
            async with connect(f"{url}/?token={token}", open_timeout=30) as socket:
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(socket.recv(), 1.0)
                        counts[index] += 1
                    except TimeoutError:
                        continue
        except (OSError, TimeoutError, Exception):  # a benchmark: keep the socket count up, whatever happened
            await asyncio.sleep(0.5)


async def soak(scenario: str, *, speed: float, days: float, sockets: int, every: float, warmup: float
               ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as state:
        command = [sys.executable, "-m", "chargetwin", "serve", scenario, "--speed", str(speed), "--state", state,
                   "--fresh", "--backend-port", "0", "--cms-port", "0", "--ocpp-port", "0", "--gateway-port", "0",
                   "--show-users", "0"]
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE,
                                                       stderr=subprocess.DEVNULL)
        stop = asyncio.Event()
        try:
            urls = await _banner(process)
            async with httpx.AsyncClient(base_url=urls["backend"], timeout=30) as http:
                tokens = []
                for user_id in range(1, 10_000):
                    answer = await http.post("/api/auth/login", json={"email": f"user{user_id}@chargetwin.example",
                                                                       "password": "chargetwin"})
                    if answer.status_code != 200 or len(tokens) >= sockets:
                        break
                    tokens.append(answer.json()["data"]["token"])
            counts = [0] * sockets
            holders = [asyncio.create_task(_hold(urls["gateway"], tokens[i % len(tokens)], counts, i, stop))
                       for i in range(sockets)]
            token = (Path(state) / "admin-token").read_text(encoding="utf-8").strip()
            samples: list[tuple[float, float]] = []
            started = time.monotonic()
            async with httpx.AsyncClient(base_url=urls["backend"], timeout=30,
                                         headers={"X-Twin-Token": token}) as http:
                sim0 = await _simulated(http)
                simulated = 0.0
                held = (1.0, 0.0)
                # until the simulated days passed (simulated time waits when the machine cannot hold the speed)
                while simulated < days * 86_400 and time.monotonic() - started < 4 * days * 86_400 / speed:
                    elapsed = time.monotonic() - started
                    simulated = await _simulated(http) - sim0
                    samples.append((simulated, rss_mb(process.pid)))
                    pace = simulated / max(elapsed, 1)
                    held = (elapsed, simulated)
                    print(f"  {elapsed:7.0f} s  simulated {simulated / 3600:5.1f} h ({pace:4.0f}x)  serve RSS "
                          f"{samples[-1][1]:7.1f} MB  messages to apps {sum(counts):,}", flush=True)
                    await asyncio.sleep(every)
                waited = (await http.get("/twin/clock")).json()["data"]["waited_s"]
            wall = time.monotonic() - started
            stop.set()
            await asyncio.gather(*holders)
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()
    after = [mb for t, mb in samples if t >= warmup * days * 86_400] or [samples[-1][1]]
    return {"scenario": scenario, "speed": speed, "simulated_days": round(samples[-1][0] / 86_400, 2),
            "effective_speed": round(held[1] / max(held[0], 1.0)), "waited_for_services_s": waited, "sockets": sockets,
            "users": len(tokens), "wall_s": round(wall, 1), "messages_to_apps": sum(counts),
            "peak_rss_mb": round(max(mb for _, mb in samples), 1),
            "rss_after_warmup_mb": round(after[0], 1), "rss_end_mb": round(after[-1], 1),
            "growth_after_warmup_mb": round(after[-1] - after[0], 1),
            "median_after_warmup_mb": round(statistics.median(after), 1),
            "samples": [(round(t, 1), round(mb, 1)) for t, mb in samples]}


async def _simulated(http: httpx.AsyncClient) -> float:
    """Simulated seconds since the epoch, as the twin's clock says (the control API)."""
    answer = (await http.get("/twin/clock")).json()["data"]["now"]
    return datetime.fromisoformat(answer.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="smoke")
    parser.add_argument("--speed", type=float, default=720.0, help="simulated seconds per wall second (default 720)")
    parser.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    parser.add_argument("--sockets", type=int, default=300, help="app sockets held open (default 300)")
    parser.add_argument("--every", type=float, default=5.0, help="wall seconds between samples (default 5)")
    parser.add_argument("--warmup", type=float, default=0.2, help="share of the run that is warm-up (default 0.2)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("bench_soak reads /proc: it runs on Linux only")
    print(f"soak: serve {args.scenario} at {args.speed:g}x for {args.days:g} simulated day(s), "
          f"{args.sockets} sockets")
    figures = asyncio.run(soak(args.scenario, speed=args.speed, days=args.days, sockets=args.sockets,
                               every=args.every, warmup=args.warmup))
    print(f"\nserve peak RSS {figures['peak_rss_mb']} MB; after warm-up {figures['rss_after_warmup_mb']} MB, "
          f"at the end {figures['rss_end_mb']} MB (growth {figures['growth_after_warmup_mb']:+} MB); "
          f"{figures['messages_to_apps']:,} messages to {figures['sockets']} sockets of {figures['users']} users "
          f"in {figures['wall_s']} s: {figures['simulated_days']} simulated days at {figures['effective_speed']}x "
          f"(asked {figures['speed']:g}x; simulated time waited {figures['waited_for_services_s']} s for the services)")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
