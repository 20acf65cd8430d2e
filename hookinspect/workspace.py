"""A workspace: one open store, its single writer and its change notifications.

Everything that reads or writes deliveries is handed a workspace, never a path: the
receiver, the relay subscription, import, replay, diff, the forward queue, the TUI and the
pytest plugin. One process opens a store once and shares the writer; readers follow changes
through `changes` instead of polling the store on timers of their own.

Changes made by another process travel one way: through the store itself. `follow()` runs one
thread per workspace that looks (`PRAGMA data_version`, one cheap query) every FOLLOW_SECONDS
and announces what it finds on `changes`, so a shell subscribes once and hears about its own
process's writes and every other process's alike. What is not in the store (a receiver's
refusals, a disk that filled up) is the receiver's news, told on its own channel.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from hookinspect.errors import HookinspectError
from hookinspect.model import Attempt, Delivery
from hookinspect.store.sqlite import Store
from hookinspect.store.writer import GroupCommitWriter

T = TypeVar("T")
log = logging.getLogger(__name__)

# How often a followed workspace looks for another process's changes: a delivery captured by
# `listen` shows in a UI of another process within this, for one query when nothing changed.
FOLLOW_SECONDS = 0.1


class ChangeKind(StrEnum):
    """What a StoreChange says happened (a str, so it travels as JSON to another process)."""

    DELIVERIES = "deliveries"  # deliveries up to #seq exist; `delivery` is set when this process recorded it
    ATTEMPT = "attempt"  # an attempt was added to #seq
    QUEUED = "queued"  # #seq waits in the forward queue: `queued` holds its items (id, target)
    REMOVED = "removed"  # deliveries were deleted
    STORE = "store"  # something else changed, seen from another process: re-read what you show
    FAILING = "failing"  # nothing can be stored: `message` says why
    RECOVERED = "recovered"  # storing works again


@dataclass(slots=True)
class StoreChange:
    """What changed in the store (see ChangeKind)."""

    kind: ChangeKind
    seq: int | None = None
    delivery: Delivery | None = None
    attempt: Attempt | None = None
    message: str = ""
    queued: tuple[tuple[int, str], ...] = ()


Subscriber = Callable[[StoreChange], None]


class Changes:
    """StoreChange notifications: subscribers are called in the announcing thread, in order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` for every change from now on; returns the function that stops it."""
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not subscriber]

        return unsubscribe

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def announce(self, change: StoreChange) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(change)
            except Exception:  # a broken subscriber must not fail the write that was announced
                log.exception("a change subscriber failed on %s", change.kind)


class Workspace:
    """An open store: `store` reads, `writer` writes (group commit), `changes` tells."""

    def __init__(self, path: str | Path, *, create: bool = False, durability: str = "power") -> None:
        self.path = Path(path)
        self.durability = durability  # power: every commit fsynced; process: survives a crash, not power loss
        self.store = Store(self.path, create=create)
        self.changes = Changes()
        self._writer: GroupCommitWriter | None = None
        self._writer_lock = threading.Lock()
        self._read_lock = threading.Lock()
        # What the last poll() saw, so a poll announces only what nobody announced yet.
        self._data_version = self.store.data_version()
        self._known_seq = self.store.max_seq()
        self._known_attempt = self.store.last_attempt_mark()
        self._followers = 0
        self._follow_stop: threading.Event | None = None
        self._follow_lock = threading.Lock()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish queued writes, then close the writer and the reader."""
        self._stop_following()
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        with self._read_lock:  # not under a follower's look
            self.store.close()

    # -- writing ---------------------------------------------------------------------------

    @property
    def writer(self) -> GroupCommitWriter:
        """The one writer of this workspace, started on first use."""
        with self._writer_lock:
            if self._writer is None:
                writer = GroupCommitWriter(self.path, durability=self.durability)
                writer.start()
                self._writer = writer
            return self._writer

    async def start_writer(self) -> None:
        """Start the writer without blocking the event loop (it opens the store in its thread)."""
        await asyncio.to_thread(lambda: self.writer)

    async def add_attempt(self, attempt: Attempt, *, settles_queue: bool = False) -> None:
        """Store an attempt and announce it; a successful one that `settles_queue` (a manual replay)
        also marks the delivery's queued forwards to that target done, so they are not sent again."""

        def record(store: Store) -> None:
            store.add_attempt(attempt)
            if settles_queue and attempt.is_success:
                store.queue_settle(attempt.delivery_seq, attempt.target_url, f"{attempt.kind}: {attempt.outcome}")

        await self.writer.submit(record, is_durable=False)  # lost to a power cut: a send to make again, at worst
        self.changes.announce(StoreChange(ChangeKind.ATTEMPT, attempt.delivery_seq, attempt=attempt))

    def write(self, operation: Callable[[Store], T], change: StoreChange | None = None) -> T:
        """Run a write and wait for its COMMIT (a CLI command, a thread); announces `change` after."""
        result = self.writer.submit(operation, blocking=True)
        if change is not None:
            self.changes.announce(change)
        return result

    def delete(self, seqs: Iterable[int]) -> int:
        """Delete deliveries (their attempts and queue items go with them)."""
        seqs = list(seqs)
        deleted = self.write(lambda store: store.delete(seqs))
        self.changes.announce(StoreChange(ChangeKind.REMOVED))
        return deleted

    def clear(self) -> int:
        deleted = self.write(lambda store: store.clear())
        self.changes.announce(StoreChange(ChangeKind.REMOVED))
        return deleted

    # -- reading ---------------------------------------------------------------------------

    async def read(self, query: Callable[[Store], T]) -> T:
        """Run a read in a thread, so a slow one (a big body, a JSON filter) never stalls the loop."""

        def locked() -> T:
            with self._read_lock:
                return query(self.store)

        return await asyncio.to_thread(locked)

    def announce_recorded(self, delivery: Delivery, queued: tuple[tuple[int, str], ...] = ()) -> None:
        """Tell subscribers about a delivery this process stored (the recorder calls this)."""
        seq = delivery.seq
        assert seq is not None
        if seq > self._known_seq:
            self._known_seq = seq
        if not self.changes.has_subscribers:  # the common case under load with --quiet: no news to build
            return
        self.changes.announce(StoreChange(ChangeKind.DELIVERIES, seq, delivery=delivery))
        if queued:
            self.changes.announce(StoreChange(ChangeKind.QUEUED, seq, delivery=delivery, queued=queued))

    def poll(self) -> bool:
        """Look for changes made by another process (or thread's connection); announce them.

        Costs one `PRAGMA data_version` when nothing changed. Returns whether anything did.
        """
        with self._read_lock:
            version = self.store.data_version()
            if version == self._data_version:
                return False
            self._data_version = version
            newest = self.store.max_seq()
            newest_attempt = self.store.last_attempt_mark()
            attempt_seqs = [] if newest_attempt <= self._known_attempt else \
                self.store.seqs_with_attempts_after(self._known_attempt)
        changed = False
        if newest > self._known_seq:
            self._known_seq = newest
            self.changes.announce(StoreChange(ChangeKind.DELIVERIES, newest))
            changed = True
        if newest_attempt > self._known_attempt:
            self._known_attempt = newest_attempt
            for seq in attempt_seqs:
                self.changes.announce(StoreChange(ChangeKind.ATTEMPT, seq))
            changed = True
        if not changed:  # a delete, a verdict, a queue update: whoever shows the store re-reads it
            self.changes.announce(StoreChange(ChangeKind.STORE))
        return True

    def follow(self, interval: float = FOLLOW_SECONDS) -> Callable[[], None]:
        """Announce other processes' changes from now on (see the module's docstring); returns the
        function that stops this follower. Followers share one thread; it ends with the last."""
        with self._follow_lock:
            self._followers += 1
            if self._follow_stop is None:
                stop = self._follow_stop = threading.Event()
                threading.Thread(target=self._follow, args=(stop, interval), name="hookinspect-follow",
                                 daemon=True).start()
        released = False

        def unfollow() -> None:
            nonlocal released
            with self._follow_lock:
                if released:
                    return
                released = True
                self._followers -= 1
                if self._followers:
                    return
            self._stop_following()

        return unfollow

    def _stop_following(self) -> None:
        with self._follow_lock:
            stop, self._follow_stop = self._follow_stop, None
            self._followers = 0
        if stop is not None:
            stop.set()

    def _follow(self, stop: threading.Event, interval: float) -> None:
        said = False
        while not stop.wait(interval):
            try:
                self.poll()
            except HookinspectError:  # the store is briefly unreadable (a full disk, a lock): next look
                continue
            except Exception:  # noqa: BLE001 - the store closed at exit; anything else is said once
                if stop.is_set():
                    return
                if not said:
                    said = True
                    log.exception("following the store failed")

