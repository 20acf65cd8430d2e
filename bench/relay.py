"""Tunnel end to end: sender -> relay -> `listen --source` -> stored, on loopback.

    python bench/relay.py [--burst 5000] [--steady-seconds 20]

Prints delivered count, throughput and end-to-end latency (send to visible in the local
store) for a burst and for a steady 100/s, next to a bare aiohttp server loaded by the same
sender in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_seconds, free_port, start_bare, stop, wait_port  # noqa: E402
from hookinspect.store.sqlite import Store  # noqa: E402


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "hookinspect", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


async def send(session: aiohttp.ClientSession, url: str, n: int, sent: dict[int, float]) -> None:
    body = json.dumps({"n": n, "pad": "x" * 1900}).encode()
    sent[n] = time.monotonic()
    async with session.post(f"{url}/{n}", data=body, headers={"Content-Type": "application/json"}) as response:
        await response.read()
        assert response.status == 200, response.status


# The watcher runs in its own process, so that noting arrivals does not slow the sender
# (the bare server's run has no watcher). time.monotonic() is one clock for both processes.
WATCHER = """
import json, sqlite3, sys, time
store, total, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
seen, last = {}, 0
# One small query per poll, on plain sqlite3: the watcher shares the cores with what it measures.
conn = sqlite3.connect(store)
print("ready", flush=True)
while len(seen) < total and time.monotonic() < deadline:
    rows = conn.execute("SELECT seq, path FROM deliveries WHERE seq > ? ORDER BY seq", (last,)).fetchall()
    if rows:
        now = time.monotonic()
        for _seq, path in rows:
            seen.setdefault(int(path.rsplit("/", 1)[1]), now)
        last = rows[-1][0]
    time.sleep(0.001)
print(json.dumps(seen))
"""


def start_watcher(store: Path, total: int, timeout: float) -> subprocess.Popen[str]:
    """Notes when each delivery becomes visible in the local store (polled every millisecond)."""
    proc = subprocess.Popen([sys.executable, "-c", WATCHER, str(store), str(total), str(timeout)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def watched(proc: subprocess.Popen[str]) -> dict[int, float]:
    out, _ = proc.communicate(timeout=300)
    return {int(n): t for n, t in json.loads(out.splitlines()[-1]).items()}


async def burst(url: str, store: Path | None, count: int, concurrency: int = 32) -> dict:
    sent: dict[int, float] = {}
    watcher = start_watcher(store, count, 120) if store else None
    start_time = time.monotonic()
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(n: int) -> None:
            async with semaphore:
                await send(session, url, n, sent)

        await asyncio.gather(*(one(n) for n in range(count)))
    sent_done = time.monotonic()
    seen = watched(watcher) if watcher else {}
    end = max(seen.values()) if seen else sent_done
    latencies = [(seen[n] - sent[n]) * 1000 for n in seen]
    return {"delivered": len(seen) if store else count, "seconds": end - start_time,
            "rate": (len(seen) if store else count) / (end - start_time), "latencies": latencies,
            "acknowledged_rate": count / (sent_done - start_time)}


async def steady(url: str, store: Path, rate: int, seconds: int) -> dict:
    sent: dict[int, float] = {}
    total = rate * seconds
    watcher = start_watcher(store, total, seconds + 30)
    async with aiohttp.ClientSession() as session:
        begin = time.monotonic()
        tasks = []
        for n in range(total):
            delay = begin + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(session, url, n, sent)))
        await asyncio.gather(*tasks)
    seen = watched(watcher)
    return {"delivered": len(seen), "latencies": [(seen[n] - sent[n]) * 1000 for n in seen]}


def harness_cpu_seconds() -> float:
    """CPU used by this process (the sender) and its finished children (the watcher)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--steady-seconds", type=int, default=20)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hookinspect-bench-"))

    bare_port = free_port()
    bare = start_bare(bare_port)
    try:
        # A burst at the bare server lasts about a second, so its rate is noisy: take the median of three.
        rates = sorted(asyncio.run(burst(f"http://127.0.0.1:{bare_port}/hook", None, args.burst))["rate"] for _ in range(3))
    finally:
        stop(bare)
    base = {"rate": rates[1]}
    print(f"bare aiohttp server, same sender: {base['rate']:.0f} req/s (median of {', '.join(f'{r:.0f}' for r in rates)})")

    relay_port = free_port()
    relay = start(["relay", "--port", str(relay_port), "--data", str(tmp / "relay"), "--rate", "100000"], relay_port)
    listen = None
    try:
        channel = json.loads(subprocess.run([sys.executable, "-m", "hookinspect", "channel", "new", "--relay",
                                             f"http://127.0.0.1:{relay_port}", "--json"], capture_output=True,
                                            text=True, check=True).stdout)
        listen_port = free_port()
        store = tmp / "laptop.db"
        listen = start(["listen", "--port", str(listen_port), "--store", str(store), "--source", channel["url"],
                        "--token", channel["token"], "-q"], listen_port)
        time.sleep(1.0)
        cpu_before = {proc: cpu_seconds(proc.pid) for proc in (relay, listen)}
        harness_before = harness_cpu_seconds()
        result = asyncio.run(burst(channel["url"] + "/hook", store, args.burst))
        cpu_used = {proc: (cpu_seconds(proc.pid) - before) / args.burst * 1e6 for proc, before in cpu_before.items()}
        harness_used = (harness_cpu_seconds() - harness_before) / args.burst * 1e6
        print(f"burst of {args.burst}: delivered {result['delivered']} (lost {args.burst - result['delivered']}), "
              f"{result['rate']:.0f}/s end to end = {result['rate'] / base['rate']:.2f}x bare; "
              f"latency p50 {pct(result['latencies'], 50):.0f} ms, p99 {pct(result['latencies'], 99):.0f} ms")
        print(f"  the relay acknowledged the burst at {result['acknowledged_rate']:.0f}/s "
              f"= {result['acknowledged_rate'] / base['rate']:.2f}x bare; CPU per delivery: "
              f"relay {cpu_used[relay]:.0f} us, listen --source {cpu_used[listen]:.0f} us, "
              f"sender and watcher {harness_used:.0f} us (2 cores: {2e6 / result['rate']:.0f} us per delivery)")
        with Store(store) as opened:
            opened.clear()
        result = asyncio.run(steady(channel["url"] + "/hook", store, 100, args.steady_seconds))
        total = 100 * args.steady_seconds
        print(f"steady 100/s for {args.steady_seconds} s: delivered {result['delivered']} of {total}; "
              f"latency p50 {pct(result['latencies'], 50):.2f} ms, p99 {pct(result['latencies'], 99):.2f} ms (target p50 <= 5 ms)")
    finally:
        if listen is not None:
            stop(listen)
        stop(relay)


if __name__ == "__main__":
    main()
