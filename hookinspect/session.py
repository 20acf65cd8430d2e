"""A listen session: `ListenOptions` (everything `listen` can be told) becomes one running
capture session: the receiver, the forward queue, relay subscriptions, and a terminal UI or a
web inspector beside them.

`plan_session` checks every option once, through the settings schema, and builds what runs; a
mistake is one UsageError before anything binds a port or creates a store. `run_session` is the
one process model: the receiver in this process (or forked `--workers`), or in a process of
its own beside a UI in this one; the web inspector always in a process of its own.
"""

from __future__ import annotations

import contextlib
import fnmatch
import getpass
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hookinspect.config import (
    DEFAULT_HOST,
    DEFAULT_MAX_BODY,
    DEFAULT_PORT,
    DEFAULT_WEB_PORT,
    Settings,
)
from hookinspect.errors import NetworkError, UsageError
from hookinspect.formats.filters import checked_provider
from hookinspect.formats.targets import validate_target
from hookinspect.intake.receiver import (
    ForwardSettings,
    MockResponse,
    ReceiverSettings,
    listen_error,
)
from hookinspect.intake.responses import (
    ResponseRule,
    parse_header,
    parse_respond,
    read_body,
    rules_from_config,
)
from hookinspect.intake.serve import ServeReport, check_store, check_workers_fit, serve
from hookinspect.intake.subscription import channel_url, checked_sources
from hookinspect.model import Delivery
from hookinspect.net.budgets import (
    DEFAULT_MAX_BODIES_IN_FLIGHT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_READ_TIMEOUT,
)
from hookinspect.relay.claims import parse_claim
from hookinspect.relay.sealing import key_path, load_private_key
from hookinspect.relay.storage import Claim
from hookinspect.send.forward import Forwarder
from hookinspect.send.queue import QueuePolicy
from hookinspect.send.routing import parse_routes, targets_for
from hookinspect.signing.registry import (
    Secrets,
    annotate_delivery,
    read_secret_file,
    register_schemes,
    resigner_for,
)
from hookinspect.store.sqlite import default_store_path
from hookinspect.workspace import Workspace


@dataclass
class ListenOptions:
    """What `listen` was told, as given; None means "not given": the settings file, the
    environment or the default decides."""

    store_path: Path | None = None
    host: str | None = None
    port: int | None = None
    status: int = 200
    response_body: str | None = None
    response_header: list[str] = field(default_factory=list)
    delay: float = 0.0
    respond: list[str] = field(default_factory=list)
    max_body: str | None = None
    read_timeout: float | None = None
    max_header_bytes: str | None = None
    max_connections: int | None = None
    forward_to: list[str] = field(default_factory=list)
    ack: bool = False
    max_attempts: int = 10
    concurrency: int = 8
    ordered: bool = False
    timeout: float = 30.0
    insecure: bool = False
    secret: list[str] = field(default_factory=list)
    verify: bool | None = None
    quiet: bool = False
    as_json: bool = False
    events: str | None = None
    provider: str | None = None
    source: list[str] = field(default_factory=list)
    token: str | None = None
    token_file: Path | None = None
    claim: str | None = None
    claim_default: bool = False
    subscriber: str | None = None
    seal_key: Path | None = None
    ui: bool = False
    web: bool = False
    web_port: int = DEFAULT_WEB_PORT
    workers: int | None = None
    durability: str | None = None
    allowed_host: list[str] = field(default_factory=list)


@dataclass
class SessionPlan:
    """A checked session, ready to run."""

    options: ListenOptions
    path: Path
    host: str
    port: int
    workers: int
    durability: str
    receiver: ReceiverSettings
    secrets: Secrets
    shows: Callable[[Delivery], bool]  # which deliveries are printed and forwarded (all are stored)
    rules: list[ResponseRule]
    pending: int  # deliveries already waiting in the forward queue
    target: str | None  # where a UI's replay sends by default
    web_port: int  # the web inspector's, free when checked (0 given: one picked then)

    def notes(self) -> list[tuple[bool, str]]:
        """What a shell says before the session starts: (is a warning, line), warnings first."""
        forward = self.receiver.forward
        notes = [(True, "--respond has no effect while --forward-to proxies: the target answers (add --ack to answer here)")] \
            if self.rules and forward is not None and not forward.ack else []
        notes += [(False, f"answers {rule.describe()}") for rule in self.rules]
        if self.pending and forward is not None:  # without forwarding, `hookinspect queue` lists them when asked
            sends = "they go out now" if forward.ack else "--ack sends them"
            notes.append((False, f"{self.pending} deliver{'y waits' if self.pending == 1 else 'ies wait'} in the "
                                 f"forward queue; {sends} (`hookinspect queue` lists them)"))
        return notes


