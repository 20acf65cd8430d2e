"""`hookinspect listen`: run the capture receiver and print one line per delivery."""

from __future__ import annotations

import asyncio
import queue
import signal
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from hookinspect.body import escape_controls
from hookinspect.cli.app import app
from hookinspect.cli.common import (
    INSECURE_OPTION,
    SECRET_OPTION,
    STORE_OPTION,
    gather_secrets,
    parse_header,
    parse_size,
)
from hookinspect.cli.output import Output, human_size, safe_text
from hookinspect.cli.render import VERDICT_STYLES, local_time, status_style
from hookinspect.config import DEFAULT_HOST, DEFAULT_MAX_BODY, DEFAULT_PORT, Settings
from hookinspect.errors import HookinspectError, UsageError
from hookinspect.store.sqlite import Store, default_store_path

if TYPE_CHECKING:
    from hookinspect.receiver import ForwardSettings, MockResponse, ReceiverEvent, ReceiverSettings

# The receiver, forwarding and signing modules are imported inside the functions that use them:
# they pull in aiohttp and friends, which `ls`, `show` and the other commands do not need at start-up.

# Lines waiting for the terminal; past this the printer drops lines (and says how many)
# rather than slow capture down: the store has every delivery anyway.
PRINT_QUEUE_LIMIT = 10_000
# With --ack and --workers, how often the first process looks for deliveries the others queued.
QUEUE_POLL_WITH_WORKERS = 0.05


