"""Group commit: one writer thread owns the store's write connection.

The event loop hands it operations; the thread runs everything queued at that moment in
one transaction and resolves each caller's future only after COMMIT returns. A sender
is therefore acknowledged only for what is durably stored, and a burst of concurrent
requests costs one commit instead of one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hookinspect.model import Attempt, Delivery
from hookinspect.store.sqlite import Store

T = TypeVar("T")

# Bounds one transaction so a huge burst still commits (and acknowledges) in steps.
MAX_BATCH = 512

_STOP = object()


@dataclass(frozen=True)
class _Insert:
    delivery: Delivery
    enqueue_to: tuple[str, ...]

    def apply_queue(self, store: Store) -> None:
        for target in self.enqueue_to:
            store.enqueue(self.delivery.seq, target, self.delivery.received_us)  # type: ignore[arg-type]


class GroupCommitWriter:
    """Serialises writes to one store from any number of coroutines."""

    def __init__(self, path: str | Path, max_batch: int = MAX_BATCH) -> None:
        self.path = Path(path)
        self.max_batch = max_batch
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
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    async def call(self, operation: Callable[[Store], T]) -> T:
        """Run `operation(store)` inside the next group transaction; returns after COMMIT."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((operation, future, loop))
        return await future

    async def insert_delivery(self, delivery: Delivery, enqueue_to: Sequence[str] = ()) -> int:
        """Store a delivery (and, in the same transaction, queue it for `enqueue_to` targets)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        # An _Insert, not a callable, so a batch of them becomes one multi-row INSERT (see _run_batch).
        self._queue.put((_Insert(delivery, tuple(enqueue_to)), future, loop))
        return await future

    async def add_attempt(self, attempt: Attempt) -> None:
        await self.call(lambda store: store.add_attempt(attempt))

    def _run(self) -> None:
        try:
            store = Store(self.path)
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

    def _run_batch(self, store: Store, batch: list[Any]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        is_plain_capture = all(isinstance(op, _Insert) and not op.enqueue_to for op, _future, _loop in batch)
        try:
            # Plain captures need no transaction around them: insert_deliveries is atomic, and
            # without BEGIN and COMMIT this thread has two fewer waits to get the GIL back.
            with contextlib.nullcontext() if is_plain_capture else store.transaction():
                inserts = [op for op, _future, _loop in batch if isinstance(op, _Insert)]
                seqs = iter(store.insert_deliveries([op.delivery for op in inserts]) if inserts else [])
                for operation, _future, _loop in batch:
                    if isinstance(operation, _Insert):
                        operation.apply_queue(store)
                        outcomes.append((True, next(seqs)))
                    else:
                        outcomes.append((True, operation(store)))
            self.commits += 1
        except Exception:
            # One bad operation must not fail its neighbours: redo them one by one.
            outcomes = []
            for operation, _future, _loop in batch:
                try:
                    with store.transaction():
                        if isinstance(operation, _Insert):
                            seq = store.insert_delivery(operation.delivery)
                            operation.apply_queue(store)
                            outcomes.append((True, seq))
                        else:
                            outcomes.append((True, operation(store)))
                except Exception as exc:
                    outcomes.append((False, exc))
                self.commits += 1
        # One wake-up per event loop for the whole batch, not one per caller.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (is_ok, value), (_operation, future, loop) in zip(outcomes, batch, strict=True):
            by_loop.setdefault(loop, []).append((future, is_ok, value))
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
