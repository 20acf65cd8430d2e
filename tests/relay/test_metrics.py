"""The relay's /metrics, read with prometheus-client's own parser while a burst goes through a
real relay to a real `listen --source`, and who may read it."""

import asyncio
import json
import subprocess

import httpx
from prometheus_client.parser import text_string_to_metric_families

from hookinspect.relay.metrics import channel_hash
from hookinspect.relay.server import create_relay_app
from hookinspect.relay.state import RelaySettings
from hookinspect.relay.storage import SqliteRelayStorage
from tests.factories import free_port, hookinspect_cmd, store_count, wait_until, wait_until_up
from tests.tunnel import (  # noqa: F401
    STARTED,
    new_channel,
    start_listen_tracked,
    start_relay,
    stop_leftover_processes,
)


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def outcome(samples, name: str) -> float:
    return samples[("hookinspect_relay_requests_total", (("outcome", name),))]


def test_metrics_scraped_during_a_burst_agree_with_the_sender_and_the_laptop(tmp_path):
    _, relay = start_relay(tmp_path / "relay", None, "--max-body", "64KiB")
    channel = new_channel(relay)
    store = tmp_path / "laptop.db"
    start_listen_tracked(store, "--source", channel["url"], "--token", channel["token"])
    wait_until(lambda: scrape(relay)[("hookinspect_relay_subscribers", ())] == 1, 15, "the laptop subscribed")
    answers: dict[int, int] = {}
    during: list[dict] = []

    async def burst() -> None:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=16)) as client:
            async def post(n: int) -> None:
                if n % 50 == 7:  # a channel that does not exist
                    url, body = f"{relay}/NoSuchChannel0000", b"{}"
                elif n % 50 == 9:  # over --max-body
                    url, body = channel["url"], b"x" * (65 * 1024)
                else:
                    url, body = channel["url"], json.dumps({"n": n}).encode()
                status = (await client.post(url, content=body)).status_code
                answers[status] = answers.get(status, 0) + 1
                if n == 300:  # mid-burst
                    during.append(await asyncio.to_thread(scrape, relay))
            await asyncio.gather(*(post(n) for n in range(600)))

    asyncio.run(burst())
    assert set(answers) == {200, 404, 413}, answers
    assert during and outcome(during[0], "accepted") <= answers[200]
    wait_until(lambda: store_count(store) >= answers[200], 60, "every accepted delivery at the laptop")
    wait_until(lambda: scrape(relay)[("hookinspect_relay_events_delivered_total", ())] >= answers[200], 15,
               "the relay's count of delivered events")
    after = scrape(relay)
    assert outcome(after, "accepted") == answers[200] == store_count(store)
    assert outcome(after, "no_such_channel") == answers[404]
    assert outcome(after, "too_large") == answers[413]
    assert after[("hookinspect_relay_events_delivered_total", ())] == store_count(store)
    assert after[("hookinspect_relay_request_seconds_count", ())] == sum(answers.values())
    assert after[("hookinspect_relay_subscribers", ())] == 1
    assert after[("hookinspect_relay_backlog_events", ())] == 0
    assert after[("hookinspect_relay_storage_seconds_count", (("operation", "append"),))] >= 1


async def test_metrics_per_channel_label_the_backlog_by_hash_not_id(tmp_path):
    from hookinspect.intake.receiver import start_server
    storage = SqliteRelayStorage(tmp_path / "relay")
    runner, urls = await start_server(create_relay_app(storage, RelaySettings(metrics_per_channel=True)), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            made = (await client.post(f"{urls[0]}/api/channels", json={"public": True})).json()
            async with client.stream("GET", made["url"], headers={"Accept": "text/event-stream",
                                                                  "Last-Event-ID": "0"}) as stream:
                await anext(stream.aiter_lines())  # ready: subscribed
                text = (await client.get(f"{urls[0]}/metrics")).text
        assert f'hookinspect_relay_backlog_events{{channel="{channel_hash(made["id"])}"}} 0.0' in text
        assert made["id"] not in text
    finally:
        await runner.cleanup()
        storage.close()


async def test_who_may_read_metrics(tmp_path):
    from hookinspect.intake.receiver import start_server
    storage = SqliteRelayStorage(tmp_path / "relay")
    public = create_relay_app(storage, RelaySettings(metrics_open=False))  # as a relay on 0.0.0.0 without a token
    tokened = create_relay_app(storage, RelaySettings(metrics_open=False, metrics_token="s3cret-metrics"))
    runners = []
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            runner, urls = await start_server(public, "127.0.0.1", 0)
            runners.append(runner)
            assert (await client.get(f"{urls[0]}/metrics")).status_code == 404
            runner, urls = await start_server(tokened, "127.0.0.1", 0)
            runners.append(runner)
            assert (await client.get(f"{urls[0]}/metrics")).status_code == 401
            assert (await client.get(f"{urls[0]}/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
            answer = await client.get(f"{urls[0]}/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
            assert answer.status_code == 200 and "hookinspect_relay_requests_total" in answer.text
            # A page of another site cannot read it through a rebound name either.
            assert (await client.get(f"{urls[0]}/metrics", headers={"Host": "evil.example"})).status_code in (403, 421)
    finally:
        for runner in runners:
            await runner.cleanup()
        storage.close()


def test_json_log_lines_say_each_request_without_the_channel_id_or_the_body(tmp_path):
    port = free_port()
    proc = subprocess.Popen(hookinspect_cmd("relay", "--port", str(port), "--data", str(tmp_path / "relay"),
                                            "--log-format", "json", "--log-requests"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(url, proc)
    channel = new_channel(url, public=True)
    assert httpx.post(channel["url"], content=b'{"secret": "sk_live_do_not_log"}').status_code == 200
    assert httpx.post(f"{url}/NoSuchChannel0000", content=b"{}").status_code == 404
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    records = [json.loads(line) for line in err.decode().splitlines()]
    assert proc.returncode == 0
    events = [record["event"] for record in records]
    assert events[0] == "relay.started" and events[-1] == "relay.stopped" and "relay.draining" in events
    deliveries = [record for record in records if record["event"] == "delivery"]
    assert [(d["status"], d["outcome"], d["channel"]) for d in deliveries] == [
        (200, "accepted", channel_hash(channel["id"])), (404, "no_such_channel", None)]
    assert all({"time", "level", "latency_ms"} <= set(d) for d in deliveries)
    assert "sk_live_do_not_log" not in err.decode() and channel["id"] not in err.decode()
