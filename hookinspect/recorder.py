"""The one capture path: annotate -> route -> store (group commit) -> enqueue -> announce.

Every intake (the HTTP receiver, a relay subscription, an import, any later one) only turns
its input into a Delivery and hands it to `Recorder.record`, so each delivery gets the same
provider, event type, signature verdict, routing and announcement whatever way it came in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hookinspect.errors import StoreError, one_line
from hookinspect.model import REENCODED_NOTE, Attempt, Delivery, Rejection
from hookinspect.store.sqlite import Store
from hookinspect.store.writer import Insert
from hookinspect.workspace import ChangeKind, StoreChange, Workspace

# Bodies up to this size are annotated (JSON parsed for the event type) in the event loop;
# bigger ones in a thread, since parsing them would stall every other request.
INLINE_ANNOTATE_LIMIT = 256 * 1024
# Rejections kept per second, on average and at once: a flood of bad requests is counted, not
# written row by row (each costs a write of up to 8 KiB to a store that must keep capturing).
REJECTIONS_PER_SECOND = 20
REJECTIONS_BURST = 100


@dataclass(slots=True)
class Recorded:
    """A stored delivery and where routing sends it: queued (ack mode), or left to the intake."""

    delivery: Delivery
    targets: list[str] = field(default_factory=list)
    is_queued: bool = False


class Recorder:
    """Stores deliveries from any intake into one workspace."""

    def __init__(self, workspace: Workspace, *, annotate: Callable[[Delivery], None] | None = None,
                 route: Callable[[Delivery], Sequence[str]] | None = None, queue_forwards: bool = False) -> None:
        self.workspace = workspace
        self.annotate = annotate  # sets provider, event type and verdict (signing.registry.annotate_delivery)
        self.route = route  # the targets of one delivery (routing.targets_for)
        self.queue_forwards = queue_forwards  # ack mode: targets go to the durable queue with the delivery
        self.failing: StoreError | None = None  # why the last record failed, until one succeeds again
        self._rejection_tokens = float(REJECTIONS_BURST)
        self._rejection_clock = time.monotonic()
        self._unrecorded = 0  # rejections over the rate, not yet counted in the store
        self._count_later: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()
        # Starts a delivery's first sends while it is being stored (ForwardQueueWorker.send_first),
        # set while a forward queue is worked in this process.
        self.send_first: Callable[[Insert, asyncio.Future[int]], None] | None = None

    async def record(self, delivery: Delivery, *, attempts: Sequence[Attempt] = (),
                     content_hash: str | None = None, is_durable: bool = True, send_at_once: bool = False) -> Recorded:
        """Store one delivery; returns after COMMIT. Raises StoreError if it could not be stored.

        `is_durable=False` skips waiting for the disk: only for a delivery that another store
        keeps until it is here (a relay's event, fetched again after a power cut, since the
        subscription resumes after the newest one stored). `send_at_once` lets its queued
        forwards start while it is being stored, for the same kind of delivery: if storing
        fails, the other store sends it again, and so it is forwarded again."""
        if self.annotate is not None or delivery.note == REENCODED_NOTE:
            await self._annotate(delivery)
        targets = list(self.route(delivery)) if self.route is not None else []
        queued = tuple(targets) if self.queue_forwards else ()
        insert = Insert(delivery, queued, tuple(attempts), content_hash)
        try:
            written = self.workspace.writer.submit(insert, is_durable=is_durable)
            if send_at_once and queued and self.send_first is not None and self.failing is None:
                self.send_first(insert, written)
            await written
        except StoreError as exc:
            self._failed(exc)
            raise
        self._stored(insert)
        return Recorded(delivery, targets, bool(queued))

    def record_batch(self, items: Sequence[tuple[Delivery, Sequence[Attempt]]], *, is_durable: bool = True) -> None:
        """From a thread without an event loop (the record middleware's writer): store several
        deliveries, each with its attempts, in one transaction, as one job for the writer rather
        than one each; returns after COMMIT. Raises StoreError if they could not be stored (then
        none is). Annotation, when this recorder has it, happens here, in the caller's thread."""
        inserts = []
        for delivery, attempts in items:
            if self.annotate is not None or delivery.note == REENCODED_NOTE:
                self._annotate_now(delivery)
            targets = tuple(self.route(delivery)) if self.route is not None and self.queue_forwards else ()
            inserts.append(Insert(delivery, targets, tuple(attempts)))

        def store_all(store: Store) -> None:
            store.insert_deliveries([insert.delivery for insert in inserts])
            for insert in inserts:
                insert.apply_rest(store)
        try:
            self.workspace.writer.submit(store_all, is_durable=is_durable, blocking=True)
        except StoreError as exc:
            self._failed(exc)
            raise
        for insert in inserts:
            self._stored(insert)

    def _failed(self, exc: StoreError) -> None:
        if self.failing is None or type(self.failing) is not type(exc):  # said once, not per request
            self.workspace.changes.announce(StoreChange(ChangeKind.FAILING, message=exc.message))
        self.failing = exc

    def _stored(self, insert: Insert) -> None:
        if self.failing is not None:
            self.failing = None
            self.workspace.changes.announce(StoreChange(ChangeKind.RECOVERED, message="capture resumed: deliveries are stored again"))
        self.workspace.announce_recorded(insert.delivery, tuple(zip(insert.queue_ids, insert.enqueue_to, strict=True)))

    def reject(self, rejection: Rejection) -> None:
        """Keep a refused request for `ls --rejected`, without making the refusal wait for it.
        Over the rate, rejections are only counted (on the newest one kept, once a second)."""
        now = time.monotonic()
        self._rejection_tokens = min(REJECTIONS_BURST, self._rejection_tokens
                                     + (now - self._rejection_clock) * REJECTIONS_PER_SECOND)
        self._rejection_clock = now
        if self._rejection_tokens >= 1:
            self._rejection_tokens -= 1
            self._write_rejections(rejection)
            return
        self._unrecorded += 1
        if self._count_later is None:
            self._count_later = asyncio.get_running_loop().call_later(1.0, self._write_rejections, None)

    def _write_rejections(self, rejection: Rejection | None) -> None:
        """Add the rejections only counted so far to the newest kept one, then keep `rejection`."""
        counted, self._unrecorded = self._unrecorded, 0
        if self._count_later is not None:
            self._count_later.cancel()
            self._count_later = None

        def write(store: Store) -> None:
            if counted:
                store.count_unrecorded(counted)
            if rejection is not None:
                store.add_rejection(rejection)

        task = asyncio.create_task(self._write_quietly(write))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_quietly(self, write: Callable[[Store], None]) -> None:
        try:
            await self.workspace.writer.submit(write, is_durable=False)
        except StoreError:
            pass  # a store that cannot take a rejection cannot take deliveries either: record() says so

    async def drain(self) -> None:
        """Write what is only counted, and wait for rejections still being written (before the writer closes)."""
        if self._unrecorded:
            self._write_rejections(None)
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def _annotate(self, delivery: Delivery) -> None:
        if self.annotate is not None and len(delivery.body) > INLINE_ANNOTATE_LIMIT:
            await asyncio.to_thread(self._annotate_now, delivery)
        else:
            self._annotate_now(delivery)

    def _annotate_now(self, delivery: Delivery) -> None:
        if self.annotate is not None:
            try:
                self.annotate(delivery)
            except Exception as exc:  # noqa: BLE001 - a flaw in a check must not cost the capture
                # Whatever a sender put in its headers, the delivery is stored; `show` says the
                # check itself failed, so the flaw is seen and can be reported.
                delivery.verdict = None
                delivery.verdict_reason = one_line(f"not checked: the check failed ({type(exc).__name__}: {exc})")
        if delivery.note == REENCODED_NOTE:
            # The bytes were rebuilt on the way (smee's JSON): no signature over them can be judged.
            delivery.verdict, delivery.verdict_reason = None, REENCODED_NOTE
