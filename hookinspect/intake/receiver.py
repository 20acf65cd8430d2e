"""The capture receiver: an aiohttp app that stores every request before answering it.

`create_app(workspace, settings)` builds the app; `start_server(app, host, port)` runs it.
The receiver only turns a request into a Delivery and hands it to the recorder (the one
capture path); a sender gets its answer only after the delivery is committed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.client_exceptions import ClientPayloadError
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from hookinspect.body import escape_controls
from hookinspect.config import DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT
from hookinspect.errors import NetworkError, StoreError, StoreFullError, one_line
from hookinspect.formats.targets import HOP_BY_HOP
from hookinspect.intake.responses import MockResponse, ResponseRule
from hookinspect.model import (
    REJECTED_BODY_LIMIT,
    REJECTED_HEAD_LIMIT,
    Attempt,
    Delivery,
    Headers,
    Rejection,
)
from hookinspect.net.budgets import (
    DEFAULT_MAX_BODIES_IN_FLIGHT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_READ_TIMEOUT,
    MAX_FIELD_SIZE,
    MAX_HEADERS,
    RETRY_AFTER_BUSY,
    BodyBudget,
    BodyTooLarge,
    OverBudget,
    header_bytes,
    read_body,
)
from hookinspect.net.server import BoundedRunner, continue_unless, raise_file_limit, trailers_of
from hookinspect.recorder import Recorder
from hookinspect.relay.storage import Claim
from hookinspect.send.forward import Forwarder
from hookinspect.send.queue import ForwardQueueWorker, QueuePolicy
from hookinspect.store.queue import QueueItem
from hookinspect.values import now_us
from hookinspect.workspace import Workspace

# Seconds a sender is asked to wait when a delivery could not be stored: a full disk takes a
# person to free space; other store errors (a lock held too long) usually pass sooner.
RETRY_AFTER_FULL = 30
RETRY_AFTER_ERROR = 5


@dataclass
class ReceiverEvent:
    """What the receiver tells its shell: a capture, a rejected request, a forward result."""

    kind: str  # rejected | forwarded | relay (captures and store failures are announced by the workspace)
    delivery: Delivery | None = None
    attempt: Attempt | None = None
    message: str = ""


@dataclass
class ForwardSettings:
    """`listen --forward-to`: proxy mode answers with the target's response; ack mode queues."""

    forwarder: Forwarder
    route: Callable[[Delivery], list[str]]  # the targets of one delivery (routing.targets_for)
    ack: bool = False
    queue: QueuePolicy = field(default_factory=QueuePolicy)
    # With --ack and several processes (listen --workers), one works the queue for all of them,
    # looking at it every `queue.idle_poll` seconds; the others only add to it.
    works_queue: bool = True


@dataclass
class ReceiverSettings:
    response: MockResponse = field(default_factory=MockResponse)
    path_responses: list[ResponseRule] = field(default_factory=list)  # --respond, [[responses]]: first match wins
    max_body: int = DEFAULT_MAX_BODY
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    # Bodies held in memory at once by this process, all requests together (503 beyond).
    max_bodies_in_flight: int = DEFAULT_MAX_BODIES_IN_FLIGHT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_connections: int | None = None  # None: what the file-descriptor limit allows (http_server)
    on_event: Callable[[ReceiverEvent], None] | None = None
    forward: ForwardSettings | None = None
    # Annotates a delivery before it is stored (provider, event type, signature verdict).
    inspect: Callable[[Delivery], None] | None = None
    # A relay channel to subscribe to (listen --source), on one or several relay instances that
    # share it (tried in turn), and its token.
    sources: tuple[str, ...] = ()
    source_token: str | None = None
    source_seal_key: bytes | None = None  # a sealed channel's private key
    source_seal_key_path: str = ""
    source_claim: Claim | None = None  # this subscriber's share of the channel

    def response_for(self, path: str) -> MockResponse:
        for rule in self.path_responses:
            answer = rule.answer(path)
            if answer is not None:
                return answer
        return self.response


WORKSPACE_KEY = web.AppKey("workspace", Workspace)
RECORDER_KEY = web.AppKey("recorder", Recorder)
SETTINGS_KEY = web.AppKey("settings", ReceiverSettings)
PENDING_KEY = web.AppKey("pending_records", set)


BUDGET_KEY = web.AppKey("body_budget", BodyBudget)


