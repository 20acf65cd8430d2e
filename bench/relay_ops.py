"""The relay under an operator's events, on loopback: a rolling restart, and a Redis failover.

    python bench/relay_ops.py [--seconds 30] [--rate 100] [--failover-rate 200] [--only restart|failover]

Rolling restart: two relay instances on one Redis, a laptop (`listen --source A --source B
--forward-to` a target) and a sender at `--rate` for `--seconds`, alternating between the
instances and going to the other when one refuses the connection or closes it unanswered
(what a load balancer does). A third of the way in, A gets SIGTERM and is started again; two
thirds in, B. Prints what was acknowledged, lost, duplicated, sent again after being closed
unanswered, each drain's length, and the longest a delivery waited between its 200 and the
target.

Failover: a primary, one replica and three Sentinels; the relay on `redis+sentinel://`; a
sender at `--failover-rate`. After 3 s the replica falls 0.5 s behind (its link to the primary
holds everything back, as a slow or broken link does) and the primary is killed (-9) at the end
of it; once the Sentinels have
promoted the replica the old primary is started again (a service manager's restart) and
becomes a replica. Run with `--replicas-ack 1` and without; prints acknowledged events lost
(missing from the new primary), the longest time without an acknowledgement, and how long
the failover itself took. Needs Debian's redis-server (and redis-sentinel).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench._common import free_port, stop  # noqa: E402
from bench.relay import TARGET, get_json, hookinspect, start  # noqa: E402
from tests.redis_servers import SentinelGroup, redis_binary, start_redis_server  # noqa: E402

LAG_SECONDS = 0.5


class Sender(threading.Thread):
    """Numbered posts at a rate to one or more relay URLs, the next URL when one fails."""

    def __init__(self, urls: list[str], rate: float, retry_unanswered: bool) -> None:
        super().__init__(daemon=True)
        self.urls, self.interval, self.retry_unanswered = urls, 1 / rate, retry_unanswered
        self.acked: dict[int, float] = {}
        self.statuses: dict[str, int] = {}
        self.sent_again = 0
        self.halt = threading.Event()

    def run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0 if self.retry_unanswered else 10)
        with httpx.Client(timeout=10, limits=limits) as client:
            n = 0
            while not self.halt.is_set():
                started = time.monotonic()
                for attempt in range(len(self.urls)):
                    url = self.urls[(n + attempt) % len(self.urls)]
                    try:
                        status = str(client.post(url, content=json.dumps({"n": n}).encode()).status_code)
                    except httpx.ConnectError:
                        status = "refused"
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        status = "closed unanswered"
                        self.sent_again += self.retry_unanswered
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if status == "200":
                        self.acked[n] = started
                        break
                    if status not in ("refused", "closed unanswered"):
                        break
                n += 1
                self.halt.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def longest_gap(self) -> float:
        times = sorted(self.acked.values())
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def relay(port: int, storage: str, *extra: str) -> subprocess.Popen[bytes]:
    return start(hookinspect("relay", "--port", str(port), "--storage", storage, "--rate", "10000", *extra), port)


def rolling_restart(work: Path, seconds: float, rate: float) -> None:
    redis, redis_port = start_redis_server(work / "redis")
    storage = f"redis://127.0.0.1:{redis_port}/0"
    ports = [free_port(), free_port()]
    relays = [relay(port, storage) for port in ports]
    target_port = free_port()
    target = start([sys.executable, "-c", TARGET, str(target_port)], target_port)
    listen = None
    try:
        made = subprocess.run(hookinspect("channel", "new", "--relay", f"http://127.0.0.1:{ports[0]}", "--json", "--public"),
                              capture_output=True, text=True, check=True)
        channel = json.loads(made.stdout)["id"]
        urls = [f"http://127.0.0.1:{port}/{channel}" for port in ports]
        listen_port = free_port()
        listen = start(hookinspect("listen", "--port", str(listen_port), "--store", str(work / "laptop.db"), "--quiet",
                                   "--source", urls[0], "--source", urls[1],
                                   "--forward-to", f"http://127.0.0.1:{target_port}/"), listen_port)
        sender = Sender(urls, rate, retry_unanswered=True)
        sender.start()
        drains = []
        for index in (0, 1):
            time.sleep(seconds / 3)  # the steady traffic between restarts
            asked = time.monotonic()
            relays[index].send_signal(signal.SIGTERM)
            relays[index].wait(timeout=30)
            drains.append(time.monotonic() - asked)
            relays[index] = relay(ports[index], storage)
        time.sleep(max(0.0, seconds / 3 - sum(drains)))
        sender.halt.set()
        sender.join(timeout=30)
        deadline = time.monotonic() + 60
        while get_json(f"http://127.0.0.1:{target_port}/_count")["count"] < len(sender.acked) and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.05)
        arrived = {int(n): at for n, at in get_json(f"http://127.0.0.1:{target_port}/_times").items()}  # type: ignore[union-attr]
        lost = set(sender.acked) - set(arrived)
        extra = set(arrived) - set(sender.acked)  # arrived without a 200: a copy the sender did not know was stored
        waits = [arrived[n] - sender.acked[n] for n in sender.acked if n in arrived]
        gaps = sorted(arrived.values())
        print(f"rolling restart, {rate:g}/s for {seconds:g} s: acknowledged {len(sender.acked)}  lost {len(lost)}  "
              f"arrived unacknowledged {len(extra)}  sent again after closed unanswered {sender.sent_again}", flush=True)
        print(f"{'':17} drains {', '.join(f'{d:.2f} s' for d in drains)}  longest wait 200 -> target "
              f"{max(waits):.2f} s  longest gap between arrivals {max(b - a for a, b in zip(gaps, gaps[1:], strict=False)):.2f} s  "
              f"answers {sender.statuses}", flush=True)
        # Duplicates: the target notes the first arrival of each number; listen's store has them all.
        from hookinspect.store.sqlite import Store
        with Store(work / "laptop.db") as store:
            bodies = [store.get(seq).body for seq in store.seqs()]
        numbers = [json.loads(body)["n"] for body in bodies if body.startswith(b'{"n"')]
        print(f"{'':17} stored at the laptop {len(numbers)}, of them twice: {len(numbers) - len(set(numbers))}", flush=True)
    finally:
        for proc in [listen, *relays, target, redis]:
            if proc is not None:
                stop(proc)


def failover(work: Path, rate: float, replicas_ack: bool) -> None:
    group = SentinelGroup(work)
    port = free_port()
    proc = relay(port, group.url, *(["--replicas-ack", "1", "--replicas-timeout", "0.5"] if replicas_ack else []))
    try:
        made = subprocess.run(hookinspect("channel", "new", "--relay", f"http://127.0.0.1:{port}", "--json", "--public"),
                              capture_output=True, text=True, check=True)
        channel = json.loads(made.stdout)["id"]
        sender = Sender([f"http://127.0.0.1:{port}/{channel}"], rate, retry_unanswered=False)
        sender.start()
        time.sleep(3)  # steady traffic before the primary dies
        # The replica falls behind for LAG_SECONDS first (its link holds everything back): what
        # the primary acknowledges meanwhile is on no replica when the primary dies.
        group.hold_replication()
        time.sleep(LAG_SECONDS)
        killed = time.monotonic()
        group.kill("a")
        took = group.wait_for_failover("a")
        group.restart("a")
        group.wait_for_replica(90)
        back = time.monotonic() - killed
        time.sleep(3)
        sender.halt.set()
        sender.join(timeout=30)
        from hookinspect.relay.redis_storage import RedisRelayStorage
        storage = RedisRelayStorage(group.url)
        kept = {json.loads(event.body)["n"] for event in storage.events_after(channel, 0, 10_000_000)}
        storage.close()
        lost = set(sender.acked) - kept
        mode = "--replicas-ack 1" if replicas_ack else "no --replicas-ack"
        print(f"failover, {rate:g}/s, {mode:17}: acknowledged {len(sender.acked)}  lost {len(lost)}  "
              f"longest without a 200 {sender.longest_gap():.2f} s  (promoted {took:.2f} s after the kill; "
              f"old primary a replica again {back:.1f} s after)  answers {sender.statuses}", flush=True)
    finally:
        stop(proc)
        group.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--failover-rate", type=float, default=200.0)
    parser.add_argument("--only", choices=("restart", "failover"))
    args = parser.parse_args()
    if redis_binary() is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server redis-sentinel)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "restart"):
            rolling_restart(work / "restart", args.seconds, args.rate)
        if args.only in (None, "failover"):
            failover(work / "with", args.failover_rate, replicas_ack=True)
            failover(work / "without", args.failover_rate, replicas_ack=False)


if __name__ == "__main__":
    main()