def plan_session(options: ListenOptions, settings: Settings | None = None) -> SessionPlan:
    """Check every option and build the session; a UsageError names the first mistake."""
    settings = settings or Settings()
    host = str(settings.get("host", options.host, DEFAULT_HOST))
    port = settings.checked("port", options.port, DEFAULT_PORT)
    workers = settings.checked("workers", options.workers, 1)
    most_workers = 4 * (os.cpu_count() or 1)  # beyond it processes only compete for the cores
    if workers > most_workers:
        raise UsageError(f"--workers {workers} is more than this machine can use: it has {os.cpu_count()} cores",
                         f"use at most {most_workers}; one per core is usually best")
    durability = settings.checked("durability", options.durability, "power")
    path = Path(options.store_path or default_store_path())
    rules = [parse_respond(spec) for spec in options.respond] + rules_from_config(settings.table("responses"))
    policy = QueuePolicy(max_attempts=options.max_attempts, concurrency=options.concurrency, ordered=options.ordered)
    receiver = ReceiverSettings(
        response=mock_response(options),
        path_responses=rules,
        max_body=settings.checked("max_body", options.max_body, DEFAULT_MAX_BODY),
        max_header_bytes=settings.checked("max_header_bytes", options.max_header_bytes, DEFAULT_MAX_HEADER_BYTES),
        read_timeout=settings.checked("read_timeout", options.read_timeout, DEFAULT_READ_TIMEOUT),
        max_bodies_in_flight=settings.checked("max_bodies_in_flight", None, DEFAULT_MAX_BODIES_IN_FLIGHT),
        max_connections=settings.checked("max_connections", options.max_connections),
        forward=forwarding(settings, options.forward_to, options.ack, policy, options.timeout,
                           verify_tls=not options.insecure),
        sources=checked_sources([validate_target(url) for url in options.source]) if options.source else (),
        source_token=read_secret_file(str(options.token_file)) if options.token_file is not None else options.token,
    )
    if options.source:
        receiver.source_seal_key, receiver.source_seal_key_path = channel_key(options.seal_key, path, options.source[0])
    if options.claim is not None or options.claim_default:
        receiver.source_claim = checked_claim(options.source, options.claim, options.claim_default, options.subscriber)
    shows = delivery_selector(options.events, options.provider)
    forward = receiver.forward
    if forward is not None and (options.events or options.provider):
        everything = forward.route
        forward.route = lambda delivery: everything(delivery) if shows(delivery) else []
    if options.source and forward is not None:
        forward.ack = True  # deliveries from a relay have no sender waiting: they go out from the queue
    if workers > 1:
        check_workers_fit(ui=options.ui, source=options.source or None)
    register_schemes(settings.table("providers"))  # a file's own providers, so their secrets are accepted
    secrets = Secrets.gather(options.secret, os.environ, settings.table("secrets"))
    is_verifying = bool(secrets) if options.verify is None else options.verify
    receiver.inspect = lambda delivery: annotate_delivery(delivery, secrets, is_verifying)
    if forward is not None and secrets:
        # Every try from the queue is signed anew: a delivery that waited out the target's
        # tolerance window (Stripe's 5 minutes) must not go out with its old timestamp.
        forward.queue.resigner_for = lambda delivery: resigner_for(delivery, secrets)
    settings.checked("port", options.web_port)
    # Taken: an error now, before a store is made.
    web_port = checked_web_port(host, options.web_port) if options.web else options.web_port
    # Last, once every option is checked: a store that cannot be opened, written or trusted
    # fails now, before binding or forking, and a mistyped command creates no store.
    pending = check_store(path, is_explicit=options.store_path is not None)
    target = (options.forward_to or settings.get_urls("forward_to") or [None])[0] if forward else None
    return SessionPlan(options, path, host, port, workers, durability, receiver, secrets, shows, rules, pending, target,
                       web_port)


UI = Callable[[Workspace, object, Secrets, str | None], None]  # (workspace, receiver process, secrets, target)


