import asyncio
import contextlib
import gzip
import os

import httpx
import pytest

from hookinspect.intake.receiver import (
    MockResponse,
    ReceiverSettings,
    create_app,
    start_server,
)
from hookinspect.intake.responses import ResponseRule
from hookinspect.store.sqlite import Store
from tests.factories import await_until, store_count

BODIES = {
    "json": b'{"type":"invoice.paid","amount":1200}',
    "invalid_utf8": b'{"name":"caf\xe9 \xff\xfe"}',
    "nul_bytes": b"before\x00after\x00",
    "binary": os.urandom(4096),
    "empty": b"",
    "ansi_and_markup": b"\x1b[2J\x1b[31mred[/] [bold]x[/bold] [link=http://evil]y[/link]",
    "gzip": gzip.compress(b'{"zipped":true}'),
    "corrupt_gzip": b"\x1f\x8b\x08\x00garbage",
}


async def raw_exchange(base_url: str, request: bytes, read: bool = True) -> bytes:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(65536), 10) if read else b""
    writer.close()
    return data


@pytest.mark.parametrize("name", list(BODIES))
async def test_every_body_is_stored_byte_exact(receiver, store_path, name):
    url, _ = receiver
    headers = {"Content-Type": "application/json"}
    if name.endswith("gzip"):
        headers["Content-Encoding"] = "gzip"
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/hooks/{name}?a=1&a=2", content=BODIES[name], headers=headers)
    assert response.status_code == 200
    assert response.json()["seq"] == 1
    with Store(store_path) as store:
        delivery = store.get(1)
    assert delivery.body == BODIES[name]
    assert delivery.path == f"/hooks/{name}" and delivery.query == "a=1&a=2"
    assert delivery.remote_addr == "127.0.0.1"


async def test_headers_keep_order_case_and_duplicates(receiver, store_path):
    url, _ = receiver
    request = (b"POST /h HTTP/1.1\r\nHost: x\r\nX-First: 1\r\nx-dup: a\r\nX-Dup: b\r\nX-Last: caf\xe9\r\n"
               b"Content-Length: 2\r\n\r\n{}")
    assert b"200 OK" in await raw_exchange(url, request)
    with Store(store_path) as store:
        pairs = store.get(1).headers.pairs()
    assert pairs == [("Host", "x"), ("X-First", "1"), ("x-dup", "a"), ("X-Dup", "b"),
                     ("X-Last", "caf\udce9"), ("Content-Length", "2")]
    assert store_path.exists()


async def test_a_hundred_headers_and_a_long_jwt_are_accepted(receiver, store_path):
    url, _ = receiver
    headers = [(f"X-H-{i}", str(i)) for i in range(100)] + [("Authorization", "Bearer " + "j" * 40_000)]
    async with httpx.AsyncClient() as client:
        response = await client.post(url + "/many", content=b"{}", headers=headers)
    assert response.status_code == 200
    with Store(store_path) as store:
        assert len(store.get(1).headers.get_all("x-h-99")) == 1
        assert len(store.get(1).headers) >= 100


async def test_chunked_upload_is_stored_as_its_payload(receiver, store_path):
    url, _ = receiver
    request = (b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert b"200 OK" in await raw_exchange(url, request)
    with Store(store_path) as store:
        assert store.get(1).body == b"hello world"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "DELETE", "PATCH", "PURGE", "MKCOL"])
async def test_every_method_is_captured(receiver, store_path, method):
    url, _ = receiver
    async with httpx.AsyncClient() as client:
        response = await client.request(method, url + "/any/where")
    assert response.status_code == 200
    with Store(store_path) as store:
        assert store.get(1).method == method


async def test_a_25_mib_body_is_stored_and_one_byte_more_is_refused_with_413(receiver, store_path):
    url, settings = receiver
    big = os.urandom(1024) * (25 * 1024)
    assert len(big) == settings.max_body
    async with httpx.AsyncClient(timeout=60) as client:
        ok = await client.post(url + "/big", content=big)
        too_big = await client.post(url + "/big", content=big + b"!")
    assert ok.status_code == 200
    assert too_big.status_code == 413 and "exceeds the limit" in too_big.text
    with Store(store_path) as store:
        assert store.count() == 1 and store.get(1).body == big


async def test_an_oversized_chunked_body_is_refused_without_content_length(receiver, store_path):
    url, settings = receiver
    settings.max_body = 1000

    async def chunks():
        for _ in range(10):
            yield b"x" * 500

    async with httpx.AsyncClient() as client:
        response = await client.post(url + "/stream", content=chunks())
    assert response.status_code == 413
    with Store(store_path) as store:
        assert store.count() == 0


