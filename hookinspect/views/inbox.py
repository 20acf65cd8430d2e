"""What a list of deliveries is, once, for any UI: the TUI and the web page both render it.

- **Reading** (`Inbox`): the newest numbers a filter matches at once, older ones from a scan
  on a connection of its own, arrivals in pages so a burst of any size is shown whole, a page
  of rows for a page that pages by numbers. Every method here reads the store, so a UI calls
  it from a worker thread (the TUI) or through `Workspace.read` (the web), never on its own
  event loop: a JSON filter over a big store reads every body.
- **Trash** (`Trash`): deleted deliveries are hidden at once and restorable for UNDO_SECONDS
  (the UIs' `u` / Undo), then leave the store in a thread, so a slow or full disk never stalls
  a UI's event loop. A delete that fails (a full disk) is one line through `on_error`, and the
  deliveries come back (`on_restored`): the store still has them.
- **Changes**: a UI subscribes to `workspace.changes` and calls `workspace.follow()`; that is
  how its own and every other process's captures reach it (see hookinspect.workspace).
- **Marks**: what an action works on is the marked deliveries, or else the current one
  (`acted_on`).
"""

from __future__ import annotations

import asyncio
import secrets
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from hookinspect.errors import HookinspectError
from hookinspect.formats.filters import DeliveryFilter
from hookinspect.store.deliveries import DeliveryRow
from hookinspect.store.sqlite import Store
from hookinspect.workspace import Workspace

# Deleted deliveries stay restorable this long before they leave the store.
UNDO_SECONDS = 10.0
# The numbers a list shows at once, before any scan: one indexed page, as fast as SQLite.
FIRST_NUMBERS = 2000
# Numbers a scan reads at once.
SCAN_CHUNK = 20_000
# Arrivals read per query when a burst is shown.
ARRIVALS_PAGE = 500


@dataclass(slots=True)
class ListStart:
    """What a list shows first: the newest matching numbers (newest first), and where the scan
    for the older ones starts (None: `numbers` is the whole list)."""

    newest: int  # the store's newest number when it was read: arrivals are what comes after
    total: int  # deliveries in the store, matching or not
    numbers: list[int] = field(default_factory=list)
    scan_from: int | None = None
    rows: dict[int, DeliveryRow] = field(default_factory=dict)  # the first screenful's rows, read with them

    @property
    def complete(self) -> bool:
        return self.scan_from is None


@dataclass(slots=True)
class Arrivals:
    """Deliveries stored after a list's newest, oldest first, that its filter matches."""

    newest: int
    total: int
    rows: list[DeliveryRow] = field(default_factory=list)


@dataclass(slots=True)
class ListPage:
    """A page of rows, newest first; `more`: there is another page; `total` with the first page."""

    rows: list[DeliveryRow]
    more: bool
    total: int | None = None


class Inbox:
    """Reads what a list of deliveries shows (see the module's docstring); it keeps nothing of a
    UI's own, so a TUI and any number of browser tabs share one."""

    def __init__(self, workspace: Workspace, trash: Trash) -> None:
        self.workspace = workspace
        self.trash = trash

    def start(self, store: Store, flt: DeliveryFilter, *, rows: int = 0) -> ListStart:
        """The newest numbers `flt` matches, with the first `rows` of them read. A filter that
        reads bodies lists nothing at once: the scan finds its matches."""
        newest = store.max_seq()
        start = ListStart(newest=newest, total=store.count(), scan_from=newest)
        if flt.reads_bodies:
            return start
        first = list(next(store.scan_seqs(flt, upto=newest, chunk=FIRST_NUMBERS), []))
        hidden = self.trash.hidden()
        start.numbers = [seq for seq in first if seq not in hidden]
        start.scan_from = first[-1] - 1 if len(first) >= FIRST_NUMBERS else None
        if rows:
            start.rows = store.rows(start.numbers[:rows])
        return start

    def scan(self, flt: DeliveryFilter, upto: int, *, cancelled: Callable[[], bool]) -> Iterator[array]:
        """Older matching numbers, newest first, in chunks, on a connection of its own (a long
        scan never holds the workspace's reader). Stops when `cancelled()` says so."""
        with Store(self.workspace.path, create=False) as store:
            for chunk in store.scan_seqs(flt, upto=upto, chunk=SCAN_CHUNK):
                if cancelled():
                    return
                hidden = self.trash.hidden()
                yield array("q", (seq for seq in chunk if seq not in hidden) if hidden else chunk)

    def arrivals(self, store: Store, flt: DeliveryFilter, after: int) -> Arrivals:
        """Everything stored after #after that `flt` matches, read in pages."""
        found = Arrivals(newest=store.max_seq(), total=store.count())
        while found.newest > after:
            rows = store.list(flt, limit=ARRIVALS_PAGE, before_seq=after, oldest_first=True)
            found.rows.extend(rows)
            if len(rows) < ARRIVALS_PAGE:
                break
            after = rows[-1].seq
        return found

    def page(self, store: Store, flt: DeliveryFilter, *, before: int | None = None, after: int | None = None,
             limit: int = 100, stop: Callable[[], bool] | None = None) -> ListPage:
        """A page, newest first: older than #before, or newer than #after (up to `limit`; `more`
        says there is still more). The total only with the first page: a count per page would
        cost a table scan each on a big store."""
        if after is not None:
            # Oldest first from the store, newest first here: a following page asks only for what it has not seen.
            rows = store.list(flt, limit=limit, before_seq=after, oldest_first=True, stop=stop)
            rows.reverse()
        else:
            rows = store.list(flt, limit=limit, before_seq=before, stop=stop)
        more = len(rows) == limit
        hidden = self.trash.hidden()
        total = store.count() if before is None and after is None else None
        return ListPage([row for row in rows if row.seq not in hidden], more, total)


