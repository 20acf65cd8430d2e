import asyncio
import base64
import json
import weakref

import httpx
import pytest

from hookinspect.intake.receiver import start_server
from hookinspect.relay.hub import BatchingAppender, ChannelHub
from hookinspect.relay.log import RelayLog
from hookinspect.relay.server import create_relay_app, retention_limits
from hookinspect.relay.state import BUDGET_KEY, RelaySettings
from hookinspect.relay.storage import RelayEvent, SqliteRelayStorage
from hookinspect.relay.stream import smee_payload
from tests.factories import await_until


@pytest.fixture
async def relay(tmp_path):
    storage = SqliteRelayStorage(tmp_path / "relay")
    settings = RelaySettings(max_body=1024, rate_per_second=50, rate_burst=100, ping_seconds=0.5)
    runner, urls = await start_server(create_relay_app(storage, settings), "127.0.0.1", 0)
    try:
        yield urls[0], storage
    finally:
        await runner.cleanup()
        storage.close()


# A stream's lines can be iterated once: each response's iterator, for as long as the response lives
# (keyed by the object, not id(): ids are reused once a response is gone, and a reused one is exhausted).
_LINES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def read_events(response, count, timeout=5.0, until_event=None):
    """Events of an SSE stream until `count` with an id (or one named `until_event`) arrived."""
    events, current = [], {}
    lines = _LINES.setdefault(response, response.aiter_lines())

    async def collect():
        async for line in lines:
            if line == "":
                if current:
                    events.append(dict(current))
                    current.clear()
                if until_event is not None and events and events[-1].get("event") == until_event:
                    return
                if until_event is None and len([e for e in events if "id" in e]) >= count:
                    return
                continue
            key, _, value = line.partition(": ")
            current[key] = value
    await asyncio.wait_for(collect(), timeout)
    return events


async def test_new_redirects_to_a_public_channel_like_smee(relay):
    url, storage = relay
    async with httpx.AsyncClient() as client:
        response = await client.head(url + "/new")
    assert response.status_code == 307
    channel_id = response.headers["location"].rsplit("/", 1)[1]
    assert len(channel_id) == 16 and storage.channel(channel_id).is_public


async def test_private_channel_needs_its_token(relay):
    url, _ = relay
    async with httpx.AsyncClient() as client:
        created = (await client.post(url + "/api/channels", json={})).json()
        assert created["token"] and not created["public"]
        refused = await client.get(created["url"], headers={"Accept": "text/event-stream"})
        assert refused.status_code == 401
        wrong = await client.get(created["url"] + "?token=nope", headers={"Accept": "text/event-stream"})
        assert wrong.status_code == 401
        async with client.stream("GET", created["url"], headers={"Accept": "text/event-stream",
                                                                 "Authorization": f"Bearer {created['token']}"}) as ok:
            assert ok.status_code == 200 and ok.headers["content-type"] == "text/event-stream"


async def test_catch_up_with_last_event_id_and_raw_bytes(relay):
    url, _ = relay
    async with httpx.AsyncClient() as client:
        created = (await client.post(url + "/api/channels", json={"public": True})).json()
        bodies = [b'{"n":1}', b"\xff\x00binary", b"a=1&b=2"]
        for body in bodies:
            assert (await client.post(created["url"] + "/sub/path?q=1", content=body)).status_code == 200
        headers = {"Accept": "text/event-stream", "Last-Event-ID": "0"}
        async with client.stream("GET", created["url"] + "?raw=1", headers=headers) as response:
            events = await read_events(response, 3)
    assert events[0] == {"event": "ready", "data": "{}"}
    messages = [json.loads(e["data"]) for e in events if "id" in e]
    assert [base64.b64decode(m["hookinspect"]["body_base64"]) for m in messages] == bodies
    assert messages[0]["hookinspect"]["path"] == "/sub/path" and messages[0]["query"] == {"q": "1"}
    ids = [int(e["id"]) for e in events if "id" in e]
    async with httpx.AsyncClient() as client:
        async with client.stream("GET", created["url"], headers={"Accept": "text/event-stream",
                                                                 "Last-Event-ID": str(ids[0])}) as response:
            later = await read_events(response, 2)
    assert [int(e["id"]) for e in later if "id" in e] == ids[1:]
    assert all("hookinspect" not in json.loads(e["data"]) for e in later if "id" in e)  # smee shape unless asked


