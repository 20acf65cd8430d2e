"""Graceful restarts: SIGTERM stops accepting, answers what is in flight, ends each stream with
`restart` (listen --source resumes at once), and exits within --drain-seconds; a rolling
restart of two instances on one Redis loses and repeats nothing."""

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time

import httpx

from tests.factories import (
    RecordingTarget,
    await_until,
    free_port,
    hookinspect_cmd,
    read_until,
    stop_process,
    store_count,
    wait_until,
    wait_until_up,
)
from tests.tunnel import (  # noqa: F401
    STARTED,
    new_channel,
    start_listen_tracked,
    stop_leftover_processes,
    stored_bodies,
)


def start(*args: str) -> subprocess.Popen:
    proc = subprocess.Popen(hookinspect_cmd("relay", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(proc)
    return proc


def test_sigterm_answers_what_is_in_flight_and_the_laptop_resumes_at_once_after_the_restart(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ("--port", str(port), "--data", str(tmp_path / "relay"), "--drain-seconds", "5")
    relay = start(*args)
    wait_until_up(url, relay)
    channel = new_channel(url, public=True)
    store = tmp_path / "laptop.db"
    listen, _ = start_listen_tracked(store, "--source", channel["url"])
    assert httpx.post(channel["url"], content=b'{"n":0}').status_code == 200
    wait_until(lambda: store_count(store) == 1, 20, "the first delivery at the laptop")
    # A sender is halfway through its body when the relay is told to stop. It asks to continue
    # first, so its request is in the relay's hands (100 Continue) before the signal.
    sender = socket.create_connection(("127.0.0.1", port), timeout=10)
    path = channel["url"].removeprefix(url)
    sender.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 7\r\n"
                   "Expect: 100-continue\r\n\r\n".encode())
    assert sender.recv(100).startswith(b"HTTP/1.1 100")
    sender.sendall(b'{"n"')
    asked = time.monotonic()
    relay.send_signal(signal.SIGTERM)
    read_until(relay.stderr, "stopping", 10)
    with socket.socket() as late:  # nothing new is taken in
        assert late.connect_ex(("127.0.0.1", port)) != 0
    sender.sendall(b":1}")
    assert sender.recv(100).startswith(b"HTTP/1.1 200")
    sender.close()
    assert relay.wait(timeout=10) == 0
    drained = time.monotonic() - asked
    assert drained < 5 + 2
    said = read_until(listen.stdout, "is restarting", 10)
    relay = start(*args)
    wait_until_up(url, relay)
    assert httpx.post(channel["url"], content=b'{"n":2}').status_code == 200
    # The in-flight one and the new one, without waiting out a backoff.
    wait_until(lambda: store_count(store) == 3, 5, "both deliveries after the restart")
    assert stored_bodies(store) == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    out, _ = stop_process(listen)
    assert "disconnected since" not in said + out


async def test_a_rolling_restart_of_two_instances_loses_nothing_and_no_laptop_waits_2_s(redis_url, tmp_path):
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def start_instance(index: int) -> subprocess.Popen:
        return start("--port", str(ports[index]), "--storage", redis_url, "--drain-seconds", "5", "--rate", "10000")

    relays = [start_instance(0), start_instance(1)]
    for url, relay in zip(urls, relays, strict=True):
        await asyncio.to_thread(wait_until_up, url, relay)
    channel = await asyncio.to_thread(new_channel, urls[0], True)
    target = await RecordingTarget().start()
    arrived: dict[int, float] = {}

    def record(_request, body: bytes):
        n = json.loads(body)["n"]
        arrived.setdefault(n, time.monotonic())
        from aiohttp import web
        return web.Response()

    target.handler = record
    path = channel["url"].removeprefix(urls[0])
    start_listen_tracked(tmp_path / "laptop.db", "--source", urls[0] + path, "--source", urls[1] + path,
                         "--forward-to", target.url)
    def subscribed() -> bool:
        return any("hookinspect_relay_subscribers 1.0" in httpx.get(f"{url}/metrics").text for url in urls)
    await asyncio.to_thread(wait_until, subscribed, 20, "the laptop subscribed")
    sent: dict[int, float] = {}
    failures: list[str] = []
    in_doubt: list[str] = []
    stop = asyncio.Event()

    async def send() -> None:
        # A load balancer's part: each request to the next instance, and to the other when one
        # refuses the connection or closes it without an answer (nginx's `proxy_next_upstream
        # error non_idempotent`). A connection the kernel took just before the relay stopped
        # listening is closed unread: sent again, it must not arrive twice.
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            n = 0
            while not stop.is_set():
                started = time.monotonic()
                for attempt in range(2):
                    url = urls[(n + attempt) % 2]
                    try:
                        status = (await client.post(url + path, content=json.dumps({"n": n}).encode())).status_code
                    except httpx.ConnectError:
                        continue
                    except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                        in_doubt.append(f"#{n} at {url}: {exc!r}")
                        continue
                    except httpx.HTTPError as exc:
                        failures.append(f"#{n} at {url}: {exc!r}")
                        break
                    if status == 200:
                        sent[n] = started
                        break
                    failures.append(f"#{n} at {url}: {status}")
                n += 1
                with contextlib.suppress(TimeoutError):  # paced at 100/s until told to stop
                    await asyncio.wait_for(stop.wait(), max(0.0, 0.01 - (time.monotonic() - started)))

    async def traffic(count: int, what: str) -> None:
        """Until `count` more deliveries have reached the laptop through the instances."""
        wanted = len(arrived) + count
        await await_until(lambda: len(arrived) >= wanted or sender.done(), 30, what)

    sender = asyncio.create_task(send())
    try:
        await traffic(150, "steady traffic before the restarts")
        for index in (0, 1):  # restart A, then B, as a deploy does
            relays[index].send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(relays[index].wait, 10) == 0
            relays[index] = start_instance(index)
            await asyncio.to_thread(wait_until_up, urls[index], relays[index])
            await traffic(150, f"traffic on both instances after instance {index} restarted")
    finally:
        stop.set()
        await sender
    with contextlib.suppress(AssertionError):  # what did not arrive is reported just below
        await await_until(lambda: not set(sent) - set(arrived), 30, "every acknowledged delivery at the laptop")
    await target.stop()
    assert not failures
    assert not set(sent) - set(arrived), f"lost: {sorted(set(sent) - set(arrived))[:10]}"
    assert len(target.received) == len(arrived), "a delivery reached the laptop twice"
    waits = [arrived[n] - sent[n] for n in sent]
    assert len(sent) > 400 and max(waits) < 2.0, f"longest wait {max(waits):.2f} s"
    assert len(in_doubt) <= 10, in_doubt  # a few at each stop, at most
