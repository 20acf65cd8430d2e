"""The tunnel end to end: sender -> relay -> `listen --source --forward-to` -> target, on loopback.

    python bench/relay.py [--burst 20000] [--connections 16] [--steady-seconds 20] [--no-redis]
                          [--only PIPELINE] [--steady-only | --burst-only] [--smee-client DIR]
                          [--smee-server DIR]

For a burst (2 KiB JSON, 16 connections) and for a steady 100/s it prints what the relay
accepted and refused, what reached the target per second, the end-to-end latency (sent to
arrived at the target), and the CPU time per delivery of every process, for:
  - the sender straight to a bare aiohttp target (the reference, same run);
  - one relay on SQLite (--durability power, the default, and process);
  - with --smee-client: that relay with smee-client (Node) in place of `listen --source`;
  - with --smee-server and --smee-client: the smee.io server (a prepared copy of
    probot/smee.io, kept on 127.0.0.1 by a preload this script writes) with smee-client: the
    pipeline users would pick instead, same sender, same target, same run;
  - one relay on Redis, and two relay instances on one Redis (the sender alternates between
    them; the laptop knows both) when Debian's redis-server is installed; the Redis relay with
    /metrics scraped every second, and with --replicas-ack 1 (a replica of that Redis runs
    beside it), for what each costs.
Each process is its own: five or six share the machine's cores, so the CPU per delivery says
where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import cpu_seconds, free_port, stop, wait_port  # noqa: E402

# The target: a bare aiohttp server noting when each numbered delivery arrived.
TARGET = textwrap.dedent("""
    import json, sys, time
    from aiohttp import web
    arrived = {}
    async def hook(request):
        body = await request.read()
        n = request.match_info.get("n")
        if n is None:  # smee-client posts every delivery to the target's one URL: the number is in the body
            n = json.loads(body or b"{}").get("n", 999_999_999)
        arrived.setdefault(int(n), time.monotonic())
        return web.Response(status=200)
    async def count(request):
        return web.json_response({"count": len(arrived)})
    async def times(request):
        return web.json_response(arrived)
    app = web.Application(client_max_size=0)
    app.router.add_get("/_count", count)
    app.router.add_get("/_times", times)
    app.router.add_route("*", "/{tail:.*}/{n:[0-9]+}", hook)
    app.router.add_route("*", "/{n:[0-9]+}", hook)
    app.router.add_route("*", "/{tail:.*}", hook)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")

# The sender: numbered 2 KiB JSON posts, `connections` at a time, as a burst or at a rate;
# prints when each was sent and how each was answered.
SENDER = textwrap.dedent("""
    import asyncio, json, sys, time
    import aiohttp
    urls, count, connections, rate = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    numbered = sys.argv[5] == "1"  # smee.io's channels are one path: the number is in the body only
    sent, statuses = {}, {}
    pad = "x" * 1950
    async def main():
        connector = aiohttp.TCPConnector(limit=connections * len(urls))
        async with aiohttp.ClientSession(connector=connector) as session:
            queue = asyncio.Queue()
            for n in range(count):
                queue.put_nowait(n)
            begin = time.monotonic()
            async def worker():
                while not queue.empty():
                    n = queue.get_nowait()
                    if rate:
                        delay = begin + n / rate - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    body = json.dumps({"n": n, "type": "payment.succeeded", "pad": pad}).encode()
                    sent[n] = time.monotonic()
                    try:
                        url = f"{urls[n % len(urls)]}/{n}" if numbered else urls[n % len(urls)]
                        async with session.post(url, data=body,
                                                headers={"Content-Type": "application/json"}) as response:
                            await response.read()
                            statuses[response.status] = statuses.get(response.status, 0) + 1
                    except aiohttp.ClientError:
                        statuses["error"] = statuses.get("error", 0) + 1
            workers = connections if not rate else max(connections, int(rate))
            await asyncio.gather(*(worker() for _ in range(workers)))
    asyncio.run(main())
    import resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"sent": sent, "statuses": statuses, "cpu": usage.ru_utime + usage.ru_stime}))
""")


