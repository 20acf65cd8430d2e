"""`hookinspect listen`: run the capture receiver and print one line per delivery."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

from hookinspect.body import json_text
from hookinspect.cli.common import (
    ALLOWED_HOST_OPTION,
    INSECURE_OPTION,
    SECRET_OPTION,
    STORE_OPTION,
    gather_secrets,
    parse_header,
)
from hookinspect.cli.output import Output, rich_line, safe_text
from hookinspect.config import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    DEFAULT_WEB_PORT,
    Settings,
    checked_port,
)
from hookinspect.errors import UsageError
from hookinspect.model import Delivery
from hookinspect.store.sqlite import default_store_path
from hookinspect.views.delivery import attempt_line, delivery_line
from hookinspect.workspace import StoreChange, Workspace

if TYPE_CHECKING:
    from hookinspect.intake.receiver import (
        ForwardSettings,
        MockResponse,
        ReceiverEvent,
        ReceiverSettings,
    )
    from hookinspect.relay.storage import Claim
    from hookinspect.send.queue import QueuePolicy
    from hookinspect.signing.registry import Secrets

app = typer.Typer()  # this module's commands; cli/app.py gathers them

# The receiver, forwarding and signing modules are imported inside the functions that use them:
# they pull in aiohttp and friends, which `ls`, `show` and the other commands do not need at start-up.

# Lines waiting for the terminal; past this the printer drops lines (and says how many)
# rather than slow capture down: the store has every delivery anyway.
PRINT_QUEUE_LIMIT = 10_000


class LivePrinter:
    """Prints receiver events from its own thread, so a slow terminal never delays capture:
    a line each for people, or (`as_json`) one JSON object per line for scripts. `shows`
    decides which deliveries are printed (listen --events, --provider)."""

    def __init__(self, console: Console, *, as_json: bool = False,
                 shows: Callable[[Delivery], bool] = lambda delivery: True) -> None:
        self.console = console
        self.as_json = as_json
        self.shows = shows
        self._queue: queue.Queue[ReceiverEvent | StoreChange | None] = queue.Queue(PRINT_QUEUE_LIMIT)
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="hookinspect-printer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def __call__(self, event: ReceiverEvent | StoreChange) -> None:
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._dropped += 1

    def on_change(self, change: StoreChange) -> None:
        """A delivery this process stored gets its line; so does storing failing or working again."""
        if change.kind == "deliveries" and change.delivery is not None:
            if self.shows(change.delivery):
                self(change)
        elif change.kind in ("failing", "recovered"):
            self(change)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                if self.as_json:
                    self._write_json({"type": "dropped", "count": dropped})
                else:
                    self.console.print(Text(f"… {dropped} lines not shown (terminal too slow); `hookinspect ls` has them",
                                            style="dim"))
            if self.as_json:
                self._write_json(event_dict(event))
            else:
                self.console.print(render_event(event), soft_wrap=True)

    def _write_json(self, data: dict) -> None:
        try:
            sys.stdout.write(json_text(data, indent=None) + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # `listen --json | head`: the reader left; capture goes on
            pass


def event_dict(event: ReceiverEvent | StoreChange) -> dict:
    """The `listen --json` line of an event: a delivery as `show --json` gives it, an attempt,
    a refusal, a relay state or the store failing and recovering, each with a "type"."""
    if isinstance(event, StoreChange):
        if event.kind in ("failing", "recovered"):
            return {"type": "store", "state": event.kind, "message": event.message}
        assert event.delivery is not None
        return {"type": "delivery", **event.delivery.to_dict()}
    if event.kind == "forwarded" and event.attempt is not None:
        return {"type": "attempt", **event.attempt.to_dict(), "message": event.message or None}
    return {"type": "rejected" if event.kind == "rejected" else event.kind, "message": event.message}


def render_event(event: ReceiverEvent | StoreChange) -> Text:
    if isinstance(event, StoreChange):
        if event.kind == "failing":
            return Text("NOT STORING ", style="bold red") + safe_text(event.message) + Text(
                " (senders get 507/503 with Retry-After; capture resumes by itself)", style="dim")
        if event.kind == "recovered":
            return Text("STORING ", style="bold green") + safe_text(event.message)
        assert event.delivery is not None
        return rich_line(delivery_line(event.delivery))
    if event.kind == "rejected":
        return Text("rejected ", style="bold red") + safe_text(event.message)
    if event.kind == "relay":
        return Text("relay ", style="bold blue") + safe_text(event.message)
    assert event.kind == "forwarded" and event.attempt is not None
    return rich_line(attempt_line(event.attempt, event.message))


def build_mock_response(status: int, body: str | None, headers: list[str], delay: float) -> MockResponse:
    from hookinspect.intake.receiver import MockResponse

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


def build_forwarding(settings: Settings, forward_to: list[str], ack: bool, policy: QueuePolicy,
                     timeout: float, verify_tls: bool = True) -> ForwardSettings | None:
    """Forwarding from flags and config (forward_to, [[route]]); None when nothing is forwarded."""
    from hookinspect.formats.targets import validate_target
    from hookinspect.intake.receiver import ForwardSettings
    from hookinspect.send.forward import Forwarder
    from hookinspect.send.routing import parse_routes, targets_for

    defaults = [validate_target(url) for url in forward_to or settings.get_urls("forward_to")]
    routes = parse_routes(settings.table("route"))
    if not defaults and not routes:
        if ack:
            raise UsageError("--ack needs somewhere to forward to", "add --forward-to URL")
        return None
    return ForwardSettings(
        forwarder=Forwarder(timeout=timeout, verify_tls=verify_tls),
        route=lambda delivery: targets_for(delivery, routes, defaults),
        ack=ack,
        queue=policy,
    )


@app.command("listen")
def listen(
    host: str | None = typer.Option(None, "--host", help=f"Address to bind. Example: --host 0.0.0.0 (public!) [default: {DEFAULT_HOST}]"),
    port: int | None = typer.Option(None, "--port", "-p", help=f"Port to bind; 0 picks a free one. [default: {DEFAULT_PORT}]"),
    status: int = typer.Option(200, "--status", help="Status to answer with. Example: --status 202"),
    response_body: str | None = typer.Option(None, "--response-body", help="Body to answer with, or @file. Example: --response-body '{\"ok\":true}'"),
    response_header: list[str] = typer.Option([], "--response-header", "-H", help="Header to answer with (repeatable). Example: -H 'X-Mock: 1'"),
    delay: float = typer.Option(0.0, "--delay", help="Seconds to wait before answering (after storing). Example: --delay 2.5"),
    respond: list[str] = typer.Option([], "--respond", help="Answer for a path glob (repeatable, first match wins): GLOB=STATUS[,delay=S][,header=N:V][,every=N|times=N|chance=P][,body=TEXT|@FILE]. Example: --respond '/hooks/*=500,every=3'"),
    max_body: str | None = typer.Option(None, "--max-body", help="Largest body accepted; larger gets 413. Example: --max-body 50MiB [default: 25MiB]"),
    read_timeout: float | None = typer.Option(None, "--read-timeout", help="Seconds a connection may stay idle or take to send a request. Example: --read-timeout 30 [default: 60]"),
    max_header_bytes: str | None = typer.Option(None, "--max-header-bytes", help="Largest header block accepted; larger gets 431. Example: --max-header-bytes 128KiB [default: 64KiB]"),
    max_connections: int | None = typer.Option(None, "--max-connections", help="Connections open at once; the quietest idle one is closed to make room [default: the file-descriptor limit less 300]"),
    forward_to: list[str] = typer.Option([], "--forward-to", "-F", help="Pass every delivery on to this URL (repeatable). Example: -F http://localhost:3000/webhooks"),
    ack: bool = typer.Option(False, "--ack", help="Answer senders at once and forward from a durable queue with retries."),
    max_attempts: int = typer.Option(10, "--max-attempts", min=1, help="With --ack: tries per delivery before giving up. Example: --max-attempts 3"),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=256, help="With --ack: sends in flight per target at once. Example: --concurrency 4"),
    ordered: bool = typer.Option(False, "--ordered", help="With --ack: one send at a time per target, oldest first (strict order)."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds to wait for the target. Example: --timeout 10"),
    insecure: bool = INSECURE_OPTION,
    secret: list[str] = SECRET_OPTION,
    verify: bool | None = typer.Option(None, "--verify/--no-verify", help="Check signatures as deliveries arrive [default: on when a secret is configured]"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print a line per delivery."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line on stdout for every capture, forward result, refusal and relay state (human lines go to stderr)."),
    events: str | None = typer.Option(None, "--events", help="Store everything, but print and forward only these event types (globs, comma-separated). Example: --events 'invoice.*,customer.created'"),
    provider: str | None = typer.Option(None, "--provider", help="Store everything, but print and forward only this provider's deliveries. Example: --provider stripe"),
    source: list[str] = typer.Option([], "--source", help="Also take deliveries from a relay channel (ours or smee.io); repeat it with the same channel on other relay instances to fail over between them. Example: --source https://relay.example.com/AbC…"),
    token: str | None = typer.Option(None, "--token", envvar=["HOOKINSPECT_TOKEN", "HOOKINSPECT_RELAY_TOKEN"], help="The channel's subscribe token (from `hookinspect channel new`); HOOKINSPECT_TOKEN or --token-file keep it out of `ps`."),
    token_file: Path | None = typer.Option(None, "--token-file", help="Read the channel's token from this file. Example: --token-file ~/.config/hookinspect/token"),
    claim: str | None = typer.Option(None, "--claim", help="Take only these of the channel's deliveries (the filter language); others go to the subscribers who claim them. Example: --claim 'provider:stripe $.data.object.metadata.dev=ana'"),
    claim_default: bool = typer.Option(False, "--claim-default", help="Take the channel's deliveries that nobody claims (with --claim: those too)."),
    subscriber: str | None = typer.Option(None, "--subscriber", help="Your name on the channel, for --claim [default: user@host]. Example: --subscriber ana"),
    seal_key: Path | None = typer.Option(None, "--seal-key", help="A sealed channel's private key [default: keys/<channel id>.key beside the store, where `channel new --sealed` puts it]"),
    ui: bool = typer.Option(False, "--ui", help="Open the terminal UI while listening."),
    web: bool = typer.Option(False, "--web", help="Also serve the web inspector (its own process, same store). Example: --web --web-port 8788"),
    web_port: int = typer.Option(DEFAULT_WEB_PORT, "--web-port", help=f"Port of the web inspector with --web. [default: {DEFAULT_WEB_PORT}]"),
    workers: int | None = typer.Option(None, "--workers", help="Receiver processes sharing the port and the store, for high request rates (Linux). Example: --workers 2 [default: 1]"),
    durability: str | None = typer.Option(None, "--durability", help="power: an acknowledged delivery survives power loss (fsync per commit); process: it survives a crash of hookinspect only, for more speed on slow disks. Example: --durability process [default: power]"),
    store_path: Path | None = STORE_OPTION,
    allowed_host: list[str] = ALLOWED_HOST_OPTION,
) -> None:
    """Receive webhooks: store every request durably, then answer it."""
    from hookinspect.formats.targets import validate_target
    from hookinspect.intake.receiver import (
        DEFAULT_MAX_BODIES_IN_FLIGHT,
        DEFAULT_MAX_HEADER_BYTES,
        DEFAULT_READ_TIMEOUT,
        ReceiverSettings,
    )
    from hookinspect.intake.responses import parse_respond, rules_from_config
    from hookinspect.intake.serve import check_store, check_workers_fit
    from hookinspect.intake.subscription import checked_sources
    from hookinspect.send.queue import QueuePolicy
    from hookinspect.signing.registry import annotate_delivery, read_secret_file, resigner_for

    out = Output()
    settings = Settings()
    host = settings.get("host", host, DEFAULT_HOST)
    port = settings.checked("port", port, DEFAULT_PORT)
    workers = settings.checked("workers", workers, 1)
    most_workers = 4 * (os.cpu_count() or 1)  # beyond it processes only compete for the cores
    if workers > most_workers:
        raise UsageError(f"--workers {workers} is more than this machine can use: it has {os.cpu_count()} cores",
                         f"use at most {most_workers}; one per core is usually best")
    limit = settings.checked("max_body", max_body, DEFAULT_MAX_BODY)
    durability = settings.checked("durability", durability, "power")
    path = Path(store_path or default_store_path())
    rules = [parse_respond(spec) for spec in respond] + rules_from_config(settings.table("responses"))
    receiver_settings = ReceiverSettings(
        response=build_mock_response(status, response_body, response_header, delay),
        path_responses=rules,
        max_body=limit,
        max_header_bytes=settings.checked("max_header_bytes", max_header_bytes, DEFAULT_MAX_HEADER_BYTES),
        read_timeout=settings.checked("read_timeout", read_timeout, DEFAULT_READ_TIMEOUT),
        max_bodies_in_flight=settings.checked("max_bodies_in_flight", None, DEFAULT_MAX_BODIES_IN_FLIGHT),
        max_connections=settings.checked("max_connections", max_connections),
        forward=build_forwarding(settings, forward_to, ack, QueuePolicy(max_attempts=max_attempts, concurrency=concurrency,
                                                                         ordered=ordered),
                                 timeout, verify_tls=not insecure),
        sources=checked_sources([validate_target(url) for url in source]) if source else (),
        source_token=read_secret_file(str(token_file)) if token_file is not None else token,
    )
    if source:
        receiver_settings.source_seal_key, receiver_settings.source_seal_key_path = channel_key(seal_key, path, source[0])
    if claim is not None or claim_default:
        receiver_settings.source_claim = checked_claim(source, claim, claim_default, subscriber)
    shows = delivery_selector(events, provider)
    if receiver_settings.forward is not None and (events or provider):
        everything = receiver_settings.forward.route
        receiver_settings.forward.route = lambda delivery: everything(delivery) if shows(delivery) else []
    if source and receiver_settings.forward is not None:
        # Deliveries from a relay have no sender waiting for an answer: they go out from the queue.
        receiver_settings.forward.ack = True
    if workers > 1:
        check_workers_fit(ui=ui, source=source or None)
    secrets = gather_secrets(secret)
    is_verifying = bool(secrets) if verify is None else verify
    receiver_settings.inspect = lambda delivery: annotate_delivery(delivery, secrets, is_verifying)
    if receiver_settings.forward is not None and secrets:
        # Every try from the queue is signed anew: a delivery that waited out the target's
        # tolerance window (Stripe's 5 minutes) must not go out with its old timestamp.
        receiver_settings.forward.queue.resigner_for = lambda delivery: resigner_for(delivery, secrets)
    # Fail now, before binding or forking, on a store that cannot be opened, written or
    # trusted; only after every option is checked, so a mistyped command creates no store.
    pending = check_store(path, is_explicit=store_path is not None)
    forward = receiver_settings.forward
    if rules and forward is not None and not forward.ack:
        out.warn("--respond has no effect while --forward-to proxies: the target answers (add --ack to answer here)")
    for rule in rules:
        out.info(f"answers {rule.describe()}")
    if pending:
        sends = "they go out now" if forward is not None and forward.ack else "--ack with --forward-to sends them"
        out.info(f"{pending} deliver{'y waits' if pending == 1 else 'ies wait'} in the forward queue; {sends}"
                 " (`hookinspect queue` lists them)")
    if ui:
        with web_inspector(path, str(host), checked_port(web_port), secret, allowed_host) if web else contextlib.nullcontext():
            run_with_ui(path, receiver_settings, str(host), int(port or 0), durability, secrets,
                        (forward_to or settings.get_urls("forward_to") or [None])[0] if forward else None)
        return
    with web_inspector(path, str(host), checked_port(web_port), secret, allowed_host) if web else contextlib.nullcontext():
        run_receiver(out, path, receiver_settings, host, port, workers, durability, quiet, as_json, shows)


def checked_claim(sources: list[str], claim: str | None, is_default: bool, subscriber: str | None) -> Claim:
    """This laptop's claim on the channel, checked here so a mistake is one line before anything starts."""
    import getpass
    import socket

    from hookinspect.relay.claims import parse_claim
    from hookinspect.relay.storage import Claim
    if not sources:
        raise UsageError("--claim and --claim-default choose deliveries of a relay channel: add --source URL")
    if claim is not None:
        parse_claim(claim)
    name = subscriber or f"{getpass.getuser()}@{socket.gethostname()}"
    return Claim(name, claim or "", is_default, 0.0)