def acted_on(marked: Iterable[int], current: int | None) -> list[int]:
    """What an action works on: the marked deliveries (oldest first), or else the current one."""
    return sorted(marked) or ([current] if current is not None else [])


class Trash:
    """Deliveries deleted but restorable, by token; the newest can be undone without one."""

    def __init__(self, workspace: Workspace, *, seconds: float = UNDO_SECONDS,
                 on_error: Callable[[str], None] = lambda _line: None,
                 on_restored: Callable[[list[int]], None] = lambda _seqs: None) -> None:
        self.workspace = workspace
        self.seconds = seconds
        self.on_error = on_error  # one line, where no request or key press waits for it
        self.on_restored = on_restored  # deliveries a failed delete leaves in the store
        self._entries: dict[str, tuple[list[int], asyncio.TimerHandle]] = {}
        self._deleting: set[asyncio.Task[None]] = set()

    def put(self, seqs: Iterable[int]) -> str:
        """Hide `seqs` now and delete them for good after the undo window; returns the undo token.
        Call on the UI's event loop."""
        numbers = list(seqs)
        token = secrets.token_urlsafe(8)
        timer = asyncio.get_running_loop().call_later(self.seconds, self._expire, token)
        self._entries[token] = (numbers, timer)
        return token

    def undo(self, token: str | None = None) -> list[int] | None:
        """Bring back what `token` (or, without one, the newest delete) hid; None when it is gone."""
        if token is None:
            token = next(reversed(self._entries), None)
        found = self._entries.pop(token, None) if token is not None else None
        if found is None:
            return None
        found[1].cancel()
        return found[0]

    def hidden(self) -> set[int]:
        """Numbers deleted but restorable: lists leave them out. Safe from a reading thread: it
        copies the entries at once (one C call under the GIL) before walking them."""
        return {seq for seqs, _ in list(self._entries.values()) for seq in seqs}

    def __bool__(self) -> bool:
        return bool(self._entries)

    async def empty(self) -> None:
        """Delete everything in the trash now (a UI closing) and wait for every delete under way."""
        for token in list(self._entries):
            seqs, timer = self._entries.pop(token)
            timer.cancel()
            await self._delete(seqs)
        await asyncio.gather(*self._deleting, return_exceptions=True)

    def _expire(self, token: str) -> None:
        found = self._entries.pop(token, None)
        if found is not None:
            task = asyncio.ensure_future(self._delete(found[0]))
            self._deleting.add(task)
            task.add_done_callback(self._deleting.discard)

    async def _delete(self, seqs: list[int]) -> None:
        try:
            await asyncio.to_thread(self.workspace.delete, seqs)
        except HookinspectError as exc:
            shown = ", ".join(f"#{seq}" for seq in seqs[:5]) + ("…" if len(seqs) > 5 else "")
            self.on_error(f"deleting {shown} failed: {exc.message}; they stay in the store")
            self.on_restored(seqs)
