"""The hookinspect TUI: a live list of deliveries over the store, detail tabs, and keys that
call the same core functions as the CLI."""

from __future__ import annotations

import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Footer, Input, Sparkline, Static
from textual.worker import get_current_worker

from hookinspect.body import escape_controls
from hookinspect.errors import HookinspectError
from hookinspect.formats.diff import diff_deliveries
from hookinspect.formats.export import ExportItem, export_path, render_curl, write_export
from hookinspect.formats.filters import DeliveryFilter, parse_filter
from hookinspect.formats.targets import validate_target
from hookinspect.intake.background import ReceiverProcess, receiver_event
from hookinspect.intake.receiver import ReceiverEvent
from hookinspect.model import Delivery
from hookinspect.private_files import write_private
from hookinspect.send.forward import RequestEdits
from hookinspect.send.replay import last_own_target, replay_deliveries
from hookinspect.signing.registry import Secrets, resigner_for
from hookinspect.store.sqlite import Store
from hookinspect.tui.screens.prompt import ConfirmPrompt, EditRequest, HelpScreen, TextPrompt
from hookinspect.tui.widgets.delivery_list import DeliveryList
from hookinspect.tui.widgets.detail import DeliveryDetail
from hookinspect.views.delivery import DetailLines, change_lines
from hookinspect.views.detail import draw_detail, read_detail
from hookinspect.views.inbox import Trash
from hookinspect.views.seq_index import Run, SeqIndex, runs_of
from hookinspect.views.text import safe, safe_url
from hookinspect.workspace import StoreChange, Workspace

# How often the workspace looks for deliveries stored by another process; this process's own
# captures (listen --ui) and replays are announced at once.
POLL_SECONDS = 0.25
# Captures announced within this many seconds are shown together.
REFRESH_SECONDS = 0.05
# Deliveries-per-second history shown in the header sparkline.
RATE_WINDOW = 60
# Numbers a list scan reads at once, how long it keeps what it found before showing it, and how
# many matches it shows at once when the list is still empty.
SCAN_CHUNK = 20_000
SCAN_FLUSH_SECONDS = 0.25
FIRST_MATCHES = 200
# Arrivals read per query when a burst is shown.
ARRIVALS_PAGE = 500
# Rendered details kept (a pretty-printed 256 KiB body is worth not computing twice).
DETAIL_CACHE = 8
# A detail that takes longer than this to compute says "rendering…" meanwhile.
RENDERING_NOTE_AFTER = 0.1
# Deleted deliveries stay restorable (u) this long before they leave the store.
# What `x` writes, by the file name's extension.
EXPORT_FORMATS = {".har": "har", ".json": "fixture", ".sh": "curl", ".http": "raw"}


