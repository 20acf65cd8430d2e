"""The hookinspect TUI: a live list of deliveries over the store, detail tabs, and keys that
call the same core functions as the CLI."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from rich.text import Text
from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Footer, Input, Label, Sparkline, Static

from hookinspect.body import escape_controls
from hookinspect.errors import HookinspectError
from hookinspect.formats.filters import DeliveryFilter, parse_filter
from hookinspect.intake.background import ReceiverProcess, receiver_event
from hookinspect.signing.registry import Secrets
from hookinspect.store.sqlite import Store
from hookinspect.tui.actions import DeliveryActions
from hookinspect.tui.detail_loading import DetailLoading
from hookinspect.tui.listing import ListLoading
from hookinspect.tui.messages import ReceiverEventPosted, Scanned, StoreChanged
from hookinspect.tui.screens.prompt import HelpScreen
from hookinspect.tui.widgets.delivery_list import DeliveryList
from hookinspect.tui.widgets.detail import DeliveryDetail
from hookinspect.views.delivery import DetailLines
from hookinspect.views.inbox import Inbox, Trash
from hookinspect.views.text import counted, safe, safe_url
from hookinspect.workspace import ChangeKind, StoreChange, Workspace

# How often the workspace looks for deliveries stored by another process; this process's own
# captures (listen --ui) and replays are announced at once.
TICK_SECONDS = 0.25


# Captures announced within this many seconds are shown together.
REFRESH_SECONDS = 0.05


# Deliveries-per-second history shown in the header sparkline.
RATE_WINDOW = 60


# Keys that open a text prompt (replay to, export, save body, filter), and how long keys typed
# after one wait for its prompt.
PROMPT_KEYS = frozenset({"R", "x", "s", "slash"})
TYPEAHEAD_SECONDS = 1.0


class HookinspectApp(DeliveryActions, DetailLoading, ListLoading, App[None]):
    CSS_PATH = "hookinspect.tcss"
    TITLE = "hookinspect"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "newest", "Newest", show=False),
        Binding("G", "oldest", "Oldest", show=False),
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
        Binding("u", "undo_delete", "Undo delete", show=False),
        Binding("y", "copy_body", "Copy body", show=False),
        Binding("s", "save_body", "Save body", show=False),
        Binding("1", "tab(1)", "Request", show=False),
        Binding("2", "tab(2)", "Attempts", show=False),
        Binding("3", "tab(3)", "Signature", show=False),
        Binding("4", "tab(4)", "Diff", show=False),
        Binding("f", "toggle_follow", "Follow"),
        Binding("A", "show_all", "Whole body", show=False),  # unfolds long arrays and lifts the 256 KiB cut
    ]

    def __init__(self, workspace: Workspace, *, target: str | None = None, secrets: Secrets | None = None,
                 receiver: ReceiverProcess | None = None) -> None:
        super().__init__()
        # Keys typed right after a key that opens a prompt, held for that prompt (see on_event).
        self._typeahead: list[events.Key] | None = None
        self.workspace = workspace
        self.target = target
        self.secrets = secrets or Secrets()
        self.receiver = receiver  # listen --ui: the receiver's own process, started by the caller
        self.listening_on: str | None = receiver.urls[0] if receiver is not None else None
        self.relay_state: str | None = None
        self.filter = DeliveryFilter()
        self.filter_text = ""
        self._scan_generation = 0
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
        self._listing = True  # the first numbers for the filter are being read (from mount on)
        self._reading_arrivals = False
        self._arrivals_wanted = False  # captures announced while a read was under way: read again after
        self._details: OrderedDict[tuple[int, bool], DetailLines] = OrderedDict()
        self._detail_wanted: tuple[int, bool] | None = None
        self._rendering = False
        self._rendering_note = None
        # Deleted but restorable (`u`); a delete for good that fails is said, and the rows come back.
        self.trash = Trash(workspace, on_error=lambda line: self.say(line, severity="error", title="delete"),
                           on_restored=self._restore_rows)
        self.inbox = Inbox(workspace, self.trash)
        self._worker_store: Store | None = None
        self._worker_store_lock = threading.Lock()
        self._unsubscribe = workspace.changes.subscribe(lambda change: self.post_message(StoreChanged(change)))

    # -- layout --------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Type-ahead for prompts. A terminal delivers fast typing at once: the URL typed right
        after `R` reached the list (and its keys' bindings) before the prompt existed, and the
        prompt got only Enter, submitting nothing. Keys that follow a prompt key are held until
        the prompt takes them (`take_typeahead`), or for TYPEAHEAD_SECONDS at most."""
        if isinstance(event, events.Key) and not event.is_forwarded:
            if self._typeahead is not None:
                self._typeahead.append(event)
                return
            if event.key in PROMPT_KEYS and len(self.screen_stack) == 1:
                held: list[events.Key] = []
                self._typeahead = held
                self.set_timer(TYPEAHEAD_SECONDS, lambda: self._release_typeahead(held))
        await super().on_event(event)

    def take_typeahead(self) -> list[events.Key]:
        """The keys held since a prompt key; holding stops."""
        keys, self._typeahead = self._typeahead or [], None
        return keys

    def _release_typeahead(self, held: list[events.Key]) -> None:
        """No prompt took these held keys (the key opened none): they go where they would have.
        A later hold is not this one's to release."""
        if self._typeahead is held:
            for key in self.take_typeahead():
                self.post_message(events.Key(key.key, key.character))

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        with Horizontal(id="rate-row"):
            yield Label("captures/s, last 60 s", id="rate-label")
            yield Sparkline(self.rates, id="rate")
        yield DeliveryList(self.read_rows, id="list")
        yield DeliveryDetail(id="detail")
        yield Input(placeholder="filter: method:POST provider:stripe event:invoice.* status:5xx $.amount>1000 text",
                    id="filter")
        yield Footer(compact=True)

    def on_resize(self) -> None:
        if self._has_main_screen():
            self.screen_stack[0].set_class(self.size.height < 30, "-short")
            self.update_status()

    async def on_mount(self) -> None:
        if self.receiver is not None:
            self.receiver.attach(self.on_receiver_message)
        self.screen.set_class(self.size.height < 30, "-short")
        self.load_list()
        self._unfollow = self.workspace.follow()  # another process's captures (listen) reach us as changes
        self.set_interval(TICK_SECONDS, self.tick)
        self.main_query(DeliveryList).focus()

    def on_receiver_message(self, message: dict) -> None:
        """A line from the receiver's process (listen --ui): a refusal, a relay state, a store that
        cannot take more. What it stored arrives through the store (Workspace.follow)."""
        if message["t"] == "event":
            self.post_message(ReceiverEventPosted(receiver_event(message)))
        elif message["t"] in ("error", "ended"):
            said = message.get("message") or "the receiver stopped: nothing new is captured (restart listen --ui)"
            self.say(said, severity="error", title="receiver")

    @on(ReceiverEventPosted)
    def on_receiver_event(self, message: ReceiverEventPosted) -> None:
        """Events of the receiver (listen --ui): relay state, refusals, warnings."""
        event = message.event
        if not self._has_main_screen():
            return
        if event.kind == "relay":
            self.relay_state = event.message
            self.update_status()
        elif event.kind in ("rejected", "warning"):
            self.say(event.message, severity="error" if event.kind == "rejected" else "warning", title=event.kind)
        elif event.kind in (ChangeKind.FAILING, ChangeKind.RECOVERED):  # the receiver's store, as in-process
            self.post_message(StoreChanged(StoreChange(ChangeKind(event.kind), message=event.message)))

    @contextmanager
    def worker_store(self) -> Iterator[Store]:
        """The connection detail and diff workers read with (one at a time; opened once)."""
        with self._worker_store_lock:
            if self._worker_store is None:
                self._worker_store = Store(self.workspace.path, create=False)
            yield self._worker_store

    async def on_unmount(self) -> None:
        await self.trash.empty()
        with self._worker_store_lock:
            if self._worker_store is not None:
                self._worker_store.close()
                self._worker_store = None
        self._unfollow()
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

    @on(Scanned)
    def _scanned(self, message: Scanned) -> None:
        if message.generation != self._scan_generation or not self._has_main_screen():
            return
        table = self.main_query(DeliveryList)
        was_empty = not len(table.index)
        before = len(table.index)
        table.index.extend_runs(message.runs)  # the inbox left deleted ones out
        complete = table.index.complete = message.complete
        table.grew_older(len(table.index) - before)
        if was_empty and len(table.index):
            table.move_cursor(0)
        elif complete and not len(table.index):
            self.main_query(DeliveryDetail).show_nothing("nothing matches the filter")
        self.update_status()

    def _has_main_screen(self) -> bool:
        try:
            self.main_query(DeliveryList)
        except NoMatches:
            return False
        return True

    def tick(self) -> None:
        """The arrivals sparkline, a point a second."""
        if not self._has_main_screen():
            return
        self._tick_count += 1
        if self._tick_count % int(1 / TICK_SECONDS) == 0:
            self.rates = [*self.rates[1:], float(self._arrivals)]
            self._arrivals = 0
            self.main_query("#rate", Sparkline).data = self.rates
            self.update_status()  # the rate beside the count

    @on(StoreChanged)
    def on_store_changed(self, message: StoreChanged) -> None:
        if not self._has_main_screen():
            return  # the app is closing: nothing left to show it on
        change = message.change
        if change.kind == ChangeKind.DELIVERIES:
            if not self._refresh_pending:  # a burst of captures costs one look at the store, not one each
                self._refresh_pending = True
                self.set_timer(REFRESH_SECONDS, self._refresh_new)
        elif change.kind == ChangeKind.ATTEMPT and change.seq is not None:
            self.refresh_delivery(change.seq)
        elif change.kind == ChangeKind.FAILING:
            self.say(change.message, severity="error", title="not storing")
        elif change.kind == ChangeKind.RECOVERED:
            self.say(change.message, title="storing")
        elif change.kind in (ChangeKind.REMOVED, ChangeKind.STORE):
            self.read_total()

    def update_status(self) -> None:
        """The top line; on a narrow terminal the least useful parts go first (the count, the
        filter and the follow state stay)."""
        parts: list[tuple[int, Text]] = [(5, Text("hookinspect", style="bold"))]  # (keep priority, text)
        if self.listening_on:
            parts.append((2, Text(f"listening on {self.listening_on}", style="green")))
        if self.relay_state:
            parts.append((2, Text(*safe(f"relay {self.relay_state}", "blue"))))
        parts.append((4, Text(*safe(f"store {self.workspace.path}", "dim"))))
        parts.append((3, Text("→ ", "cyan") + Text(*safe_url(self.target, "cyan")) if self.target else Text("no target (R asks)", style="dim")))
        shown = self.total - len(self.trash.hidden())  # deleted ones stay in the store until the undo window ends
        parts.append((1, Text(counted(shown, "delivery", "deliveries"))))
        parts.append((3, Text(f"{self.rates[-1]:.0f}/s, {sum(self.rates):.0f} in the last minute", style="dim")))
        table = self.main_query(DeliveryList)
        listed = len(table.index)
        if not self.filter.is_empty:
            matches = f"{listed:,} match" if table.index.complete else f"{listed:,} so far, looking…"
            parts.append((1, Text.assemble(("filter ", "dim"), safe(self.filter_text, "bold", keep_newlines=False),
                                           (f" {matches}", ""))))
        paused = "paused (f)" + (f" · {self.new_while_paused:,} new" if self.new_while_paused else "")
        parts.append((1, Text("following" if self.following else paused, style="green" if self.following else "yellow")))
        room = self.size.width - 2
        separator = Text("  ·  ")
        while len(parts) > 1 and sum(t.cell_len for _, t in parts) + separator.cell_len * (len(parts) - 1) > room:
            lowest = max(range(len(parts)), key=lambda i: (parts[i][0], i))
            if parts[lowest][0] == 1:
                break
            del parts[lowest]
        self.main_query("#status", Static).update(separator.join(text for _, text in parts))
        self.show_position()

    def show_position(self) -> None:
        """`row 1,234 of 1,000,000` under the list (`+` while the scan is still counting): the row's
        place, said so, since `#9` is how a delivery's own number reads."""
        table = self.main_query(DeliveryList)
        listed = len(table.index)
        more = "" if table.index.complete else "+"
        table.border_subtitle = f"row {table.cursor + 1:,} of {listed:,}{more}" if listed else f"0 of 0{more}"

    # -- detail --------------------------------------------------------------------------

    @on(DeliveryList.Highlighted)
    def on_row(self, event: DeliveryList.Highlighted) -> None:
        if not self._has_main_screen():
            return  # a message that arrived while the app closes
        self.show_position()
        self.main_query(DeliveryDetail).reset_diff()
        self.show_delivery(event.seq)







    # -- actions -------------------------------------------------------------------------

    def action_cursor_down(self) -> None:
        self.main_query(DeliveryList).action_cursor_down()

    def action_cursor_up(self) -> None:
        self.main_query(DeliveryList).action_cursor_up()

    def action_newest(self) -> None:
        self.main_query(DeliveryList).action_newest()

    def action_oldest(self) -> None:
        self.main_query(DeliveryList).action_oldest()

    def action_tab(self, number: int) -> None:
        self.main_query(DeliveryDetail).switch_to(number)

    def action_focus_detail(self) -> None:
        self.main_query(DeliveryDetail).focus_tabs()

    def action_focus_list(self) -> None:
        filter_input = self.main_query("#filter", Input)
        if filter_input.has_class("visible"):
            filter_input.remove_class("visible")
        self.main_query(DeliveryList).focus()

    def action_help(self) -> None:
        keys = [(b.key.replace("question_mark", "?").replace("slash", "/"), b.description) for b in self.BINDINGS]
        keys += [("home / end", "Newest / oldest"), ("pgup / pgdn", "A page up / down"),
                 ("tab", "Next pane (arrows scroll a body)")]
        self.push_screen(HelpScreen(keys))

    def action_toggle_follow(self) -> None:
        self.following = not self.following
        if self.following:
            self.new_while_paused = 0
            self.max_seen = min(self.max_seen, self.main_query(DeliveryList).index.newest or 0)
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
        self.call_after_refresh(self._type_into_filter, filter_input)

    async def _type_into_filter(self, filter_input: Input) -> None:
        """What was typed right after `/` (held: see on_event) goes into the filter box."""
        for event in self.take_typeahead():
            if event.key == "enter":
                await filter_input.action_submit()
                return
            if event.is_printable and event.character:
                filter_input.insert_text_at_cursor(event.character)

    @on(Input.Submitted, "#filter")
    def apply_filter(self, event: Input.Submitted) -> None:
        try:
            self.filter = parse_filter(event.value)
        except HookinspectError as exc:
            self.say(exc.message + (f" ({exc.hint})" if exc.hint else ""), severity="error", title="bad filter")
            return
        self.filter_text = event.value.strip()
        self.main_query("#filter", Input).remove_class("visible")
        self.load_list()
        self.main_query(DeliveryList).focus()

    @on(DeliveryList.Selected)
    def on_row_selected(self, event: DeliveryList.Selected) -> None:
        """`enter` on the list: into the detail, as the help says."""
        if self._has_main_screen():
            self.action_focus_detail()

    def say(self, message: str, *, severity: str = "information", title: str = "") -> None:
        """The one door for notifications: text (often captured or remote) is escaped, never markup."""
        self.notify(escape_controls(message), title=escape_controls(title), severity=severity,  # type: ignore[arg-type]
                    markup=False)


















def run_ui(workspace: Workspace, **kwargs) -> None:  # noqa: ANN003
    """Start the UI in the terminal (blocking); the caller owns the workspace (and the receiver)."""
    HookinspectApp(workspace, **kwargs).run()