async def test_a_last_event_id_beyond_any_number_starts_from_now_and_the_stream_lives(relay):
    url, _ = relay
    async with httpx.AsyncClient() as client:
        created = (await client.post(url + "/api/channels", json={"public": True})).json()
        await client.post(created["url"], content=b'{"old":1}')
        for bogus in ("9" * 23, "\u0661\u0662", "-1"):  # over SQLite's INTEGER; Arabic-Indic digits; negative
            headers = {"Accept": "text/event-stream", "Last-Event-ID": bogus.encode()}
            async with client.stream("GET", created["url"], headers=headers) as response:
                said = await read_events(response, 0, until_event="caught-up")  # what was there is not resent
                assert [e.get("event") for e in said] == ["ready", "caught-up"]
                await client.post(created["url"], json={"new": 1})
                [event] = [e for e in await read_events(response, 1) if "id" in e]
                assert json.loads(event["data"])["body"] == {"new": 1}


async def test_a_subscriber_of_the_exact_bytes_only_can_leave_smees_shape_out(relay):
    url, _ = relay
    async with httpx.AsyncClient() as client:
        created = (await client.post(url + "/api/channels", json={"public": True})).json()
        body = b'{"n": 1, "\xff": "not utf-8 \xfe"}'
        await client.post(created["url"] + "/p?q=1", content=body, headers={"Content-Type": "application/json"})
        headers = {"Accept": "text/event-stream", "Last-Event-ID": "0"}
        async with client.stream("GET", created["url"] + "?raw=1&smee=0", headers=headers) as response:
            [message] = [json.loads(e["data"]) for e in await read_events(response, 1) if "id" in e]
    assert set(message) == {"timestamp", "hookinspect"}  # no flat headers, no parsed body
    assert base64.b64decode(message["hookinspect"]["body_base64"]) == body
    assert message["hookinspect"]["query"] == "q=1" and message["hookinspect"]["path"] == "/p"


async def test_live_delivery_reaches_a_subscriber_at_once(relay):
    url, _ = relay
    async with httpx.AsyncClient() as client:
        created = (await client.post(url + "/api/channels", json={"public": True})).json()
        async with client.stream("GET", created["url"], headers={"Accept": "text/event-stream"}) as response:
            await read_events(response, 0, until_event="ready")  # subscribed: what is posted now is live
            await client.post(created["url"], content=b'{"live":true}', headers={"Content-Type": "application/json"})
            events = await read_events(response, 1)
    message = json.loads([e for e in events if "id" in e][0]["data"])
    assert message["body"] == {"live": True} and message["content-type"] == "application/json"
    assert isinstance(message["timestamp"], int)


async def test_limits_unknown_channels_and_health(tmp_path):
    # A token every 10 s past a burst of 100: 150 posts meet the limit however slow the machine
    # (at 50/s, a loaded machine that took over a second refilled the bucket, and none was refused).
    storage = SqliteRelayStorage(tmp_path / "relay")
    settings = RelaySettings(max_body=1024, rate_per_second=0.1, rate_burst=100)
    runner, urls = await start_server(create_relay_app(storage, settings), "127.0.0.1", 0)
    url = urls[0]
    try:
        async with httpx.AsyncClient() as client:
            created = (await client.post(url + "/api/channels", json={"public": True})).json()
            assert (await client.post(created["url"], content=b"x" * 2048)).status_code == 413
            assert (await client.post(url + "/nochannelhere", content=b"{}")).status_code == 404
            assert (await client.get(url + "/healthz")).json() == {"ok": True}
            statuses = [(await client.post(created["url"], content=b"{}")).status_code for _ in range(150)]
    finally:
        await runner.cleanup()
        storage.close()
    assert statuses[:99] == [200] * 99 and statuses.count(429) >= 45  # the burst, less the 413's token; then refused


