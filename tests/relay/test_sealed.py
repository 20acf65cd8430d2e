"""Sealed channels: the relay stores and sends only ciphertext; the laptop opens it byte-exact."""

import json
import os
import stat
import subprocess

import httpx
import pytest
import redis

from hookinspect.store.sqlite import Store
from tests.factories import (
    free_port,
    hookinspect_cmd,
    read_until,
    start_listen,
    stop_process,
    store_count,
    wait_until,
)
from tests.relay.test_redis import start_redis_relay
from tests.tunnel import STARTED, start_relay, stop_leftover_processes  # noqa: F401 - the fixture

MARKER = b"PLANTED-MARKER-7f3a9c"


def sealed_channel(relay_url, laptop_store):
    made = subprocess.run(hookinspect_cmd("channel", "new", "--relay", relay_url, "--sealed", "--json",
                                          "--store", str(laptop_store)), capture_output=True, text=True, check=True)
    return json.loads(made.stdout)


def post_marked(url, count):
    bodies = [b'{"card":"' + MARKER + b'","n":%d}' % n for n in range(count)]
    with httpx.Client(timeout=10) as client:
        for body in bodies:
            response = client.post(url + "/hook?q=" + MARKER.decode(), content=body,
                                   headers={"Content-Type": "application/json", "X-Secret-Header": MARKER.decode()})
            assert response.status_code == 200
    return bodies


def redis_holds(url, needle):
    client = redis.Redis.from_url(url)
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"stream":
            values = [v for _, fields in client.xrange(key) for v in fields.values()]
        elif kind == b"hash":
            values = list(client.hgetall(key).values())
        elif kind == b"string":
            values = [client.get(key)]
        else:
            values = []
        if any(needle in value for value in values):
            return True
    return False


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_the_relay_holds_only_ciphertext_and_the_laptop_opens_it_byte_exact(backend, tmp_path, request):
    if backend == "redis":
        redis_url = request.getfixturevalue("redis_url")
        _, relay_url = start_redis_relay(redis_url)
    else:
        _, relay_url = start_relay(tmp_path / "relay")
    laptop = tmp_path / "laptop" / "store.db"
    channel = sealed_channel(relay_url, laptop)
    key_file = channel["key_file"]
    assert channel["sealed"] and os.path.exists(key_file)
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    sent = post_marked(channel["url"], 20)  # while the laptop is offline: kept, sealed
    listen, _ = start_listen(laptop, "--source", channel["url"], "--token", channel["token"])
    STARTED.append(listen)
    wait_until(lambda: store_count(laptop) >= 20, 30, "20 sealed deliveries opened at the laptop")
    stop_process(listen)
    with Store(laptop) as store:
        stored = [store.get(seq) for seq in sorted(store.seqs())]
    assert [d.body for d in stored] == sent
    assert stored[0].path == "/hook" and stored[0].headers.get("x-secret-header") == MARKER.decode()
    if backend == "redis":
        assert not redis_holds(redis_url, MARKER)
    else:
        files = [p for p in (tmp_path / "relay").iterdir() if p.name.startswith("relay.db")]
        assert files and not any(MARKER in p.read_bytes() for p in files)


def test_a_wrong_key_is_one_clear_line_and_loses_nothing(tmp_path):
    _, relay_url = start_relay(tmp_path / "relay")
    laptop = tmp_path / "laptop" / "store.db"
    channel = sealed_channel(relay_url, laptop)
    other = sealed_channel(relay_url, tmp_path / "other" / "store.db")  # another channel's key
    sent = post_marked(channel["url"], 5)
    listen, _ = start_listen(laptop, "--source", channel["url"], "--token", channel["token"],
                             "--seal-key", other["key_file"])
    STARTED.append(listen)
    said = read_until(listen.stdout, "cannot open a sealed event", 30)
    stop_process(listen)
    line = said.splitlines()[-1]
    assert "sealed for another key" in line and other["key_file"] in line and "Traceback" not in said
    assert store_count(laptop) == 0
    # With the right key (found beside the store), everything the relay kept arrives.
    listen, _ = start_listen(laptop, "--source", channel["url"], "--token", channel["token"])
    STARTED.append(listen)
    wait_until(lambda: store_count(laptop) >= 5, 30, "the 5 deliveries with the right key")
    stop_process(listen)
    with Store(laptop) as store:
        assert [store.get(seq).body for seq in sorted(store.seqs())] == sent


def test_a_bad_public_key_is_refused_by_the_relay(tmp_path):
    _, relay_url = start_relay(tmp_path / "relay")
    answer = httpx.post(f"{relay_url}/api/channels", json={"seal_key": "not base64!"})
    assert answer.status_code == 400 and "base64" in answer.json()["error"]
    assert free_port()  # keeps the import honest for readers who copy this module's helpers
