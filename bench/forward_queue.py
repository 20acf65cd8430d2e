"""Forwarding from the durable queue (`listen --ack`): how fast a backlog drains to a local target.

A backlog of N deliveries is built while the target is down (as after an outage), every item
is made due, then the target comes up and `listen --ack` is restarted; the figure is the
time from the moment it answers until every item is done. `--checkout DIR` runs another checkout's
hookinspect in the same run (for example the previous release), for a side-by-side figure.
The bare target alone is also loaded with the same number of requests by one aiohttp
client at the same concurrency, as the ceiling of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, stop, wait_port  # noqa: E402

# A target that takes `delay` seconds per request, as a real backend does (a database write,
# a call of its own): what sending several at once is for.
SLOW_TARGET = """
import asyncio, sys
from aiohttp import web

async def handle(request):
    await request.read()
    await asyncio.sleep(float(sys.argv[2]))
    return web.Response(text="ok")

app = web.Application()
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def start_target(port: int, delay: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_TARGET, str(port), str(delay)])
    wait_port(port)
    return proc


def listen(port: int, store: Path, target: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "hookinspect", "listen", "--port", str(port), "--store", str(store),
                             "--quiet", "--ack", "--forward-to", target], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=env, cwd=store.parent)  # not this checkout's directory: -m would import from it
    wait_port(port)
    return proc


async def post_all(url: str, count: int) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        semaphore = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            async with semaphore:
                answer = await client.post(url, content=b'{"n":%d,"pad":"%s"}' % (i, b"x" * 1024))
                answer.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))


def counts(store: Path) -> dict[str, int]:
    with sqlite3.connect(store) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM forward_queue GROUP BY state").fetchall())


def drain(count: int, checkout: str | None, delay: float) -> float:
    env = {**os.environ, **({"PYTHONPATH": checkout} if checkout else {})}
    store = Path(tempfile.mkdtemp(prefix="hookinspect-bench-")) / "store.db"
    target_port = free_port()
    target = f"http://127.0.0.1:{target_port}/"
    port = free_port()
    proc = listen(port, store, target, env)  # the target is down: everything queues
    asyncio.run(post_all(f"http://127.0.0.1:{port}/hook", count))
    stop(proc)
    with sqlite3.connect(store) as conn:  # an outage that is over: every item due now
        conn.execute("UPDATE forward_queue SET next_at_us = 0, tries = 0 WHERE state = 'pending'")
    bare = start_target(target_port, delay)
    try:
        proc = listen(port, store, target, env)
        started = time.monotonic()  # from the moment it answers: start-up is not forwarding
        deadline = started + 300
        while counts(store).get("done", 0) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"the queue did not drain in 300 s: {counts(store)}")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        stop(proc)
    finally:
        stop(bare)
    return elapsed


async def bare_ceiling(count: int, concurrency: int, delay: float) -> float:
    import aiohttp

    port = free_port()
    bare = start_target(port, delay)
    try:
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            semaphore = asyncio.Semaphore(concurrency)

            async def one(i: int) -> None:
                async with semaphore, session.post(f"http://127.0.0.1:{port}/hook", data=b"x" * 1024) as answer:
                    await answer.read()

            await asyncio.gather(*(one(i) for i in range(count)))
        return time.monotonic() - started
    finally:
        stop(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000, help="deliveries in the backlog")
    parser.add_argument("--checkout", help="another checkout's directory, run side by side (PYTHONPATH)")
    parser.add_argument("--delays", default="0,5", help="target latencies in ms, comma-separated")
    args = parser.parse_args()
    runs = [("this checkout", None)] + ([(f"checkout {args.checkout}", args.checkout)] if args.checkout else [])
    for delay_ms in (float(d) for d in args.delays.split(",")):
        delay = delay_ms / 1000
        print(f"== draining a backlog of {args.count} queued deliveries to a local target answering in {delay_ms:g} ms ==")
        for name, checkout in runs:
            seconds = drain(args.count, checkout, delay)
            print(f"{name:<44} {seconds:7.2f} s  {args.count / seconds:8.0f} deliveries/s")
        ceiling = asyncio.run(bare_ceiling(args.count, 8, delay))
        print(f"{'the target alone, one aiohttp client, 8 at once':<44} {ceiling:7.2f} s  {args.count / ceiling:8.0f} requests/s")


if __name__ == "__main__":
    main()
