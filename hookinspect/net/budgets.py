"""What a stranger can make a server allocate, and the limits: header bytes per request, bytes
of bodies held at once by the process, time to send a body. Used by the receiver and the relay.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

# Header budget per request: what production front ends allow (nginx: 4 x 8 KiB, AWS ALB: 64 KiB).
# Webhooks carry long JWTs and signature headers, so one header may use all of it; beyond it the
# sender gets 431. aiohttp parses at most MAX_HEADERS headers of MAX_FIELD_SIZE before that
# check can run, which bounds what one request can make us allocate (8 MiB, not 128 MiB).
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
MAX_FIELD_SIZE = 64 * 1024
MAX_HEADERS = 128
READ_CHUNK = 256 * 1024
# Room for several bodies of the largest default size at once; a flood of unfinished bodies
# stops here instead of at the machine's memory.
DEFAULT_MAX_BODIES_IN_FLIGHT = 128 * 1024 * 1024
RETRY_AFTER_BUSY = 1
# Seconds a connection may sit idle or take to send its headers, and a body may take to
# arrive: a stranger's idle or trickling connections must not hold file descriptors forever.
DEFAULT_READ_TIMEOUT = 60.0


class BodyTooLarge(Exception):
    pass


class OverBudget(Exception):
    """Taking this body would hold more bytes in memory than the process allows at once."""


@dataclass
class BodyBudget:
    """Bytes of request bodies held in memory at once by the whole process: many slow or
    unfinished bodies from strangers must not add up to more than the limit."""

    used: int = 0

    @contextlib.contextmanager
    def hold(self, limit: int) -> Iterator[_Hold]:
        held = _Hold(self, limit)
        try:
            yield held
        finally:
            self.used -= held.total


@dataclass
class _Hold:
    budget: BodyBudget
    limit: int
    total: int = 0

    def take(self, size: int) -> None:
        if self.budget.used + size > self.limit:
            raise OverBudget()
        self.budget.used += size
        self.total += size


async def read_body(request: web.BaseRequest, limit: int, hold: _Hold | None = None,
                    received: list[bytes] | None = None) -> bytes:
    """The raw body, as sent (no transfer or content decoding); BodyTooLarge past `limit`,
    OverBudget when `hold` cannot take it (the process holds too many bodies already).
    Chunks read are also appended to `received`, so a caller that refuses the body midway
    still has what arrived (a body of known length is read in one go, and kept only whole)."""
    if request.content_length is not None:
        if request.content_length > limit:
            raise BodyTooLarge()
        if hold is not None:
            hold.take(request.content_length)
        return await request.read()  # length known and within the limit: one read
    chunks: list[bytes] = [] if received is None else received
    total = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        total += len(chunk)
        if total > limit:
            if not chunks and received is not None:
                chunks.append(chunk)  # arrived already; its start is what a rejection shows
            raise BodyTooLarge()
        if hold is not None:
            hold.take(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


def header_bytes(request: web.BaseRequest) -> int:
    """The size of the header block as sent: each `name: value\r\n`."""
    return sum(len(name) + len(value) + 4 for name, value in request.raw_headers)