def channel_key(given: Path | None, store: Path, source: str) -> tuple[bytes | None, str]:
    """A sealed channel's private key: the file given, or the one `channel new --sealed` made
    beside the store (None when there is none: the channel is not sealed, or a message says
    where it was looked for once a sealed event arrives)."""
    from hookinspect.intake.subscription import channel_url
    from hookinspect.relay.sealing import key_path, load_private_key
    path = given or key_path(store, channel_url(source).rsplit("/", 1)[-1])
    if given is None and not path.exists():
        return None, f"no key at {path}; pass --seal-key FILE"
    return load_private_key(path), f"key {path}"


def run_with_ui(path: Path, receiver_settings: ReceiverSettings, host: str, port: int, durability: str,
                secrets: Secrets, target: str | None) -> None:
    """`listen --ui`: the receiver in its own process, the terminal UI in this one."""
    from hookinspect.intake.background import ReceiverProcess
    from hookinspect.store.owner import owning
    from hookinspect.tui.app import run_ui

    with owning(path):
        # Forked before the UI opens the store or starts a thread: its own process, so a
        # sender's wait never depends on what the UI renders or filters.
        receiver = ReceiverProcess(path, receiver_settings, host, port, durability=durability)
        receiver.start()
        try:
            with Workspace(path, create=True, durability=durability) as workspace:
                run_ui(workspace, receiver=receiver, secrets=secrets, target=target)
        finally:
            receiver.stop()


