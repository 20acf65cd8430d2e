"""The hookinspect TUI: a live list of deliveries over the store, detail tabs, and keys that
call the same core functions as the CLI."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Input, Sparkline, Static, TabbedContent, TabPane

from hookinspect.body import escape_controls
from hookinspect.cli.output import safe_text
from hookinspect.cli.render import (
    VERDICT_STYLES,
    attempt_summary,
    attempts_table,
    delivery_detail,
    render_changes,
)
from hookinspect.diff import DiffOptions, compare_messages
from hookinspect.errors import HookinspectError
from hookinspect.export import ExportItem, export, render_curl
from hookinspect.filters import DeliveryFilter, parse_filter
from hookinspect.forward import RequestEdits, validate_target
from hookinspect.model import Delivery
from hookinspect.receiver import ReceiverEvent, ReceiverSettings, create_app, start_server
from hookinspect.replay import replay_deliveries
from hookinspect.signing.registry import Secrets, check_delivery, resigner_for
from hookinspect.store.sqlite import Store
from hookinspect.tui.screens.prompt import EditRequest, HelpScreen, UrlPrompt
from hookinspect.tui.widgets.delivery_list import PAGE_SIZE, DeliveryList

# How often the list looks for deliveries stored by another process (the issue asks <= 0.5 s).
POLL_SECONDS = 0.25
# Deliveries-per-second history shown in the header sparkline.
RATE_WINDOW = 60


class HookinspectApp(App[None]):
    CSS_PATH = "hookinspect.tcss"
    TITLE = "hookinspect"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("enter", "focus_detail", "Detail", show=False),
        Binding("escape", "focus_list", "List", show=False),
        Binding("r", "replay", "Replay"),
        Binding("R", "replay_to", "Replay to…"),
        Binding("e", "edit_replay", "Edit+replay"),
        Binding("d", "diff", "Diff"),
        Binding("space", "mark", "Mark"),
        Binding("slash", "filter", "Filter"),
        Binding("c", "copy_curl", "Copy curl"),
        Binding("x", "export_marked", "Export"),
        Binding("delete", "delete", "Delete"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("A", "show_all", "Whole body", show=False),  # unfolds long arrays and lifts the 256 KiB cut
    ]

    def __init__(self, store_path: Path, *, target: str | None = None, secrets: Secrets | None = None,
                 listen: tuple[str, int, ReceiverSettings] | None = None) -> None:
        super().__init__()
        self.store_path = Path(store_path)
        self.target = target
        self.secrets = secrets or Secrets()
        self.listen = listen
        self.listening_on: str | None = None
        self.relay_state: str | None = None
        self.store: Store | None = None
        self.filter = DeliveryFilter()
        self.following = True
        self.max_seen = 0
        self.total = 0
        self.rates: list[float] = [0.0] * RATE_WINDOW
        self._tick_count = 0
        self._arrivals = 0
        self.show_all_body = False
        self.diff_base: int | None = None
        self._runner = None

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Sparkline(self.rates, id="rate")
        yield DeliveryList(id="list")
        with TabbedContent(id="detail"):
            with TabPane("Request", id="tab-request"), VerticalScroll():
                yield Static(id="request")
            with TabPane("Attempts", id="tab-attempts"), VerticalScroll():
                yield Static(id="attempts")
            with TabPane("Signature", id="tab-signature"), VerticalScroll():
                yield Static(id="signature")
            with TabPane("Diff", id="tab-diff"), VerticalScroll():
                yield Static(Text("d: compare with the marked delivery, or the previous one of the same event", style="dim"),
                             id="diff")
        yield Input(placeholder="filter: method:POST provider:stripe event:invoice.* status:5xx $.amount>1000 text",
                    id="filter")
        yield Footer()

    async def on_mount(self) -> None:
        if self.listen is not None:
            host, port, settings = self.listen
            settings.on_event = self.on_receiver_event
            self._runner, urls = await start_server(create_app(self.store_path, settings), host, port)
            self.listening_on = urls[0]
        self.store = Store(self.store_path, create=self.listen is not None)
        self.load_first_page()
        self.set_interval(POLL_SECONDS, self.poll)
        self.query_one(DeliveryList).focus()

    def on_receiver_event(self, event: ReceiverEvent) -> None:
        """Events of the receiver running in this app (listen --ui): relay state and refusals."""
        if event.kind == "relay":
            self.relay_state = event.message
            self.update_status()
        elif event.kind in ("rejected", "store_error"):
            self.notify(escape_controls(event.message), severity="error", title=event.kind.replace("_", " "))

    async def on_unmount(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self.store is not None:
            self.store.close()

    # -- data ----------------------------------------------------------------------------

    def load_first_page(self) -> None:
        assert self.store is not None
        table = self.query_one(DeliveryList)
        table.reset_rows()
        rows = self.store.list(self.filter, limit=PAGE_SIZE)
        table.append_page(rows)
        self.max_seen = self.store.max_seq()
        self.total = self.store.count()
        self.update_status()
        if rows:
            table.move_cursor(row=0)
            self.show_delivery(rows[0].seq)
        else:
            self.query_one("#request", Static).update(Text("no deliveries yet: send one to `hookinspect listen`", style="dim"))

    @on(DeliveryList.NeedsMore)
    def load_older(self, event: DeliveryList.NeedsMore) -> None:
        assert self.store is not None
        self.query_one(DeliveryList).append_page(self.store.list(self.filter, limit=PAGE_SIZE, before_seq=event.before_seq))

    def poll(self) -> None:
        """New deliveries from any writer (this process or another) appear within POLL_SECONDS."""
        if self.store is None:
            return
        newest = self.store.max_seq()
        self._tick_count += 1
        if newest > self.max_seen:
            self._arrivals += newest - self.max_seen
            if self.following:
                rows = self.store.list(self.filter, limit=1000, before_seq=self.max_seen, oldest_first=True)
                table = self.query_one(DeliveryList)
                at_top = table.cursor_row <= 0
                table.prepend(rows)
                if at_top and table.seqs:  # following the newest: show it
                    table.move_cursor(row=0)
                    self.show_delivery(table.seqs[0])
                self.total = self.store.count()
            self.max_seen = newest
            self.update_status()
        if self._tick_count % int(1 / POLL_SECONDS) == 0:
            self.rates = [*self.rates[1:], float(self._arrivals)]
            self._arrivals = 0
            self.query_one("#rate", Sparkline).data = self.rates

    def update_status(self) -> None:
        parts = [Text("hookinspect", style="bold")]
        if self.listening_on:
            parts.append(Text(f"listening on {self.listening_on}", style="green"))
        if self.relay_state:
            parts.append(safe_text(f"relay {self.relay_state}", "blue"))
        parts.append(Text(f"store {self.store_path}", style="dim"))
        parts.append(Text(f"→ {self.target}" if self.target else "no target (R asks)", style="cyan" if self.target else "dim"))
        shown = len(self.query_one(DeliveryList).seqs)
        parts.append(Text(f"{self.total} deliveries" + ("" if self.filter.is_empty else f", filter on ({shown} loaded)")))
        parts.append(Text("following" if self.following else "paused (f)", style="green" if self.following else "yellow"))
        self.query_one("#status", Static).update(Text("  ·  ").join(parts))

    # -- detail --------------------------------------------------------------------------

    @on(DeliveryList.RowHighlighted)
    def on_row(self, event: DeliveryList.RowHighlighted) -> None:
        seq = self.query_one(DeliveryList).current_seq
        if seq is not None:
            self.show_delivery(seq)

    def current(self) -> Delivery | None:
        seq = self.query_one(DeliveryList).current_seq
        if seq is None or self.store is None:
            return None
        try:
            return self.store.get(seq)
        except HookinspectError:
            return None

    def show_delivery(self, seq: int) -> None:
        assert self.store is not None
        try:
            delivery = self.store.get(seq)
        except HookinspectError as exc:
            self.notify(exc.message, severity="error")
            return
        limit = max(len(delivery.body), 1) if self.show_all_body else 256 * 1024
        self.query_one("#request", Static).update(delivery_detail(delivery, body_limit=limit, fold_arrays=not self.show_all_body))
        attempts = self.store.attempts(seq)
        if attempts:
            self.query_one("#attempts", Static).update(Group(attempts_table(attempts), Text(""),
                                                             *(attempt_summary(a) for a in reversed(attempts))))
        else:
            self.query_one("#attempts", Static).update(Text("not sent anywhere yet: r replays, R asks for a URL", style="dim"))
        self.query_one("#signature", Static).update(self.signature_view(delivery))

    def signature_view(self, delivery: Delivery) -> Text:
        result = check_delivery(delivery, self.secrets) if self.secrets else None
        provider = (result.provider if result else None) or delivery.provider
        event_type = (result.event_type if result else None) or delivery.event_type
        verdict = result.verdict if result and result.verdict else None
        status = verdict.status if verdict else delivery.verdict
        reason = verdict.reason if verdict else delivery.verdict_reason
        if provider is None:
            return Text("no known provider signed this delivery", style="dim")
        text = Text("provider ", style="dim") + safe_text(provider) + Text("   event ", style="dim") + safe_text(event_type or "?")
        if status:
            text += Text("\nsignature ", style="dim") + Text(status, style=VERDICT_STYLES.get(status, "")) + Text(": ") + safe_text(reason or "")
        else:
            text += Text("\nsignature not checked: start with --secret PROVIDER=… (or HOOKINSPECT_SECRET_…)", style="dim")
        return text

    # -- actions -------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.query_one(DeliveryList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.query_one(DeliveryList).action_cursor_up()

    def action_focus_detail(self) -> None:
        self.query_one("#detail", TabbedContent).focus()

    def action_focus_list(self) -> None:
        filter_input = self.query_one("#filter", Input)
        if filter_input.has_class("visible"):
            filter_input.remove_class("visible")
        self.query_one(DeliveryList).focus()

    def action_help(self) -> None:
        keys = [(b.key.replace("question_mark", "?").replace("slash", "/"), b.description) for b in self.BINDINGS]
        self.push_screen(HelpScreen(keys))

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self.max_seen = min(self.max_seen, max(self.query_one(DeliveryList).seqs or [0]))
            self.poll()
        self.update_status()

    def action_mark(self) -> None:
        table = self.query_one(DeliveryList)
        if table.current_seq is not None:
            table.toggle_mark(table.current_seq)

    def action_show_all(self) -> None:
        self.show_all_body = not self.show_all_body
        seq = self.query_one(DeliveryList).current_seq
        if seq is not None:
            self.show_delivery(seq)

    def action_filter(self) -> None:
        filter_input = self.query_one("#filter", Input)
        filter_input.add_class("visible")
        filter_input.focus()

    @on(Input.Submitted, "#filter")
    def apply_filter(self, event: Input.Submitted) -> None:
        try:
            self.filter = parse_filter(event.value)
        except HookinspectError as exc:
            self.notify(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else ""), severity="error", title="bad filter")
            return
        self.load_first_page()
        self.query_one(DeliveryList).focus()

    def action_delete(self) -> None:
        table = self.query_one(DeliveryList)
        seq = table.current_seq
        if seq is None or self.store is None:
            return
        self.store.delete([seq])
        table.drop(seq)
        self.total = self.store.count()
        self.update_status()
        self.notify(f"deleted #{seq}")

    def action_copy_curl(self) -> None:
        delivery = self.current()
        if delivery is None:
            return
        command = render_curl([ExportItem(delivery, [])], to=self.target)
        self.copy_to_clipboard(command)
        self.notify(f"curl command for #{delivery.seq} copied to the clipboard ({len(command)} characters)")

    def action_export_marked(self) -> None:
        table = self.query_one(DeliveryList)
        seqs = sorted(table.marked) or ([table.current_seq] if table.current_seq is not None else [])
        if not seqs or self.store is None:
            return
        items = [ExportItem(self.store.get(seq), self.store.attempts(seq)) for seq in seqs]
        text, masked = export(items, "har")
        path = Path.cwd() / f"hookinspect-{datetime.now():%Y%m%d-%H%M%S}.har"
        path.write_text(text if isinstance(text, str) else text.decode())
        self.notify(f"exported {len(items)} deliveries to {path.name}" + (f"; masked {len(masked)} secrets" if masked else ""))

    def action_replay(self) -> None:
        delivery = self.current()
        if delivery is None:
            return
        target = self.target or self._last_target(delivery)
        if target is None:
            self.action_replay_to()
            return
        self.send(delivery.seq, target)  # type: ignore[arg-type]

    def _last_target(self, delivery: Delivery) -> str | None:
        assert self.store is not None
        last = self.store.last_attempt(delivery.seq)  # type: ignore[arg-type]
        return last.target_url if last else None

    def action_replay_to(self) -> None:
        delivery = self.current()
        if delivery is None:
            return

        def chosen(url: str | None) -> None:
            if url:
                self.target = url
                self.update_status()
                self.send(delivery.seq, url)  # type: ignore[arg-type]

        self.push_screen(UrlPrompt(f"Replay #{delivery.seq} to:", self.target or self._last_target(delivery) or ""), chosen)

    def action_edit_replay(self) -> None:
        delivery = self.current()
        if delivery is None:
            return
        target = self.target or self._last_target(delivery)

        def edited(result: tuple[list[tuple[str, str]], bytes] | None) -> None:
            if result is None:
                return
            headers, body = result
            kept = {name.lower() for name, _ in headers}
            edits = RequestEdits(set_headers=headers, body=body,
                                 drop_headers=[k for k, _ in delivery.headers if k.lower() not in kept])
            if target is None:
                self.push_screen(UrlPrompt(f"Send the edited #{delivery.seq} to:"),
                                 lambda url: url and self.send(delivery.seq, url, edits))  # type: ignore[arg-type]
            else:
                self.send(delivery.seq, target, edits)  # type: ignore[arg-type]

        self.push_screen(EditRequest(delivery.headers.pairs(), delivery.text()), edited)

    @work(group="send")
    async def send(self, seq: int, target: str, edits: RequestEdits | None = None) -> None:
        """Replay through the core (re-signed when a secret is known); the attempt lands in the store."""
        try:
            validate_target(target)
            secrets = self.secrets
            [attempt] = await replay_deliveries(
                self.store_path, {seq: target}, edits=edits,
                resigner_for=(lambda d: resigner_for(d, secrets)) if secrets else None)
        except HookinspectError as exc:
            self.notify(exc.message, severity="error", title="replay")
            return
        if attempt.is_success:
            self.notify(f"#{seq} → {attempt.outcome} in {attempt.latency_ms:.0f} ms", title="replayed")
        else:
            detail = attempt.error_message or (attempt.response.text()[:200] if attempt.response else "")
            self.notify(f"#{seq} → {attempt.outcome}: {detail}", severity="error", title="replay failed")
        assert self.store is not None
        self.query_one(DeliveryList).update_delivery_row(self.store.row(seq))
        if self.query_one(DeliveryList).current_seq == seq:
            self.show_delivery(seq)

    def action_diff(self) -> None:
        assert self.store is not None
        table = self.query_one(DeliveryList)
        delivery = self.current()
        if delivery is None:
            return
        other_seq = next((s for s in sorted(table.marked) if s != delivery.seq), None)
        if other_seq is None:
            same_event = DeliveryFilter(event_globs=[delivery.event_type]) if delivery.event_type else DeliveryFilter()
            earlier = self.store.list(same_event, limit=1, before_seq=delivery.seq)
            other_seq = earlier[0].seq if earlier else None
        if other_seq is None:
            self.notify("nothing to compare with: mark a delivery (space) first", severity="warning")
            return
        other = self.store.get(other_seq)
        changes = compare_messages(other, delivery, DiffOptions(),
                                   request_line=((other.method, other.target), (delivery.method, delivery.target)))
        header = Text(f"#{other.seq} → #{delivery.seq}   ({len(changes)} changes)\n", style="bold")
        self.query_one("#diff", Static).update(Group(header, render_changes(changes, False, (f"#{other.seq}", f"#{delivery.seq}"))))
        self.query_one("#detail", TabbedContent).active = "tab-diff"


def run_ui(store_path: Path, **kwargs) -> None:  # noqa: ANN003
    """Start the UI in the terminal (blocking)."""
    HookinspectApp(store_path, **kwargs).run()