async def test_a_malformed_request_flood_does_not_kill_the_relay(relay):
    url, _ = relay
    host, port = url.removeprefix("http://").split(":")
    for junk in (b"\x00\xff\xfe garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n") * 50:
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(junk)
            await writer.drain()
            await asyncio.wait_for(reader.read(100), 2)
            writer.close()
        except (OSError, TimeoutError):
            pass
    async with httpx.AsyncClient() as client:
        assert (await client.get(url + "/healthz")).status_code == 200


def test_memory_serves_only_what_it_holds_whole():
    hub = ChannelHub()
    hub.RECENT_PER_CHANNEL = 3

    def event(i):
        return RelayEvent(i, "a", 0, "POST", "/", "", [], b"")

    assert hub.recent_after("a", 0, 10) is None  # nothing published in this process yet
    hub.publish("a", [event(i) for i in (2, 5, 7, 9)])  # ids interleave with other channels'
    assert [e.id for e in hub.recent_after("a", 5, 10)] == [7, 9]  # 5 is the oldest kept: complete
    assert hub.recent_after("a", 9, 10) == []
    assert hub.recent_after("a", 3, 10) is None  # 5 might not be the only event after 3: read the store
    assert [e.id for e in hub.recent_after("a", 5, 1)] == [7]
    shared = ChannelHub(remember=False)
    shared.publish("a", [event(1)])
    assert shared.recent_after("a", 0, 10) is None


def test_memory_is_bounded_by_bytes_and_channels():
    hub = ChannelHub()
    hub.RECENT_BYTES_PER_CHANNEL, hub.RECENT_CHANNELS = 20, 2

    def event(i, channel="a", size=4):
        return RelayEvent(i, channel, 0, "POST", "/", "", [], b"x" * size)  # 9 bytes with "POST /"

    hub.publish("a", [event(1), event(2), event(3)])  # 27 bytes: the oldest goes
    assert hub.recent_after("a", 1, 10) is None and [e.id for e in hub.recent_after("a", 2, 10)] == [3]
    hub.publish("a", [event(4, size=50)])  # bigger than the budget: memory gives up on "a"
    assert hub.recent_after("a", 3, 10) is None
    hub.publish("b", [event(5, "b")])
    hub.publish("c", [event(6, "c")])  # a third channel: the least recently published is dropped
    assert hub.recent_after("a", 3, 10) is None and hub.recent_after("b", 5, 10) == []
    assert hub.recent_after("c", 6, 10) == []


def test_headers_count_against_the_memory_of_recent_events():
    hub = ChannelHub()
    hub.RECENT_BYTES_PER_CHANNEL = 1000
    no_body = RelayEvent(1, "a", 0, "POST", "/", "", [("X-Pad", "a" * 2000)], b"")
    hub.publish("a", [no_body])
    assert no_body.size > 2000
    assert hub.recent_after("a", 0, 10) is None  # not kept: its headers alone are over the budget


async def test_a_subscriber_from_further_back_than_memory_gets_everything_in_order(relay, monkeypatch):
    monkeypatch.setattr(ChannelHub, "RECENT_PER_CHANNEL", 2)
    url, _ = relay
    async with httpx.AsyncClient() as client:
        first = (await client.post(url + "/api/channels", json={"public": True})).json()
        other = (await client.post(url + "/api/channels", json={"public": True})).json()
        for n in range(5):
            await client.post(first["url"], content=f'{{"n":{n}}}'.encode(), headers={"Content-Type": "application/json"})
            await client.post(other["url"], content=b'{"other":true}', headers={"Content-Type": "application/json"})
        headers = {"Accept": "text/event-stream", "Last-Event-ID": "0"}
        async with client.stream("GET", first["url"], headers=headers) as response:
            backlog = await read_events(response, 5)
            # After the backlog: this one comes from memory.
            await client.post(first["url"], content=b'{"n":5}', headers={"Content-Type": "application/json"})
            events = backlog + await read_events(response, 1)
    assert [json.loads(e["data"])["body"]["n"] for e in events if "id" in e] == [0, 1, 2, 3, 4, 5]