@contextlib.contextmanager
def web_inspector(path: Path, host: str, port: int, secret: list[str], allowed_hosts: list[str]) -> Iterator[None]:
    """`listen --web`: the web inspector in a process of its own over the same store, so what a
    browser asks for never slows capture; its banner goes to our stderr. Stopped with us."""
    args = [sys.executable, "-m", "hookinspect", "web", "--host", host, "--port", str(port), "--store", str(path)]
    for item in secret:
        args += ["--secret", item]
    for name in allowed_hosts:
        args += ["--allowed-host", name]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_receiver(out: Output, path: Path, receiver_settings: ReceiverSettings, host: str, port: int | None, workers: int,
                 durability: str, quiet: bool, as_json: bool, shows: Callable[[Delivery], bool]) -> None:
    from hookinspect.intake.serve import ServeReport, serve

    printer = LivePrinter(out.stdout, as_json=as_json, shows=shows) if not quiet or as_json else None
    if printer is not None:
        receiver_settings.on_event = printer
    report = ServeReport(started=lambda urls, count: out.stderr.print(started_line(urls, path, count)),
                         warn=out.warn, error=out.error,
                         on_change=printer.on_change if printer is not None else None,
                         begin=printer.start if printer is not None else (lambda: None),
                         end=printer.stop if printer is not None else (lambda: None))
    serve(path, receiver_settings, str(host), int(port or 0), report, workers=workers, durability=durability)
    out.info("stopped; every acknowledged delivery is in the store")


def delivery_selector(events: str | None, provider: str | None) -> Callable[[Delivery], bool]:
    """Which deliveries `listen --events/--provider` prints and forwards (all are stored)."""
    from hookinspect.formats.filters import checked_provider

    globs = [g.strip() for g in (events or "").split(",") if g.strip()]
    wanted = checked_provider(provider) if provider else None

    def shows(delivery: Delivery) -> bool:
        if wanted is not None and delivery.provider != wanted:
            return False
        return not globs or (delivery.event_type is not None
                             and any(fnmatch.fnmatchcase(delivery.event_type, g) for g in globs))

    return shows


def started_line(urls: list[str], path: Path, workers: int) -> Text:
    shown_workers = f"  {workers} workers" if workers > 1 else ""
    return Text.assemble(("hookinspect ", "bold"), "listening on ", (", ".join(urls), "bold cyan"),
                         "  store ", (str(path), "cyan"), shown_workers, ("  (Ctrl+C to stop)", "dim"))
