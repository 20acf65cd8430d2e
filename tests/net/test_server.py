"""The server under the receiver and the relay: half-closed clients and the connection cap."""

import asyncio
import socket

import httpx
import pytest

from hookinspect.intake.receiver import ReceiverSettings, create_app, start_server
from hookinspect.net.server import BUSY_ANSWER, default_max_connections
from tests.factories import await_until

ANSWER_SECONDS = 10  # a deadline for an answer that should come at once


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def half_closed_exchange(url: str, request: bytes) -> bytes:
    """Send `request`, close our sending side (SHUT_WR), read until the server closes."""
    with socket.create_connection(address(url), timeout=ANSWER_SECONDS) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_a_client_that_half_closes_after_its_request_gets_its_answer_once(receiver, workspace):
    url, _ = receiver
    request = b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"a\": true}"
    answer = await asyncio.to_thread(half_closed_exchange, url, request)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
    assert b'"received": true' in answer
    assert workspace.store.count() == 1  # answered, so the sender does not send it again


async def test_a_client_that_half_closes_mid_body_is_told_and_nothing_is_stored(receiver, workspace):
    url, _ = receiver
    request = b"POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"
    answer = await asyncio.to_thread(half_closed_exchange, url, request)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]  # at once, not after the read timeout
    assert b"body ended before it was complete" in answer
    assert workspace.store.count() == 0


async def test_an_idle_connection_that_half_closes_is_closed(receiver):
    url, _ = receiver
    assert await asyncio.to_thread(half_closed_exchange, url, b"") == b""


@pytest.fixture
async def small_receiver(workspace):
    """A receiver that holds at most 16 connections."""
    settings = ReceiverSettings(max_connections=16)
    reported: list[str] = []
    settings.on_event = lambda event: reported.append(event.message)
    runner, urls = await start_server(create_app(workspace, settings), "127.0.0.1", 0)
    try:
        yield urls[0], runner, reported
    finally:
        await runner.cleanup()


async def test_idle_and_trickling_connections_make_room_for_a_real_sender(small_receiver, workspace):
    url, runner, reported = small_receiver
    host, port = address(url)
    held = []
    for i in range(60):  # idle ones, and slowloris ones that never finish their headers
        reader, writer = await asyncio.open_connection(host, port)
        if i % 3 == 0:
            writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nX-Trickle: 1\r\n")
        held.append((reader, writer))
    await await_until(lambda: len(runner.server.connections) <= 16, timeout=ANSWER_SECONDS)
    async with httpx.AsyncClient(timeout=ANSWER_SECONDS) as client:
        answer = await client.post(url + "/real", content=b'{"real": true}')
    assert answer.status_code == 200
    assert [d.path for d in workspace.store.list()] == ["/real"]
    assert len(runner.server.connections) <= 16
    assert any("quiet connection" in line and "at most 16 open" in line for line in reported)
    assert len(reported) < 10  # one line a second at most, not one per connection
    for _, writer in held:
        writer.close()


async def test_when_every_connection_is_busy_a_new_one_gets_503_at_once(workspace):
    settings = ReceiverSettings(max_connections=16, read_timeout=30)
    runner, urls = await start_server(create_app(workspace, settings), "127.0.0.1", 0)
    host, port = address(urls[0])
    held = []
    try:
        for _ in range(16):  # each one mid-body: being answered, so not evictable
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            held.append((reader, writer))
        await await_until(lambda: sum(c.is_busy for c in runner.server.connections) == 16, timeout=ANSWER_SECONDS)
        reader, writer = await asyncio.open_connection(host, port)
        answer = await asyncio.wait_for(reader.read(), ANSWER_SECONDS)
        assert answer == BUSY_ANSWER
        writer.close()
        for reader, writer in held:  # the busy ones finish normally
            writer.write(b"cdefghij")
            assert b" 200 " in await asyncio.wait_for(reader.read(200), ANSWER_SECONDS)
            writer.close()
    finally:
        await runner.cleanup()
    assert workspace.store.count() == 16


def test_the_default_cap_leaves_descriptors_for_the_store_and_forwards():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert default_max_connections() <= max(16, soft - 100)
