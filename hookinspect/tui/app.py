"""The hookinspect TUI: a live list of deliveries over the store, detail tabs, and keys that
call the same core functions as the CLI."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Footer, Input, Sparkline, Static

from hookinspect.background import ReceiverProcess, receiver_event
from hookinspect.body import escape_controls
from hookinspect.diff import diff_deliveries
from hookinspect.errors import HookinspectError
from hookinspect.export import ExportItem, render_curl, write_export
from hookinspect.filters import DeliveryFilter, parse_filter
from hookinspect.forward import RequestEdits, validate_target
from hookinspect.model import Delivery
from hookinspect.receiver import ReceiverEvent
from hookinspect.replay import replay_deliveries
from hookinspect.signing.registry import Secrets, resigner_for, signature_report
from hookinspect.store.sqlite import Store
from hookinspect.tui.screens.prompt import EditRequest, HelpScreen, UrlPrompt
from hookinspect.tui.widgets.delivery_list import PAGE_SIZE, DeliveryList
from hookinspect.tui.widgets.detail import DeliveryDetail
from hookinspect.views.text import safe
from hookinspect.workspace import StoreChange, Workspace

# How often the workspace looks for deliveries stored by another process; this process's own
# captures (listen --ui) and replays are announced at once.
POLL_SECONDS = 0.25
# Captures announced within this many seconds are shown together.
REFRESH_SECONDS = 0.05
# Deliveries-per-second history shown in the header sparkline.
RATE_WINDOW = 60


class StoreChanged(Message):
    """The workspace announced a change (posted from whichever thread announced it)."""

    def __init__(self, change: StoreChange) -> None:
        super().__init__()
        self.change = change


class ReceiverEventPosted(Message):
    """A refusal or relay state from the receiver's thread."""

    def __init__(self, event: ReceiverEvent) -> None:
        super().__init__()
        self.event = event


