"""The relay on Redis: several instances share channels, events, claims and rate limits."""

import json
import signal
import subprocess
import time

import httpx
import pytest

from hookinspect.intake.receiver import start_server
from hookinspect.relay.redis_storage import RedisRelayStorage, entry_to_id, id_to_entry
from hookinspect.relay.server import RelaySettings, create_relay_app
from hookinspect.relay.storage import ChannelLimitReached, Claim, RelayEvent
from hookinspect.store.sqlite import Store
from tests.factories import (
    free_port,
    hookinspect_cmd,
    start_listen,
    stop_process,
    store_count,
    wait_until,
    wait_until_up,
)
from tests.relay.test_server import read_events
from tests.tunnel import STARTED, new_channel, stop_leftover_processes  # noqa: F401 - the fixture


def event(channel, body=b"{}"):
    return RelayEvent(0, channel, 1, "POST", "/", "", [("Content-Type", "application/json")], body)


def test_ids_are_stream_entries_as_integers_and_read_back_byte_exact(redis_url):
    storage = RedisRelayStorage(redis_url)
    try:
        assert id_to_entry(entry_to_id(b"1764410000123-7")) == "1764410000123-7"
        a = storage.create_channel(True)[0].id
        bodies = [bytes([i % 256]) * (i % 5 + 1) for i in range(700)] + [b"\x00\xff binary \r\n"]
        ids = storage.append_many([event(a, body) for body in bodies])
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        read = storage.events_after(a, 0, limit=1000)
        assert [e.body for e in read] == bodies and [e.id for e in read] == ids
        assert [e.id for e in storage.events_after(a, ids[10], limit=3)] == ids[11:14]  # strictly after
        assert storage.last_event_id(a) == ids[-1] and storage.last_event_id(a, skip=2) == ids[-3]
        assert storage.last_event_id("empty") == 0 and storage.events_after("empty", 0) == []
        assert storage.prune(keep_per_channel=100, max_age_seconds=10**9) == len(bodies) - 100
        assert [e.id for e in storage.events_after(a, 0, limit=10_000)] == ids[-100:]  # the newest kept
    finally:
        storage.close()


def test_channels_claims_and_the_channel_limit_are_shared(redis_url):
    one, two = RedisRelayStorage(redis_url), RedisRelayStorage(redis_url)
    try:
        channel, token = one.create_channel(False, max_channels=2)
        assert two.channel(channel.id) == channel and channel.accepts_token(token)
        two.create_channel(True, max_channels=2)
        with pytest.raises(ChannelLimitReached):
            one.create_channel(True, max_channels=2)
        one.set_claim(channel.id, Claim("ana", "provider:stripe", False, 1.0))
        assert two.claims(channel.id) == [Claim("ana", "provider:stripe", False, 1.0)]
        assert two.delete_claim(channel.id, "ana") and not one.delete_claim(channel.id, "ana")
        assert one.claims(channel.id) == []
    finally:
        one.close()
        two.close()


