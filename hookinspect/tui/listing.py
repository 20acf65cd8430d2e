"""The list's numbers: the newest at once, older ones from a scan in a worker, and new
deliveries as they arrive. A mixin of HookinspectApp."""

from __future__ import annotations

import time
from array import array

from textual import work
from textual.worker import get_current_worker

from hookinspect.formats.filters import DeliveryFilter
from hookinspect.store.sqlite import Store
from hookinspect.tui.messages import Scanned
from hookinspect.tui.widgets.delivery_list import DeliveryList
from hookinspect.tui.widgets.detail import DeliveryDetail
from hookinspect.views.seq_index import SeqIndex, runs_of

# Numbers a list scan reads at once, how long it keeps what it found before showing it, and how
# many matches it shows at once when the list is still empty.
SCAN_CHUNK = 20_000
SCAN_FLUSH_SECONDS = 0.25
FIRST_MATCHES = 200
# Arrivals read per query when a burst is shown.
ARRIVALS_PAGE = 500


class ListLoading:
    """Loads the list's numbers for the app; see the module's docstring."""

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