class HookinspectApp(App[None]):
    CSS_PATH = "hookinspect.tcss"
    TITLE = "hookinspect"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "newest", "Newest", show=False),
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

    def __init__(self, workspace: Workspace, *, target: str | None = None, secrets: Secrets | None = None,
                 receiver: ReceiverProcess | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.store = workspace.store
        self.target = target
        self.secrets = secrets or Secrets()
        self.receiver = receiver  # listen --ui: the receiver's own process, started by the caller
        self.listening_on: str | None = receiver.urls[0] if receiver is not None else None
        self.relay_state: str | None = None
        self.filter = DeliveryFilter()
        self.filter_text = ""
        self.filter_matches: int | None = None  # None while counting
        self.new_while_paused = 0
        self.following = True
        self.max_seen = 0
        self.total = 0
        self.rates: list[float] = [0.0] * RATE_WINDOW
        self._tick_count = 0
        self._arrivals = 0
        self.show_all_body = False
        self.diff_base: int | None = None
        self._refresh_pending = False
        self._unsubscribe = workspace.changes.subscribe(lambda change: self.post_message(StoreChanged(change)))

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Sparkline(self.rates, id="rate")
        yield DeliveryList(id="list")
        yield DeliveryDetail(id="detail")
        yield Input(placeholder="filter: method:POST provider:stripe event:invoice.* status:5xx $.amount>1000 text",
                    id="filter")
        yield Footer()

    async def on_mount(self) -> None:
        if self.receiver is not None:
            self.receiver.attach(self.on_receiver_message)
        self.load_first_page()
        self.set_interval(POLL_SECONDS, self.tick)
        self.main_query(DeliveryList).focus()

    def on_receiver_message(self, message: dict) -> None:
        """A line from the receiver's process (listen --ui): a change to show, a refusal, a relay state."""
        if message["t"] == "changed":
            self.post_message(StoreChanged(StoreChange(message["kind"], message.get("seq"),
                                                       message=message.get("message") or "")))
        elif message["t"] == "event":
            self.post_message(ReceiverEventPosted(receiver_event(message)))
        elif message["t"] in ("error", "ended"):
            said = message.get("message") or "the receiver stopped: nothing new is captured (restart listen --ui)"
            self.say(said, severity="error", title="receiver")

    @on(ReceiverEventPosted)
    def on_receiver_event(self, message: ReceiverEventPosted) -> None:
        """Events of the receiver (listen --ui): relay state, refusals, warnings."""
        event = message.event
        if event.kind == "relay":
            self.relay_state = event.message
            self.update_status()
        elif event.kind in ("rejected", "warning"):
            self.say(event.message, severity="error" if event.kind == "rejected" else "warning", title=event.kind)

    async def on_unmount(self) -> None:
        self._unsubscribe()
        if self.receiver is not None:
            self.receiver.detach()

    def main_query(self, selector, expect_type=None):  # noqa: ANN001, ANN201 - as DOMNode.query_one
        """A widget of the main screen, also while a dialog (help, a URL prompt) is on top of it."""
        if not self.screen_stack:
            raise NoMatches("the app has no screen (it is closing)")
        main = self.screen_stack[0]
        return main.query_one(selector, expect_type) if expect_type is not None else main.query_one(selector)

    # -- data ----------------------------------------------------------------------------

    def load_first_page(self) -> None:
        table = self.main_query(DeliveryList)
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
            self.main_query(DeliveryDetail).show_nothing("no deliveries yet: send one to `hookinspect listen`")

    @on(DeliveryList.NeedsMore)
    def load_older(self, event: DeliveryList.NeedsMore) -> None:
        self.main_query(DeliveryList).append_page(self.store.list(self.filter, limit=PAGE_SIZE, before_seq=event.before_seq))

    def _has_main_screen(self) -> bool:
        try:
            self.main_query(DeliveryList)
        except NoMatches:
            return False
        return True

    def tick(self) -> None:
        """Changes made by another process, and the arrivals sparkline."""
        if not self._has_main_screen():
            return
        self.workspace.poll()
        self._tick_count += 1
        if self._tick_count % int(1 / POLL_SECONDS) == 0:
            self.rates = [*self.rates[1:], float(self._arrivals)]
            self._arrivals = 0
            self.main_query("#rate", Sparkline).data = self.rates
            self.update_status()  # the rate beside the count

    @on(StoreChanged)
    def on_store_changed(self, message: StoreChanged) -> None:
        if not self._has_main_screen():
            return  # the app is closing: nothing left to show it on
        change = message.change
        if change.kind == "deliveries":
            if not self._refresh_pending:  # a burst of captures costs one look at the store, not one each
                self._refresh_pending = True
                self.set_timer(REFRESH_SECONDS, self._refresh_new)
        elif change.kind == "attempt" and change.seq is not None:
            self.refresh_delivery(change.seq)
        elif change.kind == "failing":
            self.say(change.message, severity="error", title="not storing")
        elif change.kind == "recovered":
            self.say(change.message, title="storing")
        elif change.kind in ("removed", "store"):
            self.total = self.store.count()
            self.update_status()

    def _refresh_new(self) -> None:
        self._refresh_pending = False
        if self._has_main_screen():
            self.show_new_deliveries()

    def show_new_deliveries(self) -> None:
        """Every delivery stored since the newest one shown; followed to the top unless paused."""
        newest = self.store.max_seq()
        if newest <= self.max_seen:
            return
        self._arrivals += newest - self.max_seen
        if not self.following:
            self.new_while_paused += newest - self.max_seen
        if self.following:
            table = self.main_query(DeliveryList)
            at_top = table.cursor_row <= 0
            after = self.max_seen
            while True:  # in pages, so a burst of any size is shown whole
                rows = self.store.list(self.filter, limit=PAGE_SIZE, before_seq=after, oldest_first=True)
                table.prepend(rows)
                if len(rows) < PAGE_SIZE:
                    break
                after = rows[-1].seq
            if at_top and table.seqs:  # following the newest: show it
                table.move_cursor(row=0)
                self.show_delivery(table.seqs[0])
            self.total = self.store.count()
        self.max_seen = newest
        self.update_status()

    def refresh_delivery(self, seq: int) -> None:
        """An attempt was added to #seq: its row's last outcome, and its detail if shown."""
        table = self.main_query(DeliveryList)
        try:
            table.update_delivery_row(self.store.row(seq))
        except HookinspectError:
            return  # deleted meanwhile
        if table.current_seq == seq:
            self.show_delivery(seq)

    def update_status(self) -> None:
        parts = [Text("hookinspect", style="bold")]
        if self.listening_on:
            parts.append(Text(f"listening on {self.listening_on}", style="green"))
        if self.relay_state:
            parts.append(Text(*safe(f"relay {self.relay_state}", "blue")))
        parts.append(Text(*safe(f"store {self.workspace.path}", "dim")))
        parts.append(Text(*safe(f"→ {self.target}", "cyan")) if self.target else Text("no target (R asks)", style="dim"))
        per_minute = sum(self.rates)
        parts.append(Text(f"{self.total} deliveries") + Text(f"  {self.rates[-1]:.0f}/s, {per_minute:.0f} in the last minute",
                                                              style="dim"))
        if not self.filter.is_empty:
            matches = "counting…" if self.filter_matches is None else f"{self.filter_matches} match"
            parts.append(Text.assemble(("filter ", "dim"), safe(self.filter_text, "bold", keep_newlines=False),
                                       (f" {matches}", "")))
        paused = "paused (f)" + (f" · {self.new_while_paused} new" if self.new_while_paused else "")
        parts.append(Text("following" if self.following else paused, style="green" if self.following else "yellow"))
        self.main_query("#status", Static).update(Text("  ·  ").join(parts))

    # -- detail --------------------------------------------------------------------------

    @on(DeliveryList.RowHighlighted)
    def on_row(self, event: DeliveryList.RowHighlighted) -> None:
        seq = self.main_query(DeliveryList).current_seq
        if seq is not None:
            self.show_delivery(seq)

    def current(self) -> Delivery | None:
        seq = self.main_query(DeliveryList).current_seq
        if seq is None:
            return None
        try:
            return self.store.get(seq)
        except HookinspectError:
            return None

    def show_delivery(self, seq: int) -> None:
        try:
            delivery = self.store.get(seq)
        except HookinspectError as exc:
            self.say(exc.message, severity="error")
            return
        self.main_query(DeliveryDetail).show(delivery, self.store.attempts(seq), signature_report(delivery, self.secrets),
                                            queued=self.store.queue_items(("pending", "dead"), seqs=[seq]),
                                            show_all_body=self.show_all_body)

    # -- actions -------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.main_query(DeliveryList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.main_query(DeliveryList).action_cursor_up()

    def action_newest(self) -> None:
        table = self.main_query(DeliveryList)
        if table.seqs:
            table.move_cursor(row=0)

    def action_focus_detail(self) -> None:
        self.main_query(DeliveryDetail).focus_tabs()

    def action_focus_list(self) -> None:
        filter_input = self.main_query("#filter", Input)
        if filter_input.has_class("visible"):
            filter_input.remove_class("visible")
        self.main_query(DeliveryList).focus()

    def action_help(self) -> None:
        keys = [(b.key.replace("question_mark", "?").replace("slash", "/"), b.description) for b in self.BINDINGS]
        self.push_screen(HelpScreen(keys))

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self.new_while_paused = 0
            self.max_seen = min(self.max_seen, max(self.main_query(DeliveryList).seqs or [0]))
            self.show_new_deliveries()
        self.update_status()

    def action_mark(self) -> None:
        table = self.main_query(DeliveryList)
        if table.current_seq is not None:
            table.toggle_mark(table.current_seq)

    def action_show_all(self) -> None:
        self.show_all_body = not self.show_all_body
        seq = self.main_query(DeliveryList).current_seq
        if seq is not None:
            self.show_delivery(seq)

    def action_filter(self) -> None:
        filter_input = self.main_query("#filter", Input)
        filter_input.add_class("visible")
        filter_input.focus()

    @on(Input.Submitted, "#filter")
    def apply_filter(self, event: Input.Submitted) -> None:
        try:
            self.filter = parse_filter(event.value)
        except HookinspectError as exc:
            self.say(exc.message + (f" ({exc.hint})" if exc.hint else ""), severity="error", title="bad filter")
            return
        self.filter_text, self.filter_matches = event.value.strip(), None
        self.main_query("#filter", Input).remove_class("visible")
        self.load_first_page()
        self.main_query(DeliveryList).focus()
        if not self.filter.is_empty:
            self.count_matches(self.filter)

    @work(thread=True, exclusive=True, group="count")
    def count_matches(self, flt: DeliveryFilter) -> None:
        """The match count, on its own connection and thread: a JSON-path filter over a big store
        takes seconds, and the list stays usable meanwhile."""
        with Store(self.workspace.path, create=False) as store:
            matches = store.count(flt)
        self.call_from_thread(self._show_matches, flt, matches)

    def _show_matches(self, flt: DeliveryFilter, matches: int) -> None:
        if flt is self.filter and self._has_main_screen():  # not a filter replaced meanwhile
            self.filter_matches = matches
            self.update_status()

    @on(DeliveryList.RowSelected)
    def on_row_selected(self, event: DeliveryList.RowSelected) -> None:
        """`enter` on the list: into the detail, as the help says."""
        self.action_focus_detail()

    def say(self, message: str, *, severity: str = "information", title: str = "") -> None:
        """The one door for notifications: text (often captured or remote) is escaped, never markup."""
        self.notify(escape_controls(message), title=escape_controls(title), severity=severity,  # type: ignore[arg-type]
                    markup=False)

    def action_delete(self) -> None:
        table = self.main_query(DeliveryList)
        seq = table.current_seq
        if seq is None:
            return
        self.workspace.delete([seq])
        table.drop(seq)
        self.say(f"deleted #{seq}")

    def action_copy_curl(self) -> None:
        delivery = self.current()
        if delivery is None:
            return
        command = render_curl([ExportItem(delivery, [])], to=self.target)
        self.copy_to_clipboard(command)
        self.say(f"curl command for #{delivery.seq} copied to the clipboard ({len(command)} characters)")

    def action_export_marked(self) -> None:
        table = self.main_query(DeliveryList)
        seqs = sorted(table.marked) or ([table.current_seq] if table.current_seq is not None else [])
        if not seqs:
            return
        items = [ExportItem(self.store.get(seq), self.store.attempts(seq)) for seq in seqs]
        try:
            path, masked = write_export(items, "har", Path.cwd())
        except HookinspectError as exc:
            self.say(exc.message, severity="error", title="export")
            return
        self.say(f"exported {len(items)} deliveries to {path.name}" + (f"; masked {len(masked)} secrets" if masked else ""))

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
        """Replay through the core and the shared writer (re-signed when a secret is known)."""
        try:
            validate_target(target)
            secrets = self.secrets
            [attempt] = await replay_deliveries(
                self.workspace, {seq: target}, edits=edits,
                resigner_for=(lambda d: resigner_for(d, secrets)) if secrets else None)
        except HookinspectError as exc:
            self.say(exc.message, severity="error", title="replay")
            return
        # The row and the detail follow from the workspace's announcement of the attempt.
        if attempt.is_success:
            self.say(f"#{seq} → {attempt.outcome} in {attempt.latency_ms:.0f} ms", title="replayed")
        else:
            detail = attempt.error_message or (attempt.response.text()[:200] if attempt.response else "")
            self.say(f"#{seq} → {attempt.outcome}: {detail}", severity="error", title="replay failed")

    def action_diff(self) -> None:
        table = self.main_query(DeliveryList)
        delivery = self.current()
        if delivery is None:
            return
        other_seq = next((s for s in sorted(table.marked) if s != delivery.seq), None)
        if other_seq is None:
            previous = self.store.previous_of_event(delivery)
            other_seq = previous.seq if previous else None
        if other_seq is None:
            self.say("nothing to compare with: mark a delivery (space) first", severity="warning")
            return
        other = self.store.get(other_seq)
        self.main_query(DeliveryDetail).show_diff(other, delivery, diff_deliveries(other, delivery))


def run_ui(workspace: Workspace, **kwargs) -> None:  # noqa: ANN003
    """Start the UI in the terminal (blocking); the caller owns the workspace (and the receiver)."""
    HookinspectApp(workspace, **kwargs).run()