def test_smee_payload_shape():
    event = RelayEvent(7, "c", 1_764_345_600_123_000, "POST", "/", "a=1",
                       [("Content-Type", "application/x-www-form-urlencoded"), ("X-GitHub-Event", "push")], b"payload=%7B%7D")
    data = smee_payload(event, include_raw=False)
    assert data == {"content-type": "application/x-www-form-urlencoded", "x-github-event": "push",
                    "body": {"payload": "{}"}, "query": {"a": "1"}, "timestamp": 1_764_345_600_123}


def test_retention_prunes_by_count(tmp_path):
    storage = SqliteRelayStorage(tmp_path)
    channel, _ = storage.create_channel(True)
    for i in range(20):
        storage.append(RelayEvent(0, channel.id, 1, "POST", "/", "", [], str(i).encode()))
    assert storage.prune(keep_per_channel=5, max_age_seconds=10**12) == 15
    assert [e.body for e in storage.events_after(channel.id, 0)] == [b"15", b"16", b"17", b"18", b"19"]
    # relay --keep 999… --max-age-days 999…: keep everything, and pruning goes on working.
    limits = retention_limits(RelaySettings(keep_per_channel=10**30, max_age_seconds=1e30))
    assert storage.prune(*limits) == 0 and len(storage.events_after(channel.id, 0)) == 5
    storage.close()


