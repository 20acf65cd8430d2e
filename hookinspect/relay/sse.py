"""Server-Sent Events read from a stream of bytes, as the HTML standard parses them.

Ours rather than httpx-sse over httpx: a relay subscription reads one event per delivery, and
at a steady rate httpx's streaming cost the laptop about as much as storing the delivery.
Every event is bounded (`max_event_bytes`): what a relay sends comes from strangers, and an
event past the bound is read through without being kept, then reported as `too-large`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

TOO_LARGE = "too-large"  # the type of the event standing in for one over the bound (no data)
# The last event a draining relay sends: resume at once, on another instance or on this one
# once it is back (relay/stream.py sends it, intake/subscription.py acts on it).
RESTART = "restart"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str = ""


class _Event:
    """The event being read."""

    def __init__(self) -> None:
        self.type = ""
        self.data: list[str] = []
        self.size = 0
        self.too_large = False


async def read_events(chunks: AsyncIterator[bytes], max_event_bytes: int) -> AsyncIterator[ServerSentEvent]:
    """The events in `chunks` (split anywhere), in order. Lines end with LF, CRLF or CR; `id`
    carries over to later events as the standard says; `retry` and comments are ignored."""
    partial: list[bytes] = []  # the start of a line whose end has not arrived
    partial_size = 0
    partial_dropped = False  # that start was over the bound and is not kept
    after_cr = False  # the last chunk ended with CR: a LF starting the next one is part of that ending
    current, last_id = _Event(), ""
    async for chunk in chunks:
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        pieces = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        tail = pieces.pop()  # after the last line ending (all of the chunk if it has none)
        lines: list[tuple[bytes, int, bool]] = []  # (line, its size, whether its start was dropped)
        for index, piece in enumerate(pieces):
            if index == 0 and (partial or partial_dropped):
                joined = b"" if partial_dropped else b"".join([*partial, piece])
                lines.append((joined, partial_size + len(piece), partial_dropped))
                partial, partial_size, partial_dropped = [], 0, False
            else:
                lines.append((piece, len(piece), False))
        for raw, size, dropped in lines:
            if not size:  # a blank line ends the event
                if current.too_large:
                    yield ServerSentEvent(TOO_LARGE, "", last_id)
                elif current.data:
                    yield ServerSentEvent(current.type or "message", "\n".join(current.data), last_id)
                current = _Event()
                continue
            current.size += size
            if current.size > max_event_bytes:
                current.too_large, current.data = True, []
            if dropped:
                continue
            name, colon, value = raw.decode("utf-8", "replace").partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "id" and "\0" not in value:
                last_id = value
            elif current.too_large:
                continue
            elif name == "data":
                current.data.append(value)
            elif name == "event":
                current.type = value
        if tail:
            if not partial_dropped:
                partial.append(tail)
            partial_size += len(tail)
            if current.size + partial_size > max_event_bytes:  # one endless line: stop keeping it
                current.too_large, current.data, partial, partial_dropped = True, [], [], True