def start(argv: list[str], port: int | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if port is not None:
        try:
            wait_port(port)
        except BaseException:
            stop(proc)
            raise
    return proc


def hookinspect(*args: str) -> list[str]:
    return [sys.executable, "-m", "hookinspect", *args]


def get_json(url: str) -> object:
    import urllib.request
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - loopback only
        return json.loads(answer.read())


# smee.io's server listens on 0.0.0.0: this preload rewrites a wildcard (or missing) listen
# address to 127.0.0.1, so the benchmark never opens a port beyond loopback.
LOOPBACK_PRELOAD = textwrap.dedent("""
    import net from 'node:net'
    const listen = net.Server.prototype.listen
    const WILDCARD = new Set(['0.0.0.0', '::', undefined, null, ''])
    net.Server.prototype.listen = function (...args) {
      const first = args[0]
      if (first !== null && typeof first === 'object' && !('fd' in first) && !('path' in first)) {
        if (WILDCARD.has(first.host)) args[0] = { ...first, host: '127.0.0.1' }
      } else if (typeof first === 'number' || (typeof first === 'string' && /^[0-9]+$/.test(first))) {
        if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1')
        else if (WILDCARD.has(args[1])) args[1] = '127.0.0.1'
      }
      return listen.apply(this, args)
    }
""")
SMEE = "smee.io, smee-client"

WARM_UP = 999_999_999  # the number of the warm-up delivery, left out of every figure


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100)[p - 1] if len(values) > 1 else float("nan")


class Pipeline:
    """The processes of one run; `relays` is empty for the bare reference."""

    def __init__(self, kind: str, work: Path, redis_url: str | None = None, smee_client: Path | None = None,
                 checkout: Path | None = None, smee_server: Path | None = None) -> None:
        self.kind = kind
        self.numbered = kind != SMEE
        self.smee_server = smee_server
        # Another checkout's relay and listen (an earlier release), for a comparison in the same run.
        self.env = {**os.environ, "PYTHONPATH": str(checkout)} if checkout is not None else None
        self.relays: list[subprocess.Popen[bytes]] = []
        self.listen: subprocess.Popen[bytes] | None = None
        self.target: subprocess.Popen[bytes] | None = None
        try:
            self._start(work, redis_url, smee_client)
        except BaseException:
            self.stop()  # what did start must not outlive a failed start
            raise

    def _start(self, work: Path, redis_url: str | None, smee_client: Path | None) -> None:
        kind = self.kind
        self.target_port = free_port()
        self.target = start([sys.executable, "-c", TARGET, str(self.target_port)], self.target_port)
        self.urls = [f"http://127.0.0.1:{self.target_port}/in"]
        if kind == "bare":
            return
        if kind == SMEE:
            self._start_smee(work, smee_client)
            self._warm_up()
            return
        instances = 2 if kind == "redis x2" else 1
        relay_urls = []
        for _ in range(instances):
            port = free_port()
            storage = ["--storage", redis_url] if redis_url else ["--data", str(work / "relay")]
            if kind == "sqlite process":
                storage += ["--durability", "process"]
            if kind == REPLICAS_ACK:
                storage += ["--replicas-ack", "1"]
            self.relays.append(start(hookinspect("relay", "--port", str(port), *storage), port, self.env))
            relay_urls.append(f"http://127.0.0.1:{port}")
        public = ["--public"] if kind == "sqlite, smee-client" else []  # smee-client sends no token
        made = subprocess.run(hookinspect("channel", "new", "--relay", relay_urls[0], "--json", *public),
                              capture_output=True, text=True, check=True, env=self.env)
        channel = json.loads(made.stdout)
        if kind == "sqlite, smee-client":
            assert smee_client is not None
            self.listen = start([str(smee_client / "node_modules" / ".bin" / "smee"), "--url",
                                 f"{relay_urls[0]}/{channel['id']}", "--target", f"http://127.0.0.1:{self.target_port}/"])
        else:
            sources = [arg for url in relay_urls for arg in ("--source", f"{url}/{channel['id']}")]
            port = free_port()
            self.listen = start(hookinspect("listen", "--port", str(port), "--store", str(work / "laptop.db"),
                                            "--quiet", *sources, "--token", channel["token"],
                                            "--forward-to", f"http://127.0.0.1:{self.target_port}/"), port, self.env)
        self.urls = [f"{url}/{channel['id']}" for url in relay_urls]
        self._warm_up()

    def _start_smee(self, work: Path, smee_client: Path | None) -> None:
        assert self.smee_server is not None and smee_client is not None
        preload = work / "loopback.mjs"
        preload.write_text(LOOPBACK_PRELOAD)
        port = free_port()
        env = {name: value for name, value in os.environ.items()
               if name not in ("REDIS_URL", "SENTRY_DSN", "FORCE_HTTPS", "NODE_ENV")}
        env["PORT"] = str(port)
        server = subprocess.Popen(["node", "--import", str(preload), "index.js"], cwd=self.smee_server,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        self.relays.append(server)
        wait_port(port)
        channel = f"http://127.0.0.1:{port}/bench{port}"
        self.listen = start([str(smee_client / "node_modules" / ".bin" / "smee"), "--url", channel,
                             "--target", f"http://127.0.0.1:{self.target_port}/"])
        self.urls = [channel]

    def _warm_up(self) -> None:
        kind = self.kind
        # A warm-up delivery through the whole pipeline: once it is at the target, all is connected.
        # Sent again each second: smee-client, which says nothing when it has subscribed, gets only
        # what is posted after that.
        import urllib.request
        deadline = time.monotonic() + 30
        posted = 0.0
        while get_json(f"http://127.0.0.1:{self.target_port}/_count")["count"] < 1:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise SystemExit(f"{kind}: the warm-up delivery did not reach the target within 30 s")
            if time.monotonic() - posted >= 1:
                url, body = (f"{self.urls[0]}/{WARM_UP}", b"{}") if self.numbered else (self.urls[0], b'{"n": %d}' % WARM_UP)
                urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST",
                                                              headers={"Content-Type": "application/json"}), timeout=10)
                posted = time.monotonic()
            time.sleep(0.05)

    def processes(self) -> dict[str, list[int]]:
        assert self.target is not None
        found = {"target": [self.target.pid]}
        if self.relays:
            found["smee.io" if self.kind == SMEE else "relay"] = [proc.pid for proc in self.relays]
        if self.listen is not None:
            found["smee-client" if "smee-client" in self.kind else "listen --source"] = [self.listen.pid]
        return found

    def stop(self) -> None:
        for proc in [self.listen, *self.relays, self.target]:
            if proc is not None:
                stop(proc)