def test_an_unreachable_redis_is_one_clear_line():
    port = free_port()
    result = subprocess.run(hookinspect_cmd("relay", "--port", str(free_port()), "--storage", f"redis://127.0.0.1:{port}/0"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


async def test_an_event_posted_to_one_instance_streams_from_the_other_at_once(redis_url):
    settings = RelaySettings(ping_seconds=30)  # a long ping: only the notification can wake the stream
    storages = [RedisRelayStorage(redis_url), RedisRelayStorage(redis_url)]
    runners = []
    try:
        urls = []
        for storage in storages:
            runner, bound = await start_server(create_relay_app(storage, settings), "127.0.0.1", 0)
            runners.append(runner)
            urls.append(bound[0])
        async with httpx.AsyncClient(timeout=10) as client:
            created = (await client.post(f"{urls[0]}/api/channels", json={"public": True})).json()
            async with client.stream("GET", f"{urls[1]}/{created['id']}?raw=1",
                                     headers={"Accept": "text/event-stream"}) as stream:
                await read_events(stream, 0, until_event="caught-up")
                started = time.monotonic()
                assert (await client.post(f"{urls[0]}/{created['id']}/hook", content=b'{"n":1}')).status_code == 200
                [got] = [e for e in await read_events(stream, 1) if "id" in e]
                elapsed = time.monotonic() - started
        raw = json.loads(got["data"])["hookinspect"]
        assert raw["path"] == "/hook" and int(got["id"]) == raw["id"]
        assert elapsed < settings.ping_seconds  # woken by the notification, not by a ping or a poll
    finally:
        for runner in runners:
            await runner.cleanup()
        for storage in storages:
            storage.close()


def _pings(redis, port) -> bool:
    try:
        return redis.Redis(port=port, socket_connect_timeout=0.2).ping()
    except redis.ConnectionError:
        return False


def start_redis_relay(redis_url, *extra):
    port = free_port()
    proc = subprocess.Popen(hookinspect_cmd("relay", "--port", str(port), "--storage", redis_url, *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc)
    return proc, url


def test_two_instances_a_moved_subscriber_and_a_kill_9_lose_and_repeat_nothing(redis_url, tmp_path):
    relay_a, url_a = start_redis_relay(redis_url)
    _, url_b = start_redis_relay(redis_url)
    channel = new_channel(url_a)
    channel_id = channel["id"]
    store = tmp_path / "laptop.db"
    # The laptop knows both instances; it starts on A. A second one subscribes on B only.
    listen, _ = start_listen(store, "--source", f"{url_a}/{channel_id}", "--source", f"{url_b}/{channel_id}",
                             "--token", channel["token"])
    STARTED.append(listen)
    other_store = tmp_path / "other.db"
    other, _ = start_listen(other_store, "--source", f"{url_b}/{channel_id}", "--token", channel["token"])
    STARTED.append(other)
    sent: list[bytes] = []

    def send(urls, count):
        with httpx.Client(timeout=10) as client:
            for n in range(count):
                body = json.dumps({"n": len(sent)}).encode()
                url = urls[n % len(urls)]
                assert client.post(f"{url}/{channel_id}", content=body).status_code == 200
                sent.append(body)

    send([url_a, url_b], 200)  # to both instances, alternately
    wait_until(lambda: store_count(store) >= 50, 30, "the laptop streaming from A")
    relay_a.send_signal(signal.SIGKILL)  # mid-stream: the laptop moves to B and resumes there
    relay_a.wait(timeout=10)
    send([url_b], 100)
    wait_until(lambda: store_count(store) >= 300 and store_count(other_store) >= 300, 60, "300 deliveries at each laptop")
    stop_process(listen)
    stop_process(other)
    with Store(store) as opened:
        stored = [opened.get(seq) for seq in sorted(opened.seqs())]
    assert [d.body for d in stored] == sent  # none lost, none twice, in the order the relay took them
    with Store(other_store) as opened:  # B's subscriber saw what was posted to A as well, in the same order
        assert [opened.get(seq).body for seq in sorted(opened.seqs())] == sent
    origins = [d.origin for d in stored]
    assert len(set(origins)) == 300 and all(o.startswith(f"{url_a}/{channel_id}#") for o in origins)


async def test_a_channels_rate_limit_holds_across_instances(redis_url):
    settings = RelaySettings(rate_per_second=0.01, rate_burst=10)  # ten at once, then next to nothing
    storages = [RedisRelayStorage(redis_url), RedisRelayStorage(redis_url)]
    runners, urls = [], []
    try:
        for storage in storages:
            runner, bound = await start_server(create_relay_app(storage, settings), "127.0.0.1", 0)
            runners.append(runner)
            urls.append(bound[0])
        async with httpx.AsyncClient(timeout=10) as client:
            channel = (await client.post(f"{urls[0]}/api/channels", json={"public": True})).json()["id"]
            answers = [(await client.post(f"{urls[n % 2]}/{channel}", content=b"{}")).status_code for n in range(16)]
        assert answers.count(200) == 10 and answers.count(429) == 6  # one bucket, whichever instance is asked
    finally:
        for runner in runners:
            await runner.cleanup()
        for storage in storages:
            storage.close()


def test_redis_going_away_is_503_and_one_line_and_it_recovers_by_itself(tmp_path):
    import shutil

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    servers: list[subprocess.Popen] = []  # stopped by PID at the end, whatever happens

    def start_redis():
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
                                 "--appendonly", "yes", "--appendfsync", "always"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        servers.append(proc)
        import redis
        wait_until(lambda: _pings(redis, port), 15, "redis-server answering")
        return proc

    try:
        redis_proc = start_redis()
        relay, url = start_redis_relay(f"redis://127.0.0.1:{port}/0")
        channel = new_channel(url)["url"]
        with httpx.Client(timeout=10) as client:
            assert client.post(channel, content=b'{"n":1}').status_code == 200
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            down = client.post(channel, content=b'{"n":2}')
            assert down.status_code == 503 and down.headers["Retry-After"] == "5" and "retry shortly" in down.json()["error"]
            assert client.post(channel, content=b'{"n":3}').status_code == 503
            start_redis()  # the same data directory: the first event is still there
            wait_until(lambda: client.post(channel, content=b'{"n":4}').status_code == 200, 30, "the relay storing again")
        _, err = stop_process(relay)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    assert err.count("storing fails") == 1 and "storing works again" in err and "Traceback" not in err