def run_session(plan: SessionPlan, report: ServeReport, ui: UI | None = None) -> None:
    """Run until SIGINT or SIGTERM: the receiver here (forking `--workers`), or, with a `ui`,
    in a process of its own beside the UI in this one; `--web` adds the web inspector's process."""
    with web_inspector(plan) if plan.options.web else contextlib.nullcontext():
        if ui is None:
            serve(plan.path, plan.receiver, plan.host, plan.port, report, workers=plan.workers,
                  durability=plan.durability)
            return
        from hookinspect.intake.background import ReceiverProcess
        from hookinspect.store.owner import owning

        with owning(plan.path):
            # Forked before the UI opens the store or starts a thread: its own process, so a
            # sender's wait never depends on what the UI renders or filters.
            receiver = ReceiverProcess(plan.path, plan.receiver, plan.host, plan.port, durability=plan.durability)
            receiver.start()
            try:
                with Workspace(plan.path, create=True, durability=plan.durability) as workspace:
                    ui(workspace, receiver, plan.secrets, plan.target)
            finally:
                receiver.stop()


@contextlib.contextmanager
def web_inspector(plan: SessionPlan) -> Iterator[None]:
    """`listen --web`: the web inspector in a process of its own over the same store, so what a
    browser asks for never slows capture; its banner goes to our stderr. Stopped with us.

    A part the user asked for: if its port is taken, or it does not come up, the session does
    not start (it ran on without it, and the hint named --port)."""
    options = plan.options
    port = plan.web_port
    args = [sys.executable, "-m", "hookinspect", "web", "--host", plan.host, "--port", str(port),
            "--store", str(plan.path)]
    for item in options.secret:
        args += ["--secret", item]
    for name in options.allowed_host:
        args += ["--allowed-host", name]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        wait_for_web(child, plan.host, port)
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# How long the web inspector's process may take to answer before the session gives up on it.
WEB_START_SECONDS = 20.0


def wait_for_web(child: subprocess.Popen[bytes], host: str, port: int) -> None:
    """Until the web inspector accepts connections; NetworkError if its process ends first or
    does not answer in time (what it said is on stderr already)."""
    deadline = time.monotonic() + WEB_START_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise NetworkError(f"the web inspector did not start (it exited with {child.returncode})",
                               "its error is above; --web-port chooses another port")
        with contextlib.suppress(OSError), socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise NetworkError(f"the web inspector did not answer on port {port} within {WEB_START_SECONDS:g} s")


def checked_web_port(host: str, port: int) -> int:
    """The web inspector's port, free now (0: any free one); the error names --web-port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is free
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise listen_error(host, port, exc, "--web-port") from None
        return sock.getsockname()[1]


def mock_response(options: ListenOptions) -> MockResponse:
    """The default answer (--status, --response-body, --response-header, --delay)."""
    if not 100 <= options.status <= 599:
        raise UsageError(f"--status {options.status} is not an HTTP status (100-599)")
    if options.delay < 0:
        raise UsageError("--delay cannot be negative")
    body = read_body(options.response_body, "--response-body") if options.response_body is not None else None
    return MockResponse(status=options.status, headers=[parse_header(h) for h in options.response_header], body=body,
                        delay=options.delay)


def forwarding(settings: Settings, forward_to: list[str], ack: bool, policy: QueuePolicy,
               timeout: float, verify_tls: bool = True) -> ForwardSettings | None:
    """Forwarding from flags and config (forward_to, [[route]]); None when nothing is forwarded."""
    defaults = [validate_target(url) for url in forward_to or settings.get_urls("forward_to")]
    routes = parse_routes(settings.table("route"))
    if not defaults and not routes:
        if ack:
            raise UsageError("--ack needs somewhere to forward to", "add --forward-to URL")
        return None
    return ForwardSettings(forwarder=Forwarder(timeout=timeout, verify_tls=verify_tls),
                           route=lambda delivery: targets_for(delivery, routes, defaults), ack=ack, queue=policy)


def checked_claim(sources: list[str], claim: str | None, is_default: bool, subscriber: str | None) -> Claim:
    """This laptop's claim on the channel, checked here so a mistake is one line before anything starts."""
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
    path = given or key_path(store, channel_url(source).rsplit("/", 1)[-1])
    if given is None and not path.exists():
        return None, f"no key at {path}; pass --seal-key FILE"
    return load_private_key(path), f"key {path}"


def delivery_selector(events: str | None, provider: str | None) -> Callable[[Delivery], bool]:
    """Which deliveries `listen --events/--provider` prints and forwards (all are stored)."""
    globs = [g.strip() for g in (events or "").split(",") if g.strip()]
    wanted = checked_provider(provider) if provider else None

    def shows(delivery: Delivery) -> bool:
        if wanted is not None and delivery.provider != wanted:
            return False
        return not globs or (delivery.event_type is not None
                             and any(fnmatch.fnmatchcase(delivery.event_type, g) for g in globs))

    return shows