class Scanned(Message):
    """More numbers for the list, from its scan (posted from the scan's thread, which does not wait)."""

    def __init__(self, generation: int, runs: list[Run], complete: bool) -> None:
        super().__init__()
        self.generation = generation
        self.runs = runs
        self.complete = complete


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
        self.workspace = workspace
        self.store = workspace.store
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
        self._details: OrderedDict[tuple[int, bool], DetailLines] = OrderedDict()
        self._detail_wanted: tuple[int, bool] | None = None
        self._rendering = False
        self._rendering_note = None
        # Deleted but restorable (`u`); a delete for good that fails is said, and the rows come back.
        self.trash = Trash(workspace, on_error=lambda line: self.say(line, severity="error", title="delete"),
                           on_restored=self._restore_rows)
        self._worker_store: Store | None = None
        self._worker_store_lock = threading.Lock()
        self._unsubscribe = workspace.changes.subscribe(lambda change: self.post_message(StoreChanged(change)))

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Sparkline(self.rates, id="rate")
        yield DeliveryList(self.store.rows, id="list")
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
        if not self._has_main_screen():
            return
        if event.kind == "relay":
            self.relay_state = event.message
            self.update_status()
        elif event.kind in ("rejected", "warning"):
            self.say(event.message, severity="error" if event.kind == "rejected" else "warning", title=event.kind)

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

    def load_list(self) -> None:
        """List what the filter matches: the newest numbers at once, older ones from a scan in a
        worker (a JSON filter reads every body; the list stays usable meanwhile)."""
        table = self.main_query(DeliveryList)
        self._scan_generation += 1
        self.max_seen = self.store.max_seq()
        self.total = self.store.count()
        index = SeqIndex()
        upto: int | None = self.max_seen
        if not self.filter.reads_bodies:  # a page of numbers from the index: as fast as SQLite
            first = next(self.store.scan_seqs(self.filter, upto=upto), [])
            trashed = self._trashed()
            index.extend_older(s for s in first if s not in trashed)
            if len(first) < 2000:
                index.complete = True
            elif first:
                upto = first[-1] - 1
        table.reset(index)
        if not index.complete:
            self.scan(self.filter, self._scan_generation, upto)
        if len(index):
            table.move_cursor(0)
        else:
            self.main_query(DeliveryDetail).show_nothing(
                "no deliveries yet: send one to `hookinspect listen`" if self.filter.is_empty else
                "nothing matches the filter yet" if index.complete else "looking for matches…")
        self.update_status()

    @work(thread=True, exclusive=True, group="scan")
    def scan(self, flt: DeliveryFilter, generation: int, upto: int | None) -> None:
        """The rest of the list's numbers, on its own connection: a new filter cancels it. What
        it finds goes to the list in batches (every SCAN_FLUSH_SECONDS), so a million numbers
        cost the UI a handful of updates."""
        worker = get_current_worker()
        found = array("q")  # 8 bytes a number, in one block: no garbage left behind after a million
        flushed = time.monotonic()
        shown = False
        with Store(self.workspace.path, create=False) as store:
            for chunk in store.scan_seqs(flt, upto=upto, chunk=SCAN_CHUNK):
                if worker.is_cancelled or generation != self._scan_generation:
                    return
                found.extend(chunk)
                # The first matches at once (an empty list waits for them), then a few updates a second.
                first = not shown and len(found) >= FIRST_MATCHES
                if found and (first or time.monotonic() - flushed >= SCAN_FLUSH_SECONDS):
                    shown = True
                    self.post_message(Scanned(generation, runs_of(found), False))
                    found, flushed = array("q"), time.monotonic()
        self.post_message(Scanned(generation, runs_of(found), True))

    def _from_thread(self, callback, *args) -> bool:  # noqa: ANN001
        try:
            self.call_from_thread(callback, *args)
        except RuntimeError:  # the app closed meanwhile
            return False
        return True

    @on(Scanned)
    def _scanned(self, message: Scanned) -> None:
        if message.generation != self._scan_generation or not self._has_main_screen():
            return
        table = self.main_query(DeliveryList)
        was_empty = not len(table.index)
        trashed = self._trashed()
        before = len(table.index)
        if trashed:
            table.index.extend_older([s for high, low in message.runs for s in range(high, low - 1, -1) if s not in trashed])
        else:
            table.index.extend_runs(message.runs)
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
        else:
            table = self.main_query(DeliveryList)
            at_top = table.cursor <= 0
            after, added = self.max_seen, 0
            while True:  # in pages, so a burst of any size is shown whole
                rows = self.store.list(self.filter, limit=ARRIVALS_PAGE, before_seq=after, oldest_first=True)
                table.remember(rows)
                added += table.index.add_newer(row.seq for row in rows)
                if len(rows) < ARRIVALS_PAGE:
                    break
                after = rows[-1].seq
            table.grew_newer(added, follow=at_top)
            self.total = self.store.count()
        self.max_seen = newest
        self.update_status()

    def refresh_delivery(self, seq: int) -> None:
        """An attempt was added to #seq: its row's last outcome, and its detail if shown."""
        table = self.main_query(DeliveryList)
        table.forget(seq)
        for key in [k for k in self._details if k[0] == seq]:
            del self._details[key]
        if table.current_seq == seq:
            self.show_delivery(seq, same_delivery=True)

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
        parts.append((1, Text(f"{self.total:,} deliveries")))
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
        """`#1,234 of 1,000,000` under the list (`+` while the scan is still counting)."""
        table = self.main_query(DeliveryList)
        listed = len(table.index)
        more = "" if table.index.complete else "+"
        table.border_subtitle = f"#{table.cursor + 1:,} of {listed:,}{more}" if listed else f"0 of 0{more}"

    # -- detail --------------------------------------------------------------------------

    @on(DeliveryList.Highlighted)
    def on_row(self, event: DeliveryList.Highlighted) -> None:
        if not self._has_main_screen():
            return  # a message that arrived while the app closes
        self.show_position()
        self.main_query(DeliveryDetail).reset_diff()
        self.show_delivery(event.seq)

    def current(self) -> Delivery | None:
        seq = self.main_query(DeliveryList).current_seq
        if seq is None:
            return None
        try:
            return self.store.get(seq)
        except HookinspectError:
            return None

    def show_delivery(self, seq: int, *, same_delivery: bool = False) -> None:
        """The detail of #seq: from the cache, or computed in a worker (one at a time, the latest
        wanted first), saying "rendering…" when that takes a while."""
        key = (seq, self.show_all_body)
        self._detail_wanted = key
        cached = self._details.get(key)
        if cached is not None:
            self._details.move_to_end(key)
            self._show_detail(cached, same_delivery)
            return
        if self._rendering_note is None and not same_delivery:
            self._rendering_note = self.set_timer(RENDERING_NOTE_AFTER, self._say_rendering)
        if not self._rendering:
            self._rendering = True
            self.render_detail(key, same_delivery)

    def _say_rendering(self) -> None:
        self._rendering_note = None
        if self._detail_wanted is not None and self._detail_wanted not in self._details and self._has_main_screen():
            self.main_query(DeliveryDetail).show_rendering(self._detail_wanted[0])

    def _show_detail(self, view: DetailLines, same_delivery: bool) -> None:
        if self._rendering_note is not None:
            self._rendering_note.stop()
            self._rendering_note = None
        self.main_query(DeliveryDetail).show(view, same_delivery=same_delivery)

    @work(thread=True, group="detail")
    def render_detail(self, key: tuple[int, bool], same_delivery: bool) -> None:
        seq, show_all = key
        view: DetailLines | None = None
        error = ""
        try:
            with self.worker_store() as store:
                read = read_detail(store, seq)
            view = draw_detail(read, self.secrets, show_all=show_all)
        except HookinspectError as exc:
            error = exc.message
        finally:
            self._from_thread(self._rendered, key, view, error, same_delivery)

    def _rendered(self, key: tuple[int, bool], view: DetailLines | None, error: str, same_delivery: bool) -> None:
        self._rendering = False
        if not self._has_main_screen():
            return
        if view is not None:
            self._details[key] = view
            while len(self._details) > DETAIL_CACHE:
                self._details.popitem(last=False)
        wanted = self._detail_wanted
        if key == wanted:
            if view is not None:
                self._show_detail(view, same_delivery)
            else:
                self.main_query(DeliveryDetail).show_nothing(error)
        elif wanted is not None and wanted in self._details:
            self._show_detail(self._details[wanted], False)
        elif wanted is not None:  # the cursor moved on while this one was computed
            self._rendering = True
            self.render_detail(wanted, False)

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

    def action_delete(self) -> None:
        """Delete the marked deliveries (or the current one) after a yes; `u` brings them back for
        the trash's undo window, after which (or on quit) they leave the store."""
        table = self.main_query(DeliveryList)
        seqs = sorted(table.marked, reverse=True) or ([table.current_seq] if table.current_seq is not None else [])
        if not seqs:
            return
        what = f"#{seqs[0]}" if len(seqs) == 1 else f"the {len(seqs)} marked deliveries"

        def answered(yes: bool | None) -> None:
            if not yes or not self._has_main_screen():
                return
            self.main_query(DeliveryList).remove(seqs)
            self.trash.put(seqs)
            self.say(f"deleted {what}: u brings {'it' if len(seqs) == 1 else 'them'} back "
                     f"(for {self.trash.seconds:.0f} s)", title="deleted")

        self.push_screen(ConfirmPrompt(f"Delete {what} and {'its' if len(seqs) == 1 else 'their'} attempts?"), answered)

    def _trashed(self) -> set[int]:
        return self.trash.hidden()

    def _restore_rows(self, seqs: list[int]) -> None:
        if self._has_main_screen():
            self.main_query(DeliveryList).restore(seqs)

    def action_undo_delete(self) -> None:
        seqs = self.trash.undo()
        if seqs is None:
            self.say("nothing to undo", severity="warning")
            return
        self._restore_rows(seqs)
        self.say(f"restored {', '.join(f'#{s}' for s in seqs[:5])}{'…' if len(seqs) > 5 else ''}", title="undone")

    def action_copy_curl(self) -> None:
        delivery = self.current()
        if delivery is None:
            return
        command = render_curl([ExportItem(delivery, [])], to=self.target)
        self.copy_to_clipboard(command)
        self.say(f"curl command for #{delivery.seq} copied to the clipboard ({len(command)} characters)")

    def action_export_marked(self) -> None:
        """Export the marked deliveries (or the current one) to a file the user names; the
        extension says the format: .har, .json (a fixture for `check`), .sh (curl), .http (raw)."""
        table = self.main_query(DeliveryList)
        seqs = sorted(table.marked) or ([table.current_seq] if table.current_seq is not None else [])
        if not seqs:
            return
        default = export_path(Path.cwd(), "har")

        def chosen(name: str | None) -> None:
            if not name:
                return
            path = Path(name).expanduser()
            fmt = EXPORT_FORMATS.get(path.suffix.lower()) if not path.is_dir() else "har"
            if fmt is None:
                self.say(f"unknown export extension {path.suffix or '(none)'}: use " + ", ".join(EXPORT_FORMATS),
                         severity="error", title="export")
                return
            try:
                items = [ExportItem(self.store.get(seq), self.store.attempts(seq)) for seq in seqs]
                written, masked = write_export(items, fmt, path)
            except HookinspectError as exc:
                self.say(exc.message, severity="error", title="export")
                return
            self.say(f"exported {len(items)} deliver{'y' if len(items) == 1 else 'ies'} as {fmt} to {written}"
                     + (f"; masked {len(masked)} secrets" if masked else ""), title="export")

        self.push_screen(TextPrompt(f"Export {len(seqs)} deliver{'y' if len(seqs) == 1 else 'ies'} to "
                                    f"(.har, .json fixture, .sh curl, .http raw):", str(default.name), "file name"),
                         chosen)

    def action_copy_body(self) -> None:
        delivery = self.current()
        if delivery is None:
            return
        text = delivery.decoded().data.decode("utf-8", "replace")
        self.copy_to_clipboard(text)
        self.say(f"body of #{delivery.seq} copied to the clipboard ({len(text)} characters)")

    def action_save_body(self) -> None:
        """Write the body (decoded from gzip/br when it was) to a file the user names."""
        delivery = self.current()
        if delivery is None:
            return
        extension = {"json": "json", "x-www-form-urlencoded": "txt", "xml": "xml"}.get(
            delivery.content_type.mime.split("/")[-1].split("+")[-1], "bin")
        default = f"hookinspect-{delivery.seq}-body.{extension}"

        def chosen(name: str | None) -> None:
            if not name:
                return
            path = Path(name).expanduser()
            decoded = delivery.decoded()
            try:
                write_private(path, decoded.data)
            except OSError as exc:
                self.say(f"cannot write {path}: {exc.strerror}", severity="error", title="save body")
                return
            how = f" (decoded from {'+'.join(decoded.encodings)})" if decoded.encodings else ""
            self.say(f"wrote the body of #{delivery.seq} to {path}: {len(decoded.data)} bytes{how}", title="save body")

        self.push_screen(TextPrompt(f"Save the body of #{delivery.seq} to:", default, "file name"), chosen)

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
        return last_own_target(self.store, delivery.seq)  # type: ignore[arg-type]

    def action_replay_to(self) -> None:
        delivery = self.current()
        if delivery is None:
            return

        def chosen(url: str | None) -> None:
            if url:
                self.target = url
                self.update_status()
                self.send(delivery.seq, url)  # type: ignore[arg-type]

        self.push_screen(TextPrompt(f"Replay #{delivery.seq} to:", self.target or self._last_target(delivery) or ""), chosen)

    def action_edit_replay(self) -> None:
        delivery = self.current()
        if delivery is None:
            return
        target = self.target or self._last_target(delivery)

        def edited(result: tuple[list[tuple[str, str]], bytes] | None) -> None:
            if result is None:
                return
            headers, body = result
            edits = RequestEdits.replacing(delivery.headers, headers, body)
            if target is None:
                self.push_screen(TextPrompt(f"Send the edited #{delivery.seq} to:"),
                                 lambda url: url and self.send(delivery.seq, url, edits))  # type: ignore[arg-type]
            else:
                self.send(delivery.seq, target, edits)  # type: ignore[arg-type]

        self.push_screen(EditRequest(delivery.headers.pairs(), delivery.text()), edited)

    @work(group="send")
    async def send(self, seq: int, target: str, edits: RequestEdits | None = None) -> None:
        """Replay through the core and the shared writer (re-signed when a secret is known)."""
        try:
            target = validate_target(target)
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
        seq = table.current_seq
        if seq is None:
            return
        other = next((s for s in sorted(table.marked) if s != seq), None)
        self.main_query(DeliveryDetail).show_diff([[("comparing…", "dim")]])
        self.compute_diff(seq, other)

    @work(thread=True, exclusive=True, group="diff")
    def compute_diff(self, seq: int, other_seq: int | None) -> None:
        """The comparison off the UI thread: two big bodies take a while."""
        try:
            with self.worker_store() as store:
                delivery = store.get(seq)
                if other_seq is None:
                    previous = store.previous_of_event(delivery)
                    other_seq = previous.seq if previous else None
                other = store.get(other_seq) if other_seq is not None else None
            if other is None:
                lines = [[("nothing to compare with: mark a delivery (space) first", "yellow")]]
            else:
                changes = diff_deliveries(other, delivery)
                lines = [[(f"#{other.seq} → #{delivery.seq}   ({len(changes)} changes)", "bold")], [],
                         *change_lines(changes)]
        except HookinspectError as exc:
            lines = [[safe(exc.message, "red")]]
        self._from_thread(self._show_diff, seq, lines)

    def _show_diff(self, seq: int, lines: list) -> None:  # noqa: ANN001 - list[Line]
        if self._has_main_screen() and self.main_query(DeliveryList).current_seq == seq:
            self.main_query(DeliveryDetail).show_diff(lines)


def run_ui(workspace: Workspace, **kwargs) -> None:  # noqa: ANN003
    """Start the UI in the terminal (blocking); the caller owns the workspace (and the receiver)."""
    HookinspectApp(workspace, **kwargs).run()
