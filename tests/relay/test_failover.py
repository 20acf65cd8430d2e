"""Redis with Sentinel: a primary, a replica and three Sentinels on loopback. The relay follows
the primary across a failover, and with --replicas-ack 1 nothing it acknowledged is lost when
the primary dies (kill -9) in the middle of a stream of posts."""

import json
import subprocess
import threading
import time

import httpx
import pytest

from hookinspect.relay.redis_storage import RedisRelayStorage
from tests.factories import free_port, hookinspect_cmd, wait_until, wait_until_up
from tests.redis_servers import SentinelGroup, redis_binary
from tests.tunnel import STARTED, new_channel, stop_leftover_processes  # noqa: F401


@pytest.fixture
def sentinel_group(tmp_path):
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server redis-sentinel)")
    group = SentinelGroup(tmp_path / "redis")
    try:
        yield group
    finally:
        group.stop()


class Sender(threading.Thread):
    """Posts numbered events at a steady rate and remembers which were acknowledged, and when."""

    def __init__(self, channel_url: str, rate: float) -> None:
        super().__init__(daemon=True)
        self.channel_url = channel_url
        self.interval = 1 / rate
        self.acked: dict[int, float] = {}
        self.statuses: dict[int | str, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self.halt.is_set():
                started = time.monotonic()
                try:
                    status: int | str = client.post(self.channel_url, content=json.dumps({"n": n}).encode()).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 200:
                    self.acked[n] = time.monotonic()
                n += 1
                self.halt.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def longest_gap(self) -> float:
        times = sorted(self.acked.values())
        return max(later - earlier for earlier, later in zip(times, times[1:], strict=False))


def test_with_replicas_ack_a_kill_9_of_the_primary_loses_no_acknowledged_event(sentinel_group):
    port = free_port()
    relay = subprocess.Popen(hookinspect_cmd("relay", "--port", str(port), "--storage", sentinel_group.url,
                                             "--replicas-ack", "1", "--replicas-timeout", "0.5"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(relay)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, relay)
    channel = new_channel(url, public=True)
    sender = Sender(channel["url"], 200)
    sender.start()
    try:
        wait_until(lambda: len(sender.acked) >= 300, 20, "300 events acknowledged")
        # The replica falls behind (its link holds everything back): without --replicas-ack, the
        # primary would acknowledge events no replica has, and the failover would lose them.
        sentinel_group.hold_replication()
        refused_before = sender.statuses.get(503, 0)
        wait_until(lambda: sender.statuses.get(503, 0) > refused_before, 10, "503s while no replica confirms")
        sentinel_group.kill("a")
        sentinel_group.wait_for_failover("a")
        promoted = time.monotonic()
        # Its only replica is primary now: nothing can be acknowledged until a replica is back.
        sentinel_group.restart("a")
        sentinel_group.wait_for_replica(60)
        replicated = time.monotonic()
        acked_before = len(sender.acked)
        wait_until(lambda: len(sender.acked) >= acked_before + 100, 30, "acknowledgements again")
    finally:
        sender.halt.set()
        sender.join(timeout=15)
    storage = RedisRelayStorage(sentinel_group.url)
    try:
        kept = {json.loads(event.body)["n"] for event in storage.events_after(channel["id"], 0, 1_000_000)}
    finally:
        storage.close()
    lost = set(sender.acked) - kept
    assert not lost, f"{len(lost)} acknowledged events lost: {sorted(lost)[:10]}"
    # While no replica could have them, events were refused (503), not acknowledged.
    assert not [n for n, at in sender.acked.items() if promoted < at < replicated - 1.0]
    assert sender.longest_gap() < 60
