"""`hookinspect listen`: run the capture receiver and print one line per delivery."""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
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
)
from hookinspect.cli.output import Output, rich_line, safe_text
from hookinspect.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_WEB_PORT,
)
from hookinspect.model import Delivery
from hookinspect.views.delivery import attempt_line, delivery_line
from hookinspect.workspace import ChangeKind, StoreChange

if TYPE_CHECKING:
    from hookinspect.intake.receiver import ReceiverEvent
    from hookinspect.intake.serve import ServeReport
    from hookinspect.session import SessionPlan

app = typer.Typer()  # this module's commands; cli/app.py gathers them

# The receiver, forwarding and signing modules are imported inside the functions that use them:
# they pull in aiohttp and friends, which `ls`, `show` and the other commands do not need at start-up.

# The live lines are printed a frame at a time: the printer thread wakes every FRAME_SECONDS,
# prints what came meanwhile, and under a burst says "… and 4,213 more" after LINES_PER_FRAME
# lines instead of falling behind (nobody reads 2,000 lines a second; the store has them all).
# 100 lines a second at most: rendering them costs capture a few percent under any burst
# (measured with bench/capture.py's live-lines row; 20 per 50 ms cost 17 %).
# Capture never waits for it and never wakes it: an arrival is one append to a deque.
FRAME_SECONDS = 0.1
LINES_PER_FRAME = 10
# Events waiting for the next frame; past this they are counted, not kept (a stalled terminal).
PENDING_LIMIT = 10_000


class LivePrinter:
    """Prints receiver events from its own thread, a frame at a time (see FRAME_SECONDS), so
    neither a slow terminal nor a burst costs capture more than an append: a line each for
    people, or (`as_json`) one JSON object per line for scripts, every one of them, written a
    frame at a time. `shows` decides which deliveries are printed (listen --events, --provider)."""

    def __init__(self, console: Console, *, as_json: bool = False,
                 shows: Callable[[Delivery], bool] = lambda delivery: True) -> None:
        self.console = console
        self.as_json = as_json
        self.shows = shows
        self._pending: deque[ReceiverEvent | StoreChange] = deque()
        self._dropped = 0  # past PENDING_LIMIT
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hookinspect-printer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def __call__(self, event: ReceiverEvent | StoreChange) -> None:
        if len(self._pending) >= PENDING_LIMIT:
            self._dropped += 1
        else:
            self._pending.append(event)  # atomic: no lock, no wake-up

    def on_change(self, change: StoreChange) -> None:
        """A delivery this process stored gets its line; so does storing failing or working again."""
        if change.kind == ChangeKind.DELIVERIES and change.delivery is not None:
            if self.shows(change.delivery):
                self(change)
        elif change.kind in (ChangeKind.FAILING, ChangeKind.RECOVERED):
            self(change)

    def _run(self) -> None:
        while not self._stopping.wait(FRAME_SECONDS):
            self._frame()
        self._frame()  # what came before the stop

    def _frame(self) -> None:
        events = []
        while self._pending:
            events.append(self._pending.popleft())
        dropped, self._dropped = self._dropped, 0
        if self.as_json:
            lines = [json_text(event_dict(event), indent=None) for event in events]
            if dropped:
                lines.append(json_text({"type": "dropped", "count": dropped}, indent=None))
            if lines:
                self._write("\n".join(lines) + "\n")
            return
        shown, more = 0, dropped
        for event in events:
            # Lines past the frame's budget are counted; what went wrong is always shown.
            if shown >= LINES_PER_FRAME and not _must_show(event):
                more += 1
                continue
            shown += 1
            self.console.print(render_event(event), soft_wrap=True)
        if more:
            self.console.print(Text(f"… and {more:,} more; `hookinspect ls` has them", style="dim"))

    def _write(self, text: str) -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # `listen --json | head`: the reader left; capture goes on
            pass