SCRAPED = "redis, /metrics 1/s"
REPLICAS_ACK = "redis --replicas-ack 1"


def scrape_every_second(urls: list[str], stop_scraping: threading.Event) -> None:
    """What Prometheus does, 15 times as often as its default: GET /metrics of every relay."""
    import urllib.request
    bases = {url.rsplit("/", 1)[0] for url in urls}
    while not stop_scraping.wait(1.0):
        for base in bases:
            urllib.request.urlopen(f"{base}/metrics", timeout=10).read()


def run(pipeline: Pipeline, count: int, connections: int, rate: float, redis_pid: int | None) -> dict:
    pids = pipeline.processes()
    stop_scraping = threading.Event()
    if pipeline.kind == SCRAPED:
        threading.Thread(target=scrape_every_second, args=(pipeline.urls, stop_scraping), daemon=True).start()
    if redis_pid and pipeline.kind.startswith("redis"):
        pids["redis-server"] = [redis_pid]
    before = {name: sum(cpu_seconds(pid) for pid in group) for name, group in pids.items()}
    sender = subprocess.Popen([sys.executable, "-c", SENDER, ",".join(pipeline.urls), str(count), str(connections),
                               str(rate), "1" if pipeline.numbered else "0"], stdout=subprocess.PIPE, text=True)
    report, _ = sender.communicate(timeout=600)
    stop_scraping.set()
    said = json.loads(report)
    accepted = said["statuses"].get("200", 0)
    warmed = 0 if pipeline.kind == "bare" else 1
    deadline = time.monotonic() + 120
    base = f"http://127.0.0.1:{pipeline.target_port}"
    while get_json(f"{base}/_count")["count"] < accepted + warmed and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.05)
    arrived = {int(n): t for n, t in get_json(f"{base}/_times").items() if int(n) != WARM_UP}  # type: ignore[union-attr]
    sent = {int(n): t for n, t in said["sent"].items()}
    cpu = {name: sum(cpu_seconds(pid) for pid in group) - before[name] for name, group in pids.items()}
    cpu["sender"] = said["cpu"]
    first, last = min(sent.values()), max(arrived.values()) if arrived else time.monotonic()
    latencies = [(arrived[n] - sent[n]) * 1000 for n in arrived if n in sent]
    return {"accepted": accepted, "refused": count - accepted, "delivered": len(arrived),
            "answers": {status: n for status, n in said["statuses"].items() if status != "200"},
            "per_second": len(arrived) / (last - first), "p50": pct(latencies, 50), "p99": pct(latencies, 99),
            "cpu_ms_per_delivery": {name: 1000 * seconds / max(1, len(arrived)) for name, seconds in cpu.items()}}