def create_app(workspace: Workspace, settings: ReceiverSettings | None = None) -> web.Application:
    """The capture app: every method and path is stored, then answered. The caller owns the workspace."""
    app = web.Application(client_max_size=0)  # limits are enforced while streaming, below
    settings = app[SETTINGS_KEY] = settings or ReceiverSettings()
    app[WORKSPACE_KEY] = workspace
    forward = settings.forward
    app[RECORDER_KEY] = Recorder(workspace, annotate=settings.inspect,
                                 route=forward.route if forward is not None else None,
                                 queue_forwards=forward is not None and forward.ack)
    app[PENDING_KEY] = set()
    app[BUDGET_KEY] = BodyBudget()

    async def writer_lifecycle(app: web.Application) -> AsyncIterator[None]:
        await workspace.start_writer()  # a store that cannot be written fails the start, not the first request
        yield
        await asyncio.gather(*app[PENDING_KEY], return_exceptions=True)
        await app[RECORDER_KEY].drain()

    app.cleanup_ctx.append(writer_lifecycle)
    if forward is not None:
        app.cleanup_ctx.append(_forwarding_lifecycle(forward))
    if settings.sources:
        app.cleanup_ctx.append(_source_lifecycle)
    app.router.add_route("*", "/{tail:.*}", capture_request, expect_handler=continue_unless(refuse_declared_body))
    return app


