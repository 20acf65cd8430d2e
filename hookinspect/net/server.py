"""aiohttp's server with the two behaviours a public endpoint needs and aiohttp lacks.

- A client that sends its request and then half-closes its socket (`shutdown(SHUT_WR)`,
  legal in HTTP/1.1) gets its answer: aiohttp closes the connection at end of input, so the
  request was stored but never answered, and the sender retried it as a duplicate.
- A cap on open connections below the file-descriptor limit. When a new connection would
  pass it, the connection that has been quiet the longest and is not being answered is
  closed (as nginx reuses keep-alive connections): thousands of idle or trickling
  connections from a stranger cannot keep a real sender out, and the process never runs
  into `Too many open files`.

- Any method that is an HTTP token (`FOO`, `Foo`, `post`), as the sender wrote it. aiohttp's
  C parser (llhttp) knows a fixed list of upper-case methods and answers 400 to the rest, so a
  connection whose first request line starts with anything else is read by aiohttp's own
  pure-Python parser, which accepts every token, with the method kept as sent (it would
  upper-case it). The usual methods keep the C parser's speed; a later request on the same
  connection with an unusual method is still refused by llhttp (and kept as a rejection).
- Trailer fields after a chunked body, which both of aiohttp's parsers read and drop: a
  connection whose first request is chunked is read by the same Python parser, which notes
  each body's trailers for the receiver (`trailers_of`). A chunked request later on a
  connection that began otherwise loses its trailers, as before.

They hook into aiohttp's request handler, which has no public extension point for them.
"""

from __future__ import annotations

import asyncio
import errno
import resource
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.client_exceptions import ClientPayloadError
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.http_parser import HeadersParser, HttpRequestParserPy, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

# Descriptors kept free for everything that is not a client connection: the store and its
# WAL, forwards to targets, relay subscriptions, and connections accepted in one burst
# before the cap is checked (asyncio accepts up to the listen backlog at once).
RESERVED_DESCRIPTORS = 300
MIN_CONNECTIONS = 16
_BUSY_TEXT = b"hookinspect: too many connections; retry shortly\n"
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
               b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT))


class OncePerSecond:
    """Says a recurring event at most once a second: `note(describe)` counts one event and,
    when a second has passed since the last line, says `describe(events since then)`."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.last = 0.0
        self.count = 0

    def note(self, describe: Callable[[int], str]) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.say(describe(self.count))
            self.last, self.count = now, 0


class OutOfFilesReporter:
    """The event loop's error handler: running out of file descriptors (too many open connections)
    is one line a second at most, not a traceback per refused connection; asyncio itself pauses
    accepting and resumes when descriptors are free again. Anything else is asyncio's to report."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.lines = OncePerSecond(warn)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, ValueError) and "_start_serving" in repr(context.get("handle")):
            # asyncio retries accepting a second after running out of descriptors; when the
            # server stopped meanwhile, that retry meets a closed socket: nothing is wrong.
            return
        if not (isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)):
            loop.default_exception_handler(context)
            return
        self.lines.note(lambda count: f"out of file descriptors ({exc.strerror}): new connections wait until some "
                                      f"close{f' ({count - 1} more since the last line)' if count > 1 else ''}; "
                                      "raise the limit with `ulimit -n`")