class LivePrinter:
    """Prints receiver events from its own thread, so a slow terminal never delays capture."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._queue: queue.Queue[ReceiverEvent | None] = queue.Queue(PRINT_QUEUE_LIMIT)
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="hookinspect-printer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def __call__(self, event: ReceiverEvent) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._dropped += 1

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                self.console.print(Text(f"… {dropped} lines not shown (terminal too slow); `hookinspect ls` has them", style="dim"))
            self.console.print(render_event(event), soft_wrap=True)


def render_event(event: ReceiverEvent) -> Text:
    delivery = event.delivery
    if event.kind == "rejected":
        return Text("rejected ", style="bold red") + safe_text(event.message)
    if event.kind == "relay":
        return Text("relay ", style="bold blue") + safe_text(event.message)
    if event.kind == "store_error":
        return Text("NOT STORED ", style="bold red") + safe_text(event.message)
    if event.kind == "forwarded" and event.attempt is not None:
        attempt = event.attempt
        line = Text(f"{'':12}  #{attempt.delivery_seq:<5} → ", style="dim") + safe_text(attempt.target_url, "dim")
        line += Text(" ") + Text(attempt.outcome, style=status_style(attempt.outcome))
        if attempt.latency_ms is not None:
            line += Text(f" {attempt.latency_ms:.0f} ms", style="dim")
        if attempt.error_message:
            line += Text(" ") + safe_text(attempt.error_message, "red")
        elif attempt.response is not None and not attempt.is_success and attempt.response.body:
            line += Text(" ") + safe_text(attempt.response.text()[:300].replace("\n", " "), "red")
        if event.message:
            line += Text(" " + event.message, style="bold red")
        return line
    assert delivery is not None
    ctype = (delivery.headers.get("content-type") or "").split(";")[0]
    line = Text.assemble(
        (local_time(delivery.received_us), "dim"), "  ", (f"#{delivery.seq:<5}", "bold"), " ",
        safe_text(f"{delivery.method:<6}", "bold magenta"), " ", safe_text(delivery.target), "  ",
        (human_size(delivery.size), "cyan"), "  ", safe_text(ctype, "dim"),
    )
    if delivery.provider:
        line += Text("  ") + safe_text(" ".join(x for x in (delivery.provider, delivery.event_type) if x), "blue")
    if delivery.verdict:
        line += Text("  ") + Text(delivery.verdict, style=VERDICT_STYLES.get(delivery.verdict, ""))
        if delivery.verdict != "valid" and delivery.verdict_reason:
            line += Text(f" ({escape_controls(delivery.verdict_reason)})", style="dim")
    return line


def build_mock_response(status: int, body: str | None, headers: list[str], delay: float) -> MockResponse:
    from hookinspect.receiver import MockResponse

    if not 100 <= status <= 599:
        raise UsageError(f"--status {status} is not an HTTP status")
    if delay < 0:
        raise UsageError("--delay cannot be negative")
    payload: bytes | None = None
    if body is not None:
        if body.startswith("@"):
            try:
                payload = Path(body[1:]).read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read response body file {body[1:]}: {exc.strerror}") from None
        else:
            payload = body.encode("utf-8")
    return MockResponse(status=status, headers=[parse_header(h) for h in headers], body=payload, delay=delay)


def build_forwarding(settings: Settings, forward_to: list[str], ack: bool, max_attempts: int,
                     timeout: float, verify_tls: bool = True) -> ForwardSettings | None:
    """Forwarding from flags and config (forward_to, [[route]]); None when nothing is forwarded."""
    from hookinspect.forward import Forwarder, validate_target
    from hookinspect.receiver import ForwardSettings
    from hookinspect.retry_queue import DEFAULT_SCHEDULE
    from hookinspect.routing import parse_routes, targets_for

    configured = settings.get("forward_to")
    defaults = forward_to or ([configured] if isinstance(configured, str) else list(configured or []))
    defaults = [validate_target(url) for url in defaults]
    routes = parse_routes(settings.table("route"))
    if not defaults and not routes:
        if ack:
            raise UsageError("--ack needs somewhere to forward to", "add --forward-to URL")
        return None
    return ForwardSettings(
        forwarder=Forwarder(timeout=timeout, verify_tls=verify_tls),
        route=lambda delivery: targets_for(delivery, routes, defaults),
        ack=ack,
        max_attempts=max_attempts,
        schedule=DEFAULT_SCHEDULE,
    )


@app.command("listen")
def listen(
    host: str | None = typer.Option(None, "--host", help=f"Address to bind. Example: --host 0.0.0.0 (public!) [default: {DEFAULT_HOST}]"),
    port: int | None = typer.Option(None, "--port", "-p", help=f"Port to bind; 0 picks a free one. [default: {DEFAULT_PORT}]"),
    status: int = typer.Option(200, "--status", help="Status to answer with. Example: --status 202"),
    response_body: str | None = typer.Option(None, "--response-body", help="Body to answer with, or @file. Example: --response-body '{\"ok\":true}'"),
    response_header: list[str] = typer.Option([], "--response-header", "-H", help="Header to answer with (repeatable). Example: -H 'X-Mock: 1'"),
    delay: float = typer.Option(0.0, "--delay", help="Seconds to wait before answering (after storing). Example: --delay 2.5"),
    max_body: str | None = typer.Option(None, "--max-body", help="Largest body accepted; larger gets 413. Example: --max-body 50MiB [default: 25MiB]"),
    forward_to: list[str] = typer.Option([], "--forward-to", "-F", help="Pass every delivery on to this URL (repeatable). Example: -F http://localhost:3000/webhooks"),
    ack: bool = typer.Option(False, "--ack", help="Answer senders at once and forward from a durable queue with retries."),
    max_attempts: int = typer.Option(10, "--max-attempts", min=1, help="With --ack: tries per delivery before giving up. Example: --max-attempts 3"),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds to wait for the target. Example: --timeout 10"),
    insecure: bool = INSECURE_OPTION,
    secret: list[str] = SECRET_OPTION,
    verify: bool | None = typer.Option(None, "--verify/--no-verify", help="Check signatures as deliveries arrive [default: on when a secret is configured]"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print a line per delivery."),
    source: str | None = typer.Option(None, "--source", help="Also take deliveries from a relay channel (ours or smee.io). Example: --source https://relay.example.com/AbC…"),
    token: str | None = typer.Option(None, "--token", envvar="HOOKINSPECT_RELAY_TOKEN", help="The channel's subscribe token (from `hookinspect channel new`)."),
    ui: bool = typer.Option(False, "--ui", help="Open the terminal UI while listening."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Receiver processes sharing the port and the store, for high request rates (Linux). Example: --workers 2 [default: 1]"),
    store_path: Path | None = STORE_OPTION,
) -> None:
    """Receive webhooks: store every request durably, then answer it."""
    from hookinspect.forward import validate_target
    from hookinspect.receiver import ReceiverSettings
    from hookinspect.signing.registry import annotate_delivery

    out = Output()
    settings = Settings()
    host = settings.get("host", host, DEFAULT_HOST)
    port = settings.get_int("port", port, DEFAULT_PORT)
    workers = settings.get_int("workers", workers, 1)
    if workers < 1:
        raise UsageError(f"workers = {workers} in the configuration: it must be 1 or more")
    limit = parse_size(str(settings.get("max_body", max_body, DEFAULT_MAX_BODY)))
    path = Path(store_path or default_store_path())
    Store(path).close()  # fail now, before binding, if the store cannot be opened or migrated
    receiver_settings = ReceiverSettings(
        response=build_mock_response(status, response_body, response_header, delay),
        max_body=limit,
        forward=build_forwarding(settings, forward_to, ack, max_attempts, timeout, verify_tls=not insecure),
        source=validate_target(source) if source else None,
        source_token=token,
    )
    if source is not None and receiver_settings.forward is not None:
        # Deliveries from a relay have no sender waiting for an answer: they go out from the queue.
        receiver_settings.forward.ack = True
    if workers > 1:
        check_workers_fit(ui=ui, source=source)
    secrets = gather_secrets(secret)
    is_verifying = bool(secrets) if verify is None else verify
    receiver_settings.inspect = lambda delivery: annotate_delivery(delivery, secrets, is_verifying)
    if ui:
        from hookinspect.tui.app import run_ui

        forward = receiver_settings.forward
        run_ui(path, listen=(str(host), int(port or 0), receiver_settings), secrets=secrets,
               target=(forward_to[0] if forward_to else settings.get("forward_to")) if forward else None)
        return
    printer = LivePrinter(out.stdout) if not quiet else None
    if printer is not None:
        receiver_settings.on_event = printer
    if workers == 1:
        asyncio.run(_serve(out, path, receiver_settings, str(host), int(port or 0), printer))
    else:
        _serve_with_workers(out, path, receiver_settings, str(host), int(port or 0), printer, workers)
    out.info("stopped; every acknowledged delivery is in the store")


def check_workers_fit(ui: bool, source: str | None) -> None:
    from hookinspect.workers import workers_unavailable

    reason = workers_unavailable()
    if reason is not None:
        raise UsageError(reason, "drop --workers")
    for flag, is_set in (("--ui", ui), ("--source", source is not None)):
        if is_set:
            # Each needs one process: the UI owns the terminal, and a channel must be read once.
            raise UsageError(f"{flag} runs in one process and cannot be combined with --workers", "drop --workers")


def _serve_with_workers(out: Output, path: Path, settings: ReceiverSettings, host: str, port: int,
                        printer: LivePrinter | None, workers: int) -> None:
    from hookinspect.receiver import listen_error
    from hookinspect.workers import bind_shared, claim_shared, fork_workers, stop_workers

    try:
        first = claim_shared(host, port)
    except OSError as exc:
        raise listen_error(host, port, exc) from None
    port = first.getsockname()[1]  # when 0 was asked for, the others join the port it got
    forward = settings.forward
    if forward is not None and forward.ack:
        forward.queue_poll = QUEUE_POLL_WITH_WORKERS  # the first process forwards what every worker queues

    def run_worker(parent: int) -> int:
        first.close()  # the parent's: were the parent killed, this copy would keep it open with nobody accepting
        if forward is not None:
            forward.works_queue = False
        try:
            sock = bind_shared(host, port)
            asyncio.run(_serve(out, path, settings, host, port, printer, sock=sock, parent=parent))
        except HookinspectError as exc:
            out.error(exc.message)
            return exc.exit_code
        except Exception as exc:  # noqa: BLE001 - a worker's end must be said, the others keep serving
            out.error(f"a worker stopped: {type(exc).__name__}: {exc}")
            return 1
        return 0

    children = fork_workers(workers - 1, run_worker)
    try:
        asyncio.run(_serve(out, path, settings, host, port, printer, sock=first, workers=workers, children=children))
    finally:
        stop_workers(children)


async def _serve(out: Output, path: Path, settings: ReceiverSettings, host: str, port: int,
                 printer: LivePrinter | None, sock: socket.socket | None = None, parent: int | None = None,
                 workers: int = 1, children: list[int] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. A worker (`parent` set) prints only its live lines and stops with its parent;
    the first process says when one of its `children` ends."""
    from hookinspect.receiver import create_app, is_loopback, start_server
    from hookinspect.workers import stop_when_orphaned

    app_ = create_app(path, settings)
    runner, urls = await start_server(app_, host, port, sock=sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if parent is not None:
        watch = asyncio.create_task(stop_when_orphaned(parent, stop))
    elif children:
        watch = asyncio.create_task(_report_ended_workers(out, children, workers))
    else:
        watch = None
    if parent is None:
        if not is_loopback(host):
            out.warn(f"listening on {host}, reachable from other machines: anyone who can reach it can send "
                     "you requests and read nothing back but your mock answer. Use --host 127.0.0.1 unless you mean it.")
        shown_workers = f"  {workers} workers" if workers > 1 else ""
        out.stderr.print(Text.assemble(("hookinspect ", "bold"), "listening on ", (", ".join(urls), "bold cyan"),
                                       "  store ", (str(path), "cyan"), shown_workers, ("  (Ctrl+C to stop)", "dim")))
    if printer is not None:
        printer.start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if watch is not None:
            watch.cancel()
        if printer is not None:
            printer.stop()


async def _report_ended_workers(out: Output, children: list[int], workers: int) -> None:
    """A worker that ends early is said at once; the kernel hands its share of connections to the rest."""
    from hookinspect.workers import PARENT_CHECK_SECONDS, reap_exited

    while children:
        await asyncio.sleep(PARENT_CHECK_SECONDS)
        for pid, code in reap_exited(children):
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            out.warn(f"worker {pid} ended ({how}); {len(children) + 1} of {workers} processes still serve")