def start_redis(work: Path, replica_of: int | None = None) -> tuple[subprocess.Popen[bytes], str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    directory = work / ("redis-replica" if replica_of else "redis")
    directory.mkdir()
    replica = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
                             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--logfile", "", *replica],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc, f"redis://127.0.0.1:{port}/0"


def redis_forks(url: str) -> int:
    import redis as redis_client
    return int(redis_client.Redis.from_url(url).info("stats")["total_forks"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--steady-seconds", type=int, default=20)
    parser.add_argument("--no-redis", action="store_true", help="only the bare target and the SQLite relay")
    parser.add_argument("--only", choices=("bare", "sqlite", "sqlite process", "sqlite, smee-client", SMEE, "redis",
                                           "redis x2", SCRAPED, REPLICAS_ACK, "sqlite of --checkout"),
                        action="append", help="only this pipeline (repeatable)")
    parser.add_argument("--smee-client", type=Path, metavar="DIR",
                        help="a directory where `npm install smee-client@5` ran: adds our relay with smee-client "
                             "in place of listen --source (it stores nothing; forwards each event once)")
    parser.add_argument("--smee-server", type=Path, metavar="DIR",
                        help="a prepared copy of probot/smee.io (npm install done): adds smee.io's server with "
                             "smee-client (needs --smee-client) as the peer pipeline, in the same run")
    parser.add_argument("--steady-only", action="store_true", help="leave the burst out")
    parser.add_argument("--burst-only", action="store_true", help="leave the steady rate out")
    parser.add_argument("--checkout", type=Path, metavar="DIR",
                        help="also run the SQLite pipeline of another checkout (an earlier release), in the same run")
    args = parser.parse_args()
    if args.smee_server and not args.smee_client:
        parser.error("--smee-server needs --smee-client DIR (smee.io's own client reads its channel)")
    if args.smee_server and shutil.which("node") is None:
        parser.error("--smee-server needs node on PATH")
    kinds = ["bare", "sqlite", "sqlite process"] + (["sqlite, smee-client"] if args.smee_client else []) + \
        ([SMEE] if args.smee_server else []) + (["sqlite of --checkout"] if args.checkout else [])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = None if args.no_redis else start_redis(work)
        replica = None
        if redis is not None:
            kinds += ["redis", "redis x2", SCRAPED, REPLICAS_ACK]
            replica = start_redis(work, replica_of=int(redis[1].rsplit(":", 1)[1].split("/")[0]))
        elif not args.no_redis:
            print("redis-server not installed: the Redis rows are left out")
        if args.only:
            kinds = [kind for kind in kinds if kind in args.only]
        try:
            for kind in kinds:
                for scenario, count, rate in (("burst", args.burst, 0.0), ("steady 100/s", 100 * args.steady_seconds, 100.0))[
                        args.steady_only:2 - args.burst_only]:
                    run_dir = work / f"{kind}-{scenario}".replace(" ", "_").replace("/", "")
                    run_dir.mkdir()
                    if redis is not None:
                        import redis as redis_client
                        redis_client.Redis.from_url(redis[1]).flushall()
                    pipeline = Pipeline(kind, run_dir, redis[1] if kind.startswith("redis") and redis else None,
                                        args.smee_client, args.checkout if kind == "sqlite of --checkout" else None,
                                        args.smee_server)
                    forks = redis_forks(redis[1]) if redis is not None else 0
                    try:
                        result = run(pipeline, count, args.connections, rate, redis[0].pid if redis else None)
                    finally:
                        pipeline.stop()
                    # Redis forks to rewrite its append-only file once it has doubled (as the bursts
                    # make it do); with appendfsync always, writes stall meanwhile: worth knowing.
                    forks = redis_forks(redis[1]) - forks if redis is not None and kind.startswith("redis") else 0
                    cpu = "  ".join(f"{name} {ms:.3f}" for name, ms in result["cpu_ms_per_delivery"].items())
                    print(f"{kind:20} {scenario:12} accepted {result['accepted']:6} refused {result['refused']:5} "
                          f"delivered {result['delivered']:6}  {result['per_second']:7.0f}/s  "
                          f"p50 {result['p50']:8.1f} ms  p99 {result['p99']:8.1f} ms", flush=True)
                    print(f"{'':33} CPU ms per delivery: {cpu}", flush=True)
                    if forks:
                        print(f"{'':33} Redis forked {forks} time(s) during the run (append-only file rewrite)", flush=True)
                    if result["answers"]:
                        print(f"{'':33} other answers: {result['answers']}", flush=True)
        finally:
            for server in (replica, redis):
                if server is not None:
                    stop(server[0])


if __name__ == "__main__":
    main()
