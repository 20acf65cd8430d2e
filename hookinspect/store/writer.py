"""Group commit: one writer thread owns the store's write connection.

Callers hand it operations; the thread runs everything queued at that moment in one
transaction and settles each caller only after COMMIT returns. A sender is therefore
acknowledged only for what is durably stored, and a burst of concurrent requests costs one
commit instead of one each. A failed batch is rolled back and retried one operation at a
time, so each caller gets its own answer and the thread lives on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hookinspect.errors import HookinspectError
from hookinspect.model import Attempt, Delivery
from hookinspect.store.schema import store_error
from hookinspect.store.sqlite import Store

T = TypeVar("T")

# Bounds one transaction so a huge burst still commits (and acknowledges) in steps.
MAX_BATCH = 512

_STOP = object()


@dataclass(slots=True)
class Insert:
    """A delivery to store, with (in the same transaction) its queued forwards and known attempts."""

    delivery: Delivery
    enqueue_to: tuple[str, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    content_hash: str | None = None
    queue_ids: list[int] = field(default_factory=list)  # the queue items' ids, one per enqueue_to, once stored

    @property
    def is_plain(self) -> bool:
        return not self.enqueue_to and not self.attempts and self.content_hash is None

    def apply_rest(self, store: Store) -> None:
        seq = self.delivery.seq
        assert seq is not None
        self.queue_ids = [store.enqueue(seq, target, self.delivery.received_us) for target in self.enqueue_to]
        for attempt in self.attempts:
            attempt.delivery_seq = seq
            store.add_attempt(attempt)


@dataclass(slots=True)
class _Job:
    operation: Insert | Callable[[Store], Any]
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    loop: asyncio.AbstractEventLoop | None = field(default=None)
    # Whether its COMMIT must reach the disk before it is settled (see GroupCommitWriter.durability).
    is_durable: bool = True


def _as_store_error(exc: Exception, path: Path) -> Exception:
    """SQLite's own failures (disk full, I/O error, corrupt) as a StoreError with one clear line."""
    if isinstance(exc, HookinspectError | sqlite3.IntegrityError) or not isinstance(exc, sqlite3.Error):
        return exc  # ours, a constraint the caller handles (a relay event stored twice), or a bug
    return store_error(exc, path)


class GroupCommitWriter:
    """Serialises writes to one store from any number of coroutines and threads."""

    def __init__(self, path: str | Path, max_batch: int = MAX_BATCH, durability: str = "power") -> None:
        self.path = Path(path)
        self.max_batch = max_batch
        self.durability = durability
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.commits = 0  # how many transactions ran: batches, for the benchmark's curiosity

    def start(self) -> None:
        """Open the store in the writer thread; raises the store's error if it cannot open."""
        self._thread = threading.Thread(target=self._run, name="hookinspect-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def submit(self, work: Insert | Callable[[Store], T], *, is_durable: bool = True,
               blocking: bool = False) -> Any:
        """The one way in: `work` runs inside the next group transaction, and the answer settles
        after COMMIT with its result (an Insert's: the new sequence number).

        Called in an event loop it returns an asyncio future to await; elsewhere (a thread) a
        concurrent future. `blocking=True` waits here and returns the result (or raises): for a
        synchronous API, which must not depend on whether its caller runs a loop. An Insert
        rather than a callable lets a batch of them become one multi-row INSERT (see _apply).

        `is_durable=False` is for records whose loss to a power cut costs at most a repeated
        send (an attempt, a queue item's new state, a delivery another store keeps until it is
        here): a batch of only those commits without an fsync; the next durable commit syncs them
        too (the WAL is written in order).
        """
        loop: asyncio.AbstractEventLoop | None = None
        if not blocking:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        future: asyncio.Future[Any] | concurrent.futures.Future[Any] = \
            loop.create_future() if loop is not None else concurrent.futures.Future()
        self._queue.put(_Job(work, future, loop, is_durable))
        return future.result() if blocking else future

    def _run(self) -> None:
        try:
            store = Store(self.path, durability=self.durability)
        except BaseException as exc:  # handed to start() in the caller's thread
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                batch = [item]
                stop_after = False
                while len(batch) < self.max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop_after = True
                        break
                    batch.append(nxt)
                self._run_batch(store, batch)
                if stop_after:
                    break
        finally:
            store.close()

    def _run_batch(self, store: Store, batch: list[_Job]) -> None:
        if self.durability == "power":
            store.set_synchronous("FULL" if any(job.is_durable for job in batch) else "NORMAL")
        try:
            outcomes = self._apply(store, batch)
        except Exception:
            # One bad operation (or a failed COMMIT) must not fail its neighbours: the batch was
            # rolled back, so redo them one by one and give each caller its own answer.
            outcomes = [self._apply_one(store, job) for job in batch]
        _settle(batch, outcomes)

    def _apply(self, store: Store, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """Every job in one transaction; raises (after ROLLBACK) if any of them, or COMMIT, fails."""
        outcomes: list[tuple[bool, Any]] = []
        is_plain_capture = all(isinstance(job.operation, Insert) and job.operation.is_plain for job in batch)
        # Plain captures need no transaction around them: insert_deliveries is atomic, and
        # without BEGIN and COMMIT this thread has two fewer waits to get the GIL back.
        with contextlib.nullcontext() if is_plain_capture else store.transaction():
            inserts = [job.operation for job in batch if isinstance(job.operation, Insert)]
            if inserts:
                store.insert_deliveries([op.delivery for op in inserts], [op.content_hash for op in inserts])
            for job in batch:
                operation = job.operation
                if isinstance(operation, Insert):
                    operation.apply_rest(store)
                    outcomes.append((True, operation.delivery.seq))
                else:
                    outcomes.append((True, operation(store)))
        self.commits += 1
        return outcomes

    def _apply_one(self, store: Store, job: _Job) -> tuple[bool, Any]:
        try:
            return self._apply(store, [job])[0]
        except Exception as exc:  # noqa: BLE001 - handed to the one caller it belongs to
            return False, _as_store_error(exc, self.path)


def _settle(batch: list[_Job], outcomes: list[tuple[bool, Any]]) -> None:
    # One wake-up per event loop for the whole batch, not one per caller.
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for (is_ok, value), job in zip(outcomes, batch, strict=True):
        if job.loop is None:
            future = job.future
            assert isinstance(future, concurrent.futures.Future)
            future.set_result(value) if is_ok else future.set_exception(value)
        else:
            by_loop.setdefault(job.loop, []).append((job.future, is_ok, value))  # type: ignore[arg-type]
    for loop, settlements in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, settlements)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            pass


def _settle_all(settlements: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, is_ok, value in settlements:
        if future.done():  # the caller gave up (cancelled); the write happened anyway
            continue
        if is_ok:
            future.set_result(value)
        else:
            future.set_exception(value)