def _must_show(event: ReceiverEvent | StoreChange) -> bool:
    """Events a burst never hides in "… and N more": a refusal, the store failing or recovering."""
    if isinstance(event, StoreChange):
        return event.kind != ChangeKind.DELIVERIES
    return event.kind != "forwarded"


def event_dict(event: ReceiverEvent | StoreChange) -> dict:
    """The `listen --json` line of an event: a delivery as `show --json` gives it, an attempt,
    a refusal, a relay state or the store failing and recovering, each with a "type"."""
    if isinstance(event, StoreChange):
        if event.kind in (ChangeKind.FAILING, ChangeKind.RECOVERED):
            return {"type": "store", "state": event.kind, "message": event.message}
        assert event.delivery is not None
        return {"type": "delivery", **event.delivery.to_dict()}
    if event.kind == "forwarded" and event.attempt is not None:
        return {"type": "attempt", **event.attempt.to_dict(), "message": event.message or None}
    return {"type": "rejected" if event.kind == "rejected" else event.kind, "message": event.message}


def render_event(event: ReceiverEvent | StoreChange) -> Text:
    if isinstance(event, StoreChange):
        if event.kind == ChangeKind.FAILING:
            return Text("NOT STORING ", style="bold red") + safe_text(event.message) + Text(
                " (senders get 507/503 with Retry-After; capture resumes by itself)", style="dim")
        if event.kind == ChangeKind.RECOVERED:
            return Text("STORING ", style="bold green") + safe_text(event.message)
        assert event.delivery is not None
        return rich_line(delivery_line(event.delivery))
    if event.kind == "rejected":
        return Text("rejected ", style="bold red") + safe_text(event.message)
    if event.kind == "relay":
        return Text("relay ", style="bold blue") + safe_text(event.message)
    assert event.kind == "forwarded" and event.attempt is not None
    return rich_line(attempt_line(event.attempt, event.message))


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
    flags = dict(locals())  # by name, before anything else is named here: ListenOptions says what they mean
    # Imported here: the session pulls in aiohttp and the signing schemes, which `ls` and the
    # other commands need not load at start-up.
    from hookinspect.session import ListenOptions, plan_session, run_session

    out = Output()
    plan = plan_session(ListenOptions(**flags))
    for is_warning, line in plan.notes():
        (out.warn if is_warning else out.info)(line)
    run_session(plan, live_report(out, plan, show_lines=(not quiet or as_json) and not ui, as_json=as_json),
                ui=run_ui_shell if ui else None)
    if not ui:
        out.info("stopped; every acknowledged delivery is in the store")


def live_report(out: Output, plan: SessionPlan, *, show_lines: bool, as_json: bool) -> ServeReport:
    """What the session tells this shell: when it started, what went wrong, and (unless
    --quiet) a line per delivery, printed from its own thread by a LivePrinter."""
    from hookinspect.intake.serve import ServeReport

    printer = LivePrinter(out.stdout, as_json=as_json, shows=plan.shows) if show_lines else None
    if printer is not None:
        plan.receiver.on_event = printer
    return ServeReport(started=lambda urls, count: out.stderr.print(started_line(urls, plan.path, count)),
                       warn=out.warn, error=out.error, on_change=printer.on_change if printer else None,
                       begin=printer.start if printer else (lambda: None), end=printer.stop if printer else (lambda: None))


def run_ui_shell(workspace, receiver, secrets, target) -> None:  # noqa: ANN001 (session.UI)
    """`listen --ui`: the terminal UI, beside the receiver's own process."""
    from hookinspect.tui.app import run_ui

    run_ui(workspace, receiver=receiver, secrets=secrets, target=target)


def started_line(urls: list[str], path: Path, workers: int) -> Text:
    shown_workers = f"  {workers} workers" if workers > 1 else ""
    return Text.assemble(("hookinspect ", "bold"), "listening on ", (", ".join(urls), "bold cyan"),
                         "  store ", (str(path), "cyan"), shown_workers, ("  (Ctrl+C to stop)", "dim"))
