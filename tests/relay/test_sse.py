"""relay/sse.py: Server-Sent Events as the HTML standard parses them, with a bound per event."""

import tracemalloc

import pytest

from hookinspect.relay.sse import TOO_LARGE, ServerSentEvent, read_events

STREAM = (b"event: ready\ndata: {}\n\n"
          b"id: 1\ndata: hello\ndata:  world\n\n"  # two data lines; only one space is taken off
          b": a comment\r\nid: 2\r\ndata:x\r\nretry: 10\r\n\r\n"  # CRLF, no space after the colon
          b"id: 3\rdata: y\r\r"  # lone CRs
          b"data: no id of its own\n\n"  # keeps the last id, as the standard says
          b"event: ping\n\n"  # no data: nothing to dispatch
          b"id: 4\ndata: unfinished")  # the stream ends before the blank line: not dispatched

EXPECTED = [ServerSentEvent("ready", "{}", ""), ServerSentEvent("message", "hello\n world", "1"),
            ServerSentEvent("message", "x", "2"), ServerSentEvent("message", "y", "3"),
            ServerSentEvent("message", "no id of its own", "3")]


async def chunks_of(data: bytes, size: int):
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def events(data: bytes, size: int, bound: int = 1 << 20) -> list[ServerSentEvent]:
    return [event async for event in read_events(chunks_of(data, size), bound)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
async def test_the_events_are_the_same_however_the_bytes_are_split(size):
    assert await events(STREAM, size) == EXPECTED


async def test_an_event_over_the_bound_is_skipped_by_id_and_the_next_ones_are_whole():
    big = b"id: 7\ndata: " + b"A" * 5000 + b"\n\nid: 8\ndata: after\n\n"
    for size in (1, 100, len(big)):
        assert await events(big, size, bound=1000) == [ServerSentEvent(TOO_LARGE, "", "7"),
                                                       ServerSentEvent("message", "after", "8")]


async def test_an_endless_line_is_never_held_whole():
    async def endless():
        yield b"id: 9\ndata: "
        for _ in range(800):  # 50 MiB, in 64 KiB chunks, and no line end
            yield b"B" * 65536

    tracemalloc.start()
    try:
        got = [event async for event in read_events(endless(), 1 << 20)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [] and peak < 8 * (1 << 20)