async def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(relay, tmp_path):
    url, _ = relay
    async with httpx.AsyncClient() as client:
        answer = await client.head(url + "/new", headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
        assert answer.headers["location"].startswith(url + "/")
    storage = SqliteRelayStorage(tmp_path / "trusting")
    runner, urls = await start_server(create_relay_app(storage, RelaySettings(trust_proxy=True)), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.head(urls[0] + "/new", headers={"X-Forwarded-Host": "relay.example", "X-Forwarded-Proto": "https"})
        assert answer.headers["location"].startswith("https://relay.example/")
    finally:
        await runner.cleanup()
        storage.close()


@pytest.mark.parametrize("body", [{"public": "no"}, {"public": 1}, ["public"], {"public": None}])
async def test_channel_options_must_be_booleans(relay, body):
    url, _ = relay
    async with httpx.AsyncClient() as client:
        answer = await client.post(url + "/api/channels", json=body)
        assert answer.status_code == 400 and "JSON boolean" in answer.json()["error"]
        private = await client.post(url + "/api/channels", json={"public": False})
        assert private.status_code == 201 and private.json()["public"] is False and private.json()["token"]


async def test_channels_created_per_address_are_limited(tmp_path):
    storage = SqliteRelayStorage(tmp_path / "limited")
    runner, urls = await start_server(create_relay_app(storage, RelaySettings(channels_per_minute=3)), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            made = [(await client.post(urls[0] + "/api/channels")).status_code for _ in range(3)]
            refused = await client.post(urls[0] + "/api/channels")
            redirect = await client.head(urls[0] + "/new")
    finally:
        await runner.cleanup()
        storage.close()
    assert made == [201, 201, 201]
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert redirect.status_code == 429


async def test_the_relay_holds_at_most_its_channel_quota_in_all(tmp_path):
    storage = SqliteRelayStorage(tmp_path / "quota")
    settings = RelaySettings(channels_per_minute=100, max_channels=3)
    runner, urls = await start_server(create_relay_app(storage, settings), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            made = [(await client.post(urls[0] + "/api/channels")).status_code for _ in range(3)]
            refused = await client.post(urls[0] + "/api/channels")
            redirect = await client.get(urls[0] + "/new", follow_redirects=False)
    finally:
        await runner.cleanup()
        storage.close()
    assert made == [201, 201, 201]
    assert refused.status_code == 503 and "limit of 3 channels" in refused.json()["error"]
    assert redirect.status_code == 503


async def test_headers_over_the_relay_budget_get_431_and_nothing_is_stored(relay):
    url, storage = relay
    async with httpx.AsyncClient() as client:
        channel = (await client.post(url + "/api/channels", json={"public": True})).json()
        headers = [(f"X-Pad-{i}", "a" * 1000) for i in range(100)]  # about 100 KB, over 64 KiB
        answer = await client.post(channel["url"], content=b"{}", headers=headers)
        fine = await client.post(channel["url"], content=b"{}", headers=headers[:10])
    assert answer.status_code == 431 and fine.status_code == 200
    assert len(storage.events_after(channel["id"], 0)) == 1


async def test_relay_bodies_held_at_once_have_a_budget(tmp_path):
    storage = SqliteRelayStorage(tmp_path / "budget")
    settings = RelaySettings(max_body=1000, max_bodies_in_flight=1500)
    app = create_relay_app(storage, settings)
    runner, urls = await start_server(app, "127.0.0.1", 0)
    host, port = urls[0].removeprefix("http://").split(":")
    try:
        async with httpx.AsyncClient() as client:
            channel = (await client.post(urls[0] + "/api/channels", json={"public": True})).json()
            reader, writer = await asyncio.open_connection(host, int(port))
            # 1,000 bytes announced and held while they trickle in
            writer.write(f"POST /{channel['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\nab".encode())
            await writer.drain()
            await await_until(lambda: app[BUDGET_KEY].used == 1000, what="the first body held")
            busy = await client.post(channel["url"], content=b"x" * 900)
            writer.write(b"c" * 998)
            assert b" 200 " in await asyncio.wait_for(reader.read(200), 10)
            writer.close()
            after = await client.post(channel["url"], content=b"x" * 900)
    finally:
        await runner.cleanup()
        storage.close()
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert after.status_code == 200


async def test_a_relay_body_that_does_not_arrive_in_time_gets_408(tmp_path):
    storage = SqliteRelayStorage(tmp_path / "slow")
    runner, urls = await start_server(create_relay_app(storage, RelaySettings(read_timeout=0.5)), "127.0.0.1", 0)
    host, port = urls[0].removeprefix("http://").split(":")
    try:
        async with httpx.AsyncClient() as client:
            channel = (await client.post(urls[0] + "/api/channels", json={"public": True})).json()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"POST /{channel['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\npart".encode())
        answer = await asyncio.wait_for(reader.read(200), 10)
        writer.close()
    finally:
        await runner.cleanup()
        storage.close()
    assert b" 408 " in answer.split(b"\r\n")[0]
    assert storage_is_empty(tmp_path / "slow", channel["id"])


def storage_is_empty(path, channel_id):
    with_storage = SqliteRelayStorage(path)
    try:
        return with_storage.events_after(channel_id, 0) == []
    finally:
        with_storage.close()


def test_relay_json_says_when_it_is_up_and_when_it_stopped(tmp_path):
    import json
    import subprocess

    from tests.factories import free_port, hookinspect_cmd, stop_process, wait_until_up

    port = free_port()
    proc = subprocess.Popen(hookinspect_cmd("relay", "--port", str(port), "--data", str(tmp_path / "relay"), "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", proc)
    finally:
        out, _err = stop_process(proc)
    started, stopped = (json.loads(line) for line in out.splitlines())
    assert started == {"type": "started", "urls": [f"http://127.0.0.1:{port}"], "data": str(tmp_path / "relay")}
    assert stopped == {"type": "stopped"}


@pytest.mark.parametrize("args, said", [
    (("--durability", "sometimes"), "--durability 'sometimes': choose power or process"),
    (("--durability", "process", "--storage", "redis://127.0.0.1:1/0"), "--durability applies to --data"),
])
def test_relay_durability_mistakes_are_one_line(tmp_path, args, said):
    from typer.testing import CliRunner

    from hookinspect.cli.app import app
    result = CliRunner().invoke(app, ["relay", "--port", "1", "--data", str(tmp_path / "relay"), *args])
    assert result.exit_code == 2 and said in result.output and "Traceback" not in result.output


async def test_a_full_disk_is_503_and_one_line_and_the_relay_recovers_by_itself(tmp_path):
    storage = SqliteRelayStorage(tmp_path / "relay")
    said: list[str] = []
    runner, urls = await start_server(create_relay_app(storage, RelaySettings(log=RelayLog(
        lambda record: said.append(record["message"]) if record["event"].startswith("storage.") else None))), "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            channel = (await client.post(f"{urls[0]}/api/channels", json={"public": True})).json()["url"]
            assert (await client.post(channel, content=b'{"n":1}')).status_code == 200
            pages = storage._conn.execute("PRAGMA page_count").fetchone()[0]
            storage._conn.execute(f"PRAGMA max_page_count = {pages}")  # as full as a disk can be
            refused = [await client.post(channel, content=b"x" * 60_000) for _ in range(3)]
            assert [r.status_code for r in refused] == [503] * 3
            assert refused[0].headers["Retry-After"] == "5" and "retry shortly" in refused[0].json()["error"]
            storage._conn.execute("PRAGMA max_page_count = 1073741823")  # room again
            assert (await client.post(channel, content=b'{"n":2}')).status_code == 200
    finally:
        await runner.cleanup()
        storage.close()
    assert len(said) == 2 and "is full" in said[0] and said[1] == "storing works again"


async def test_quiet_and_crowded_deliveries_reach_subscribers_in_id_order(tmp_path):
    storage = SqliteRelayStorage(tmp_path)
    hub = ChannelHub()
    appender = BatchingAppender(storage, hub)
    appender.start()
    try:
        # One alone (committed on the loop), a crowd at once (batched in a thread), one more alone.
        ids = [await appender.append(RelayEvent(0, "c", 1, "POST", "/0", "", [], b"0"))]
        ids += await asyncio.gather(*(appender.append(RelayEvent(0, "c", 1, "POST", f"/{n}", "", [], b"%d" % n))
                                      for n in range(1, 301)))
        ids.append(await appender.append(RelayEvent(0, "c", 1, "POST", "/301", "", [], b"301")))
    finally:
        await appender.stop()
    published = hub.recent_after("c", 1, 1000)  # all that memory holds after the first
    assert [1] + [e.id for e in published] == sorted(ids) == list(range(1, 303))
    assert [e.body for e in published] == [e.body for e in storage.events_after("c", 1, 1000)]
    storage.close()


@pytest.mark.parametrize("slow", [False, True])
async def test_a_slow_commit_on_the_loop_sends_the_next_ones_to_the_thread_for_a_while(tmp_path, slow):
    storage = SqliteRelayStorage(tmp_path)
    paths: list[str] = []  # which way each commit went
    for name in ("append_now", "append_many"):
        method = getattr(storage, name)
        setattr(storage, name, lambda events, method=method, name=name: paths.append(name) or method(events))
    appender = BatchingAppender(storage, ChannelHub())
    appender.QUIET_SECONDS = 0.0  # one delivery after another counts as quiet
    # A commit on the loop counts as slow from 0 s (a disk that always stalls), or never.
    appender.SLOW_INLINE_SECONDS = 0.0 if slow else 60.0
    appender.THREAD_ONLY_SECONDS = 0.5
    appender.start()

    async def lone(n: int) -> None:
        await appender.append(RelayEvent(0, "c", 1, "POST", f"/{n}", "", [], b"%d" % n))

    clock = asyncio.get_running_loop().time
    try:
        started = clock()
        for n in range(3):
            await lone(n)
        if not slow:
            assert paths == ["append_now"] * 3
            return
        assert paths == ["append_now", "append_many", "append_many"]  # the loop is spared the disk
        n = 3
        while paths[-1] != "append_now":  # after THREAD_ONLY_SECONDS the loop may commit again
            await lone(n)
            n += 1
            assert clock() - started < 10, "commits never came back to the loop"
        assert clock() - started >= 0.5
    finally:
        await appender.stop()
        storage.close()
