"""The list's numbers and rows, read by the list model (views/inbox.Inbox) in workers: the
newest at once, older ones from a scan, new deliveries as they arrive, rows as they scroll
into view. Nothing here reads the store on the UI thread. A mixin of HookinspectApp."""

from __future__ import annotations

import time
from array import array

from textual import work
from textual.worker import get_current_worker

from hookinspect.errors import HookinspectError
from hookinspect.formats.filters import DeliveryFilter
from hookinspect.tui.messages import Arrived, Counted, Listed, RowsRead, Scanned
from hookinspect.tui.widgets.delivery_list import DeliveryList
from hookinspect.tui.widgets.detail import DeliveryDetail
from hookinspect.views.seq_index import SeqIndex, runs_of

# How long a scan keeps what it found before showing it, and how many matches it shows at
# once when the list is still empty.
SCAN_FLUSH_SECONDS = 0.25
FIRST_MATCHES = 200
# Rows read with the first numbers: a tall terminal's first screen, drawn without a second read.
FIRST_ROWS = 120


class ListLoading:
    """Loads the list's numbers and rows for the app; see the module's docstring. Its message
    handlers are found by name (on_listed, …): `@on` is collected only on the app's own class."""

    @property
    def is_listed(self) -> bool:
        """Whether the list shows the filter's first numbers (they are read in a worker)."""
        return not self._listing

    def load_list(self) -> None:
        """List what the filter matches (a new filter, or the start): its first numbers come from
        a worker, older ones from a scan; the list stays usable meanwhile."""
        self._scan_generation += 1
        self._listing = True
        self.read_start(self.filter, self._scan_generation)

    @work(thread=True, exclusive=True, group="list")
    def read_start(self, flt: DeliveryFilter, generation: int) -> None:
        try:
            with self.worker_store() as store:
                start = self.inbox.start(store, flt, rows=FIRST_ROWS)
        except HookinspectError as exc:
            self._from_thread(self.say, exc.message, severity="error", title="list")
            return
        self.post_message(Listed(generation, start))

    def on_listed(self, message: Listed) -> None:
        if message.generation != self._scan_generation or not self._has_main_screen():
            return
        start = message.start
        self._listing = False
        table = self.main_query(DeliveryList)
        index = SeqIndex()
        index.extend_older(start.numbers)
        index.complete = start.complete
        table.reset(index)
        table.remember(start.rows.values())
        self.max_seen, self.total = start.newest, start.total
        if not start.complete:
            self.scan(self.filter, message.generation, start.scan_from)
        if len(index):
            table.move_cursor(0)
        else:
            self.main_query(DeliveryDetail).show_nothing(
                "no deliveries yet: send one to `hookinspect listen`" if self.filter.is_empty else
                "nothing matches the filter yet" if index.complete else "looking for matches…")
        self.update_status()
        if self._arrivals_wanted:  # captures announced while the list was being read
            self.show_new_deliveries()

    @work(thread=True, exclusive=True, group="scan")
    def scan(self, flt: DeliveryFilter, generation: int, upto: int) -> None:
        """The rest of the list's numbers: a new filter cancels it. What it finds goes to the
        list in batches (every SCAN_FLUSH_SECONDS), so a million numbers cost the UI a handful
        of updates."""
        worker = get_current_worker()
        found = array("q")  # 8 bytes a number, in one block: no garbage left behind after a million
        flushed = time.monotonic()
        shown = False
        for chunk in self.inbox.scan(flt, upto, cancelled=lambda: worker.is_cancelled or
                                     generation != self._scan_generation):
            found.extend(chunk)
            # The first matches at once (an empty list waits for them), then a few updates a second.
            first = not shown and len(found) >= FIRST_MATCHES
            if found and (first or time.monotonic() - flushed >= SCAN_FLUSH_SECONDS):
                shown = True
                self.post_message(Scanned(generation, runs_of(found), False))
                found, flushed = array("q"), time.monotonic()
        if not worker.is_cancelled and generation == self._scan_generation:
            self.post_message(Scanned(generation, runs_of(found), True))

    def _from_thread(self, callback, *args, **kwargs) -> bool:  # noqa: ANN001, ANN003
        try:
            self.call_from_thread(callback, *args, **kwargs)
        except RuntimeError:  # the app closed meanwhile
            return False
        return True

    def _refresh_new(self) -> None:
        self._refresh_pending = False
        if self._has_main_screen():
            self.show_new_deliveries()

    def show_new_deliveries(self) -> None:
        """Read every delivery stored since the newest one shown (in a worker, one read at a time;
        what arrives meanwhile is read right after)."""
        if self._listing or self._reading_arrivals:
            self._arrivals_wanted = True
            return
        self._arrivals_wanted = False
        self._reading_arrivals = True
        self.read_arrivals(self.filter, self._scan_generation, self.max_seen)

    @work(thread=True, group="arrivals")
    def read_arrivals(self, flt: DeliveryFilter, generation: int, after: int) -> None:
        try:
            with self.worker_store() as store:
                arrivals = self.inbox.arrivals(store, flt, after)
        except HookinspectError as exc:
            self._from_thread(self._arrivals_failed, exc.message)
            return
        self.post_message(Arrived(generation, after, arrivals))

    def _arrivals_failed(self, message: str) -> None:
        self._reading_arrivals = False
        self.say(message, severity="error", title="list")

    def on_arrived(self, message: Arrived) -> None:
        """New deliveries on the list; followed to the top unless paused."""
        self._reading_arrivals = False
        if not self._has_main_screen():
            return
        current = message.generation == self._scan_generation and message.after == self.max_seen
        arrivals = message.arrivals
        if current and arrivals.newest > self.max_seen:
            self._arrivals += arrivals.newest - self.max_seen
            if not self.following:
                self.new_while_paused += arrivals.newest - self.max_seen
            else:
                table = self.main_query(DeliveryList)
                at_top = table.cursor <= 0
                table.remember(arrivals.rows)
                hidden = self.trash.hidden()
                added = table.index.add_newer(row.seq for row in arrivals.rows if row.seq not in hidden)
                table.grew_newer(added, follow=at_top)
            self.total = arrivals.total
            self.max_seen = arrivals.newest
            self.update_status()
        if self._arrivals_wanted or not current:
            self.show_new_deliveries()

    @work(thread=True, group="rows")
    def read_rows(self, seqs: list[int]) -> None:
        """Rows the list is about to draw (it asks for those it does not hold)."""
        try:
            with self.worker_store() as store:
                rows = store.rows(seqs)
        except HookinspectError:
            rows = None
        if rows is None:  # unreadable for now: the list asks again when it next draws them
            self._from_thread(self._rows_failed, seqs)
            return
        self.post_message(RowsRead(seqs, rows))

    def on_rows_read(self, message: RowsRead) -> None:
        if self._has_main_screen():
            self.main_query(DeliveryList).rows_arrived(message.asked, message.rows)

    def _rows_failed(self, seqs: list[int]) -> None:
        if self._has_main_screen():
            self.main_query(DeliveryList).rows_failed(seqs)

    @work(thread=True, exclusive=True, group="count")
    def read_total(self) -> None:
        """The store's count, after a delete or another process's change."""
        try:
            with self.worker_store() as store:
                total = store.count()
        except HookinspectError:
            return
        self.post_message(Counted(total))

    def on_counted(self, message: Counted) -> None:
        if self._has_main_screen():
            self.total = message.total
            self.update_status()

    def refresh_delivery(self, seq: int) -> None:
        """An attempt was added to #seq: its row's last outcome, and its detail if shown."""
        table = self.main_query(DeliveryList)
        table.forget(seq)
        for key in [k for k in self._details if k[0] == seq]:
            del self._details[key]
        if table.current_seq == seq:
            self.show_delivery(seq, same_delivery=True)