def raise_file_limit(ceiling: int = 65536) -> int:
    """Raise this process's soft limit on open files to its hard limit (at most `ceiling`), as
    servers do: the soft default (often 1024) is far below what a public endpoint needs."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
        except (ValueError, OSError):
            pass
    return soft


def unreadable_status(exc: BaseException | None, status: int) -> int:
    """431 for headers over aiohttp's limits (too many, or one too long), 414 for a request
    target too long; aiohttp answers 400 for all of them."""
    if isinstance(exc, BadHttpMessage) and "Too many headers" in exc.message:
        return 431
    if isinstance(exc, LineTooLong):
        line = exc.args[0] if exc.args else b""
        start = (line.encode("latin-1", "replace") if isinstance(line, str) else bytes(line))[:8].lower()
        return 414 if start.startswith((b"/", b"http")) else 431
    return status


def default_max_connections() -> int:
    """What this process can hold open without running out of file descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(MIN_CONNECTIONS, soft - RESERVED_DESCRIPTORS) if soft > 2 * RESERVED_DESCRIPTORS else max(MIN_CONNECTIONS, soft // 2)


# Request lines llhttp reads, and reads fast; any other start goes to the lenient parser.
FAST_METHODS = (b"POST ", b"GET ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")


def needs_lenient_parser(first_bytes: bytes) -> bool:
    """The connection's first bytes do not start with a method llhttp knows (or a prefix of
    one), or its first request's body is chunked (and may end with trailer fields)."""
    start = first_bytes[:8]
    if not any(method.startswith(start) if len(start) < len(method) else start.startswith(method)
               for method in FAST_METHODS):
        return True
    head = first_bytes.split(b"\r\n\r\n", 1)[0].lower()
    return b"chunked" in head and b"transfer-encoding" in head


class _TrailerNotingHeaders(HeadersParser):
    """The parser's header reader, which also reads trailers: those it keeps, by body."""

    def __init__(self, owner: LenientRequestParser, template: HeadersParser) -> None:
        super().__init__(template.max_line_size, template.max_headers, template.max_field_size,
                         template._lax)  # noqa: SLF001
        self.owner = owner

    def parse_headers(self, lines: list[bytes]):  # noqa: ANN201 (aiohttp's own pair)
        parsed = super().parse_headers(lines)
        payload_parser = self.owner._payload_parser  # noqa: SLF001
        if not self.owner.reading_head and payload_parser is not None and parsed[1]:
            self.owner.trailers[id(payload_parser.payload)] = list(parsed[1])
        return parsed


class LenientRequestParser(HttpRequestParserPy):
    """aiohttp's pure-Python request parser, keeping the method as the sender wrote it and the
    trailer fields of each chunked body (by the body's identity, until the receiver takes them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_head = False
        self.trailers: dict[int, list[tuple[bytes, bytes]]] = {}
        self._headers_parser = _TrailerNotingHeaders(self, self._headers_parser)

    def parse_message(self, lines: list[bytes]) -> RawRequestMessage:
        self.reading_head = True
        try:
            message = super().parse_message(lines)
        finally:
            self.reading_head = False
        method = lines[0].split(b" ", 1)[0].decode("latin-1")
        return message if method == message.method else message._replace(method=method)


def trailers_of(request: web.BaseRequest) -> list[tuple[bytes, bytes]]:
    """The trailer fields that followed the request's chunked body (read it first), or []."""
    protocol = request.protocol
    parser = getattr(protocol, "_parser", None)
    if not isinstance(parser, LenientRequestParser):
        return []
    return parser.trailers.pop(id(request.content), [])


Refusal = Callable[[web.Request], "web.StreamResponse | None"]


def continue_unless(refusal: Refusal) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    """An `expect_handler` for a route: `Expect: 100-continue` gets `100 Continue` only when
    `refusal(request)` has nothing against the request (a declared body over the limit); the
    refusal is the answer otherwise, and the sender never sends the body it would refuse. An
    Expect value we do not know is not refused: the request is still captured."""

    async def handle(request: web.Request) -> web.StreamResponse | None:
        refused = refusal(request)
        if refused is not None:
            return refused
        if request.version == HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the answer proper has not started
        return None

    return handle


class Connection(RequestHandler):
    """One client connection: answers half-closed clients and tells the server when it was last active."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answered = 0  # requests answered; aiohttp counts those parsed (`_request_count`)
        self._last_payload: StreamReader | None = None  # the body of the newest request parsed
        self._parser_chosen = False
        self._parser_options = kwargs

    def data_received(self, data: bytes) -> None:
        manager = self._manager
        if isinstance(manager, BoundedServer):
            manager.touch(self)
        if not self._parser_chosen:
            self._parser_chosen = True
            if needs_lenient_parser(data):
                self._parser = self._lenient_parser()
        payload = self._last_payload
        if (self._close or self._force_close) and payload is not None and not payload.is_eof() and self._parser:
            # Stopping: aiohttp drops what arrives now, and the request whose body is on its way
            # would wait out the drain and get no answer. Its body is still read (nothing after it).
            self._parser.feed_data(data)
            return
        super().data_received(data)
        if self._messages:
            self._last_payload = self._messages[-1][1]

    async def finish_response(self, request: BaseRequest, resp: StreamResponse,
                              start_time: float | None) -> tuple[StreamResponse, bool]:
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._answered += 1

    def _lenient_parser(self) -> LenientRequestParser:
        options = self._parser_options
        return LenientRequestParser(
            self, options["loop"], options.get("read_bufsize", 2**16), max_line_size=self.max_line_size,
            max_field_size=self.max_field_size, max_headers=self.max_headers,
            payload_exception=RequestPayloadError, auto_decompress=options.get("auto_decompress", True),
            max_msg_queue_size=self._max_msg_queue_size)

    def connection_lost(self, exc: BaseException | None) -> None:
        # The body of a refused request may still be unread, and aiohttp lingers up to 10 s
        # reading it (holding a shutdown that long); nothing more will arrive.
        payload = self._last_payload
        super().connection_lost(exc)
        if payload is not None and not payload.is_eof():
            payload.feed_eof()

    def eof_received(self) -> bool:  # type: ignore[override]  # asyncio reads the result
        """The client finished sending. Keep the socket open to write the answers to what
        arrived, then close; an idle connection closes now."""
        if not self.is_busy:
            return False
        payload = self._last_payload
        if payload is not None and not payload.is_eof():  # it will never be complete: say so, not wait for a timeout
            payload.set_exception(ClientPayloadError("the sender closed its side before the body ended"))
        self.close()  # after the answer in progress (aiohttp reads no further requests)
        return True

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> StreamResponse:
        """A request aiohttp could not read: the status that says why, and a note to the server."""
        status = unreadable_status(exc, status)
        manager = self._manager
        if isinstance(manager, BoundedServer) and manager.on_unreadable is not None and status != 500:
            manager.on_unreadable(request.remote, status, exc)
        return super().handle_error(request, status, exc, message)

    @property
    def is_busy(self) -> bool:
        """A request arrived and is not answered yet: not a candidate for eviction."""
        return self._request_count > self._answered


class BoundedServer(web.Server):
    """aiohttp's connection factory with a cap on open connections; the least recently active
    idle connection makes room for a new one."""

    def __init__(self, *args: Any, max_connections: int, say: Callable[[str], None] | None = None,
                 on_unreadable: Callable[[str | None, int, BaseException | None], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.on_unreadable = on_unreadable  # (client address, status answered, what aiohttp raised)
        self._by_activity: OrderedDict[Connection, None] = OrderedDict()  # least recently active first
        self._evictions = OncePerSecond(say or (lambda line: None))  # said once a second at most

    def __call__(self) -> Connection:
        return Connection(self, loop=self._loop, **self._kwargs)

    def touch(self, connection: Connection) -> None:
        if connection in self._by_activity:
            self._by_activity.move_to_end(connection)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        if not isinstance(handler, Connection):
            return
        if len(self._by_activity) >= self.max_connections and not self._evict_one():
            transport.write(BUSY_ANSWER)  # every connection is mid-answer: refuse this one, briefly
            handler.force_close()
            transport.close()
            return
        self._by_activity[handler] = None

    def _evicted_line(self, count: int) -> str:
        return (f"{count} quiet connection{'s' if count != 1 else ''} closed to make room for new ones "
                f"(at most {self.max_connections} open at once)")

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._by_activity.pop(handler, None)  # type: ignore[call-overload]
        super().connection_lost(handler, exc)

    def _evict_one(self) -> bool:
        for connection in self._by_activity:
            if not connection.is_busy:
                del self._by_activity[connection]
                connection.force_close()
                if connection.transport is not None:
                    connection.transport.close()
                self._evictions.note(self._evicted_line)
                return True
        return False


class BoundedRunner(web.AppRunner):
    """An AppRunner whose server is a BoundedServer."""

    def __init__(self, app: web.Application, *, max_connections: int | None = None,
                 say: Callable[[str], None] | None = None,
                 on_unreadable: Callable[[str | None, int, BaseException | None], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.max_connections = max_connections or default_max_connections()
        self.say = say  # a line for the operator (connections closed to make room)
        self.on_unreadable = on_unreadable

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds its own Server; ours is the same with a different connection class.
        return BoundedServer(server.request_handler, request_factory=server.request_factory,
                             handler_cancellation=server.handler_cancellation, loop=server._loop,  # noqa: SLF001
                             max_connections=self.max_connections, say=self.say,
                             on_unreadable=self.on_unreadable,
                             **server._kwargs)  # noqa: SLF001