async def test_a_client_that_disconnects_mid_body_stores_nothing_and_the_receiver_lives(receiver, store_path):
    url, _ = receiver
    await raw_exchange(url, b"POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100, read=False)
    async with httpx.AsyncClient() as client:
        assert (await client.post(url + "/after", content=b"ok")).status_code == 200
    with Store(store_path) as store:
        assert [r.path for r in store.list()] == ["/after"]


async def test_mock_response_status_headers_body_and_per_path(receiver):
    url, settings = receiver
    settings.response = MockResponse(status=202, headers=[("X-Mock", "1"), ("Content-Type", "text/plain")], body=b"accepted")
    settings.path_responses = [ResponseRule("/fail/*", MockResponse(status=500, body=b"nope"))]
    async with httpx.AsyncClient() as client:
        plain = await client.post(url + "/x", content=b"{}")
        failing = await client.post(url + "/fail/now", content=b"{}")
    assert plain.status_code == 202 and plain.text == "accepted" and plain.headers["x-mock"] == "1"
    assert plain.headers["content-type"] == "text/plain"
    assert failing.status_code == 500 and failing.text == "nope"


async def test_delay_is_applied_after_storing(receiver, store_path):
    url, settings = receiver
    settings.response = MockResponse(delay=2.0)
    async with httpx.AsyncClient() as client:
        task = asyncio.create_task(client.post(url + "/slow", content=b"{}"))
        await await_until(lambda: store_count(store_path) == 1, what="the delivery stored")
        assert not task.done()  # stored before the (delayed) answer
        assert (await task).status_code == 200


async def test_captures_are_announced_by_the_workspace_and_refusals_reported_to_the_shell(receiver, workspace):
    url, settings = receiver
    settings.max_body = 10
    changes, events = [], []
    workspace.changes.subscribe(changes.append)
    settings.on_event = events.append
    async with httpx.AsyncClient() as client:
        await client.post(url + "/evt", content=b"{}")
        assert (await client.post(url + "/big", content=b"x" * 11)).status_code == 413
    assert [(c.kind, c.seq, c.delivery.path) for c in changes] == [("deliveries", 1, "/evt")]
    assert [e.kind for e in events] == ["rejected"] and "/big" in events[0].message


async def test_a_full_disk_answers_507_with_retry_after_and_capture_resumes_when_space_returns(receiver, workspace):
    from tests.store.test_writer import fill_up, free_space

    url, _settings = receiver
    changes = []
    workspace.changes.subscribe(changes.append)
    async with httpx.AsyncClient(timeout=5) as client:  # a hanging request fails the test
        assert (await client.post(url + "/before", content=b"{}")).status_code == 200
        await asyncio.to_thread(fill_up, workspace.writer)
        refused = await asyncio.gather(*(client.post(url + "/full", content=b"z" * 8000) for _ in range(20)))
        assert {r.status_code for r in refused} == {507}
        assert refused[0].headers["Retry-After"] == "30" and "disk is full" in refused[0].text
        await asyncio.to_thread(free_space, workspace.writer)
        after = await asyncio.gather(*(client.post(url + "/after", content=b"{}") for _ in range(5)))
        assert {r.status_code for r in after} == {200}
    paths = [workspace.store.get(seq).path for seq in workspace.store.seqs()]
    assert paths == ["/before"] + ["/after"] * 5  # nothing acknowledged is missing, nothing refused was kept
    said = [(c.kind, c.message) for c in changes if c.kind in ("failing", "recovered")]
    assert [kind for kind, _ in said] == ["failing", "recovered"]  # once each, not once per request
    assert "full" in said[0][1]


async def test_headers_over_the_budget_get_431_and_nothing_is_stored(receiver, workspace):
    url, settings = receiver
    events = []
    settings.on_event = events.append
    headers = [(f"X-Pad-{i}", "a" * 1000) for i in range(100)]  # about 100 KB, over the 64 KiB budget
    async with httpx.AsyncClient() as client:
        answer = await client.post(url + "/big-headers", content=b"{}", headers=headers)
        ok = await client.post(url + "/fine", content=b"{}", headers=headers[:10])
    assert answer.status_code == 431 and "exceed 65536 bytes" in answer.text
    assert ok.status_code == 200
    assert [row.path for row in workspace.store.list()] == ["/fine"]
    assert len(events) == 1 and "bytes of headers, over 65536" in events[0].message


async def test_a_request_aiohttp_cannot_read_is_one_reported_line_not_a_traceback(receiver, capsys):
    url, settings = receiver
    events = []
    settings.on_event = events.append
    too_many = b"".join(b"X-H%d: x\r\n" % i for i in range(1000))
    answer = await raw_exchange(url, b"POST /many HTTP/1.1\r\nHost: x\r\n" + too_many + b"Content-Length: 0\r\n\r\n")
    assert answer.split(b" ")[1] == b"431"  # aiohttp says 400; too many headers is what 431 means
    await await_until(lambda: events, what="the refusal reported")
    assert "a request could not be read" in events[0].message and "Too many headers" in events[0].message
    assert "\n" not in events[0].message and "Traceback" not in capsys.readouterr().err


async def test_bodies_held_at_once_have_a_process_wide_budget(receiver, workspace):
    url, settings = receiver
    settings.max_bodies_in_flight = 1000
    host, port = url.removeprefix("http://").split(":")
    # A sender that announces 800 bytes and sends half: its body is held while it dawdles.
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n" + b"a" * 400)
    await writer.drain()
    async with httpx.AsyncClient() as client:
        refused = None
        for _ in range(200):  # until the slow body's reservation is in place
            refused = await client.post(url + "/second", content=b"b" * 500)
            if refused.status_code == 503:
                break
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        writer.write(b"a" * 400)  # the slow sender finishes: its bytes are released
        await writer.drain()
        assert b" 200 " in (await asyncio.wait_for(reader.read(200), 10))
        writer.close()
        assert (await client.post(url + "/second", content=b"b" * 500)).status_code == 200
    assert [row.path for row in workspace.store.list(oldest_first=True)] == ["/slow", "/second"]


@pytest.fixture
async def impatient_receiver(workspace):
    """A receiver whose read timeout is one second."""
    settings = ReceiverSettings(read_timeout=1.0)
    runner, urls = await start_server(create_app(workspace, settings), "127.0.0.1", 0)
    try:
        yield urls[0], settings
    finally:
        await runner.cleanup()


async def closed_within(reader, seconds):
    """True when the server closes the connection within `seconds` (reads until EOF)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1024):
                pass
        return True
    except TimeoutError:
        return False


# How often the slowloris sender of the test below sends one more header line: its pace, not a wait.
TRICKLE_SECONDS = 0.2


async def test_idle_and_trickling_connections_are_closed_after_the_read_timeout(impatient_receiver):
    url, _ = impatient_receiver
    host, port = url.removeprefix("http://").split(":")
    idle_reader, idle_writer = await asyncio.open_connection(host, int(port))
    slow_reader, slow_writer = await asyncio.open_connection(host, int(port))
    slow_writer.write(b"POST /slowloris HTTP/1.1\r\nHost: x\r\n")

    done = asyncio.Event()

    async def trickle():
        for i in range(40):  # a header line now and then, never the end of the headers
            if slow_writer.is_closing() or done.is_set():
                return
            slow_writer.write(b"X-Trickle-%d: 1\r\n" % i)
            with contextlib.suppress(TimeoutError):  # its pace, ended at once when the test is done
                await asyncio.wait_for(done.wait(), TRICKLE_SECONDS)

    trickling = asyncio.create_task(trickle())
    assert await closed_within(idle_reader, 10), "an idle connection was kept open"
    assert await closed_within(slow_reader, 10), "a trickling connection was kept open"
    done.set()
    await trickling
    idle_writer.close()
    slow_writer.close()
    async with httpx.AsyncClient() as client:  # and the receiver still answers
        assert (await client.post(url + "/after", content=b"{}")).status_code == 200


async def test_a_body_that_does_not_arrive_in_time_gets_408_and_is_not_stored(impatient_receiver, workspace):
    url, _ = impatient_receiver
    answer = await raw_exchange(url, b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
    assert b" 408 " in answer.split(b"\r\n")[0]
    assert workspace.store.count() == 0


@pytest.mark.parametrize("request_bytes, status, reason", [
    (b"POST /many HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: x\r\n" % i for i in range(200)) + b"\r\n",
     431, "Too many headers"),
    (b"POST /x HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431, "LineTooLong"),
    (b"POST /" + b"u" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "LineTooLong"),
    (b"P\x1bST / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "BadHttpMethod"),
])
async def test_unreadable_requests_get_a_status_that_says_why_and_are_kept_as_rejected(
        receiver, workspace, request_bytes, status, reason):
    url, _ = receiver
    answer = await raw_exchange(url, request_bytes)
    assert answer.split(b" ")[1] == str(status).encode()
    await await_until(lambda: workspace.store.rejections(), what="the rejection kept")
    [kept] = workspace.store.rejections()
    assert kept.status == status and reason in kept.reason and kept.remote_addr == "127.0.0.1"
    assert workspace.store.count() == 0


async def test_refused_requests_are_kept_with_what_arrived_of_them(receiver, workspace):
    url, settings = receiver
    settings.max_body = 10
    answer = await raw_exchange(url, b"POST /big?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"8\r\n12345678\r\n8\r\nabcdefgh\r\n0\r\n\r\n")
    assert b" 413 " in answer.split(b"\r\n")[0]
    await await_until(lambda: workspace.store.rejections(), what="the rejection kept")
    [kept] = workspace.store.rejections()
    assert (kept.status, kept.method, kept.target) == (413, "POST", "/big?x=1")
    assert kept.head.startswith(b"POST /big?x=1 HTTP/1.1\r\nHost: x\r\n")
    assert kept.body == b"12345678abcdefgh"  # what had arrived when the limit was passed
    assert "body over 10 bytes" in kept.reason


async def test_a_flood_of_refusals_is_counted_not_written_row_by_row(receiver, workspace):
    url, settings = receiver
    settings.max_header_bytes = 100
    async with httpx.AsyncClient() as client:
        for _ in range(150):
            assert (await client.post(url + "/x", headers={"X-Pad": "a" * 200})).status_code == 431
    await await_until(lambda: workspace.store.count_rejections() == 150, what="every refusal counted")
    kept = len(workspace.store.rejections())
    assert 100 <= kept < 150  # a burst of 100 is kept row by row, the rest at 20 a second