def _forwarding_lifecycle(forward: ForwardSettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        task = None
        if forward.ack and forward.works_queue:
            settings = app[SETTINGS_KEY]

            def report(attempt: Attempt, item: QueueItem, state: str) -> None:
                message = "" if state == "pending" or attempt.is_success else f"gave up after {item.tries + 1} tries"
                _emit(settings, ReceiverEvent("forwarded", attempt=attempt, message=message))

            worker = ForwardQueueWorker(app[WORKSPACE_KEY], forward.forwarder, forward.queue, on_attempt=report)
            task = asyncio.create_task(worker.run())
            app[RECORDER_KEY].send_first = worker.send_first
        yield
        app[RECORDER_KEY].send_first = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await forward.forwarder.aclose()

    return lifecycle


async def _source_lifecycle(app: web.Application) -> AsyncIterator[None]:
    from hookinspect.intake.subscription import (
        RelaySubscriber,  # the relay builds on the receiver's pieces
    )

    settings = app[SETTINGS_KEY]
    subscriber = RelaySubscriber(
        settings.sources, app[RECORDER_KEY], token=settings.source_token, seal_key=settings.source_seal_key,
        seal_key_source=settings.source_seal_key_path, claim=settings.source_claim, max_body=settings.max_body,
        on_state=lambda message: _emit(settings, ReceiverEvent("relay", message=message)),
    )
    task = asyncio.create_task(subscriber.run())
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def delivery_from_request(request: web.BaseRequest, body: bytes) -> Delivery:
    """What arrived, as a Delivery (after its body was read: trailers come after it)."""
    raw_path = request.raw_path
    path, _, query = raw_path.partition("?")
    return Delivery(
        method=request.method,
        path=path,
        query=query,
        http_version=f"{request.version.major}.{request.version.minor}",
        remote_addr=request.remote,
        headers=Headers.from_raw(request.raw_headers),
        trailers=Headers.from_raw(trailers_of(request)),
        body=body,
        received_us=now_us(),
    )


def _emit(settings: ReceiverSettings, event: ReceiverEvent) -> None:
    if settings.on_event is not None:
        settings.on_event(event)


def request_head(request: web.BaseRequest) -> bytes:
    """The request line and headers as they arrived (for a rejection), up to REJECTED_HEAD_LIMIT."""
    version = request.version
    parts = [f"{request.method} {request.raw_path} HTTP/{version.major}.{version.minor}\r\n".encode("utf-8", "surrogateescape")]
    size = len(parts[0])
    for name, value in request.raw_headers:
        if size > REJECTED_HEAD_LIMIT:
            break
        parts.append(b"%s: %s\r\n" % (name, value))
        size += len(parts[-1])
    return b"".join(parts)[:REJECTED_HEAD_LIMIT]


def reject(request: web.Request, status: int, why: str, text: str, *, received: list[bytes] | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    """Refuse a request: one line to the shell, a row for `ls --rejected` (with the start of
    the body `received`), and the answer `text`."""
    settings = request.app[SETTINGS_KEY]
    body = bytearray()
    for chunk in received or ():
        if len(body) >= REJECTED_BODY_LIMIT:
            break
        body += chunk[:REJECTED_BODY_LIMIT - len(body)]
    _emit(settings, ReceiverEvent("rejected", message=f"{request.method} {request.raw_path}: {why}"))
    request.app[RECORDER_KEY].reject(Rejection(status, why, request.remote, request.method, request.raw_path,
                                               request_head(request), bytes(body)))
    return web.Response(status=status, text=f"hookinspect: {text}\n", headers={"Connection": "close", **(headers or {})})


def refuse_declared_body(request: web.Request) -> web.StreamResponse | None:
    """The 413 a body announced over the limit gets before it is sent (no `100 Continue`)."""
    settings = request.app[SETTINGS_KEY]
    if request.content_length is not None and request.content_length > settings.max_body:
        return reject(request, 413, f"body over {settings.max_body} bytes",
                      f"request body exceeds the limit of {settings.max_body} bytes (listen --max-body)")
    return None


async def capture_request(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    size = header_bytes(request)
    if size > settings.max_header_bytes:
        return reject(request, 431, f"{size} bytes of headers, over {settings.max_header_bytes}",
                      f"the request headers exceed {settings.max_header_bytes} bytes (listen --max-header-bytes)")
    received: list[bytes] = []  # what arrived of the body, kept for a rejection
    with request.app[BUDGET_KEY].hold(settings.max_bodies_in_flight) as hold:
        try:
            async with asyncio.timeout(settings.read_timeout):
                body = await read_body(request, settings.max_body, hold, received)
        except TimeoutError:
            return reject(request, 408, f"body not complete within {settings.read_timeout:g} s",
                          f"the body did not arrive within {settings.read_timeout:g} s (listen --read-timeout)",
                          received=received)
        except BodyTooLarge:
            return reject(request, 413, f"body over {settings.max_body} bytes",
                          f"request body exceeds the limit of {settings.max_body} bytes (listen --max-body)",
                          received=received)
        except OverBudget:
            return reject(request, 503, f"too many bodies in memory at once (over {settings.max_bodies_in_flight} bytes)",
                          "busy receiving other bodies; retry shortly", headers={"Retry-After": str(RETRY_AFTER_BUSY)},
                          received=received)
        except ClientPayloadError:
            # The body ended before its declared length (the sender closed its side, or gave up):
            # nothing complete arrived, so nothing is stored, and the sender is told if still there.
            return reject(request, 400, "body ended early", "the body ended before it was complete; nothing was stored",
                          received=received)
        except (ConnectionError, HttpProcessingError):
            reject(request, 0, "sender disconnected mid-body", "", received=received)
            raise
        return await _record_and_answer(request, settings, body)


async def _record_and_answer(request: web.Request, settings: ReceiverSettings, body: bytes) -> web.StreamResponse:
    delivery = delivery_from_request(request, body)
    try:
        recorded = await request.app[RECORDER_KEY].record(delivery)
    except StoreError as exc:
        # Never a 2xx for what was not stored: the sender keeps it and retries (the recorder
        # has told the shell once; capture resumes by itself when the cause goes away).
        is_full = isinstance(exc, StoreFullError)
        text = "hookinspect: the disk is full; the delivery was not stored, retry later\n" if is_full else \
            "hookinspect: the delivery could not be stored; retry later\n"
        return web.Response(status=507 if is_full else 503, text=text,
                            headers={"Retry-After": str(RETRY_AFTER_FULL if is_full else RETRY_AFTER_ERROR)})
    forward = settings.forward
    if recorded.targets and not recorded.is_queued and forward is not None:
        attempts = await asyncio.gather(*(forward.forwarder.send(delivery, t, kind="forward") for t in recorded.targets))
        workspace = request.app[WORKSPACE_KEY]
        for attempt in attempts:
            # The sender waits for the target's answer, not for this record: the writer
            # drains its queue before closing, so it is still stored on a clean stop.
            record = asyncio.create_task(workspace.add_attempt(attempt))
            pending = request.app[PENDING_KEY]
            pending.add(record)
            record.add_done_callback(pending.discard)
            _emit(settings, ReceiverEvent("forwarded", delivery, attempt))
        return proxied_response(attempts[0], delivery)
    return await mock_response(settings.response_for(delivery.path), delivery)


def proxied_response(attempt: Attempt, delivery: Delivery) -> web.Response:
    """The target's answer for the sender, or a 502 that says why there is none."""
    if attempt.response is None or attempt.response_truncated:
        reason = attempt.error_message or "no response"
        text = f"hookinspect: could not forward to {attempt.target_url}: {reason} (delivery #{delivery.seq} is stored)\n"
        return web.Response(status=502, text=text)
    response = web.Response(status=attempt.response.status, reason=attempt.response.reason or None,
                            body=attempt.response.body)
    for name, value in attempt.response.headers:
        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
            response.headers.add(name, value)
    return response


async def mock_response(mock: MockResponse, delivery: Delivery) -> web.Response:
    if mock.delay > 0:
        await asyncio.sleep(mock.delay)
    if mock.body is None:
        # seq is an int (or unset) and id is hex: formatting gives json.dumps's JSON, cheaper.
        seq = b"null" if delivery.seq is None else b"%d" % delivery.seq
        body = b'{"received": true, "seq": %s, "id": "%s"}\n' % (seq, delivery.id.encode())
        response = web.Response(status=mock.status, body=body, content_type="application/json")
    else:
        response = web.Response(status=mock.status, body=mock.body)
    for name, value in mock.headers:
        if name.lower() == "content-type":
            response.headers["Content-Type"] = value
        else:
            response.headers.add(name, value)
    return response


class _OneLine(logging.Handler):
    """aiohttp's report of a request it could not parse or that broke a limit: one line, no traceback."""

    def __init__(self, report: Callable[[str], None]) -> None:
        super().__init__(logging.INFO)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        said = record.getMessage().replace("Error handling request", "a request could not be read")
        self.report(f"{said}: {describe_error(exc)}" if exc is not None else said)


def describe_error(exc: BaseException) -> str:
    """What aiohttp raised for an unreadable request, on one line."""
    if isinstance(exc, LineTooLong) and len(exc.args) > 1:  # its message repeats 100 bytes of the line
        return f"LineTooLong: a line of the request head is over {exc.args[1]} bytes"
    reason = one_line(exc, 10_000).removeprefix("400, message: ").strip()
    return f"{type(exc).__name__}: {reason}"


def _keep_unreadable(app: web.Application) -> Callable[[str | None, int, BaseException | None], None]:
    """Keeps requests aiohttp could not read among the rejections (the logger says the line)."""
    def keep(remote: str | None, status: int, exc: BaseException | None) -> None:
        recorder = app.get(RECORDER_KEY)
        if recorder is None:
            return
        line = exc.args[0] if isinstance(exc, LineTooLong) and exc.args else b""
        head = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else bytes(line)
        recorder.reject(Rejection(status, describe_error(exc) if exc is not None else "unreadable request",
                                  remote, head=head))
    return keep


def protocol_error_logger(report: Callable[[str], None]) -> logging.Logger:
    """A logger for aiohttp's server that turns each error it logs into one reported line."""
    logger = logging.Logger("hookinspect.intake.receiver.protocol")  # not registered: one per server
    logger.addHandler(_OneLine(report))
    return logger


def _say_on_stderr(line: str) -> None:
    print(f"hookinspect: {escape_controls(line, keep_newlines=False)}", file=sys.stderr, flush=True)


def listen_error(host: str, port: int, exc: OSError, port_flag: str = "--port") -> NetworkError:
    """The one-line error for an address that cannot be bound, with the hint that fits its cause
    (`port_flag` names the option that chose this port)."""
    if exc.errno in (errno.EADDRINUSE, errno.EACCES):  # the port is taken, or below 1024
        hint = f"pick another {port_flag} (0 picks a free one)"
    else:  # a name that does not resolve, an address this machine does not have
        hint = "check --host: an address of this machine, e.g. 127.0.0.1 or 0.0.0.0"
    return NetworkError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint)


async def start_server(app: web.Application, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                       sock: socket.socket | None = None, max_connections: int | None = None,
                       say: Callable[[str], None] | None = None, shutdown_seconds: float = 60.0,
                       ) -> tuple[web.AppRunner, list[str]]:
    """Serve on host:port (or a bound `sock`); the runner (its cleanup answers what is in flight for up
    to `shutdown_seconds`) and the base URLs. `max_connections`: else the settings', else the fd limit's;
    `say` takes the server's own lines (else the receiver's events, else stderr)."""
    raise_file_limit()  # before the connection cap is derived from it
    settings = app.get(SETTINGS_KEY)
    report = say or ((lambda line: _emit(settings, ReceiverEvent("rejected", message=line))) if settings else _say_on_stderr)
    runner = BoundedRunner(
        app,
        max_connections=max_connections or (settings.max_connections if settings else None),
        say=report,
        on_unreadable=_keep_unreadable(app),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=shutdown_seconds,
        # aiohttp arms this when a connection opens and again after each answer: a connection
        # that sends nothing, or trickles its headers, is closed after it (aiohttp's default is an hour).
        keepalive_timeout=settings.read_timeout if settings else DEFAULT_READ_TIMEOUT,
        logger=protocol_error_logger(report),
        max_headers=MAX_HEADERS,
        max_field_size=MAX_FIELD_SIZE,
        max_line_size=MAX_FIELD_SIZE,
        # The stored body must be the bytes that arrived, so never inflate gzip ourselves.
        auto_decompress=False,
    )
    await runner.setup()
    site: web.BaseSite = web.SockSite(runner, sock) if sock is not None else web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise listen_error(host, port, exc) from None
    urls = []
    for bound in site._server.sockets if site._server else []:  # noqa: SLF001 - aiohttp exposes no public accessor
        addr: Any = bound.getsockname()
        shown = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
        urls.append(f"http://{shown}:{addr[1]}")
    return runner, urls
