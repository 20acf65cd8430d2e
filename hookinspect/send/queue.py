"""The durable forward queue of `listen --ack`: each delivery on its own schedule, like the best senders.

Items live in the store (forward_queue table), written in the same transaction as their
delivery, so a restart (even after kill -9) resumes where the last one stopped. A target
that answers with an error puts that one item on Standard Webhooks' retry schedule
(`Retry-After` honoured); a target that cannot be reached at all is probed with one item
every few seconds, and everything due goes out as soon as it answers. Several sends per
target are in flight at once unless the order must be kept (`--ordered`). Every try is
re-signed for its provider when a secret is known, so a signature never goes out stale.

A delivery that another store keeps until it is stored here (a relay's event) may have its
first try start while it is being stored (`send_first`): the laptop's commit is then off
the way from the sender to the target.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hookinspect.errors import StoreError, one_line
from hookinspect.model import Attempt, Delivery, SentRequest
from hookinspect.send.forward import Forwarder, Resigner
from hookinspect.send.retries import DEFAULT_MAX_ATTEMPTS, DEFAULT_SCHEDULE, next_state
from hookinspect.store.queue import QueueItem, QueueSnapshot
from hookinspect.store.sqlite import Store
from hookinspect.store.writer import Insert
from hookinspect.values import now_us
from hookinspect.workspace import ChangeKind, StoreChange, Workspace

# Recorded deliveries kept for their first send at most, by count and by body bytes (the
# oldest are read back if needed).
FRESH_KEPT = 1024
FRESH_BYTES = 16 * 1024 * 1024
# Longest sleep between looks at the queue when nothing wakes the worker: it also picks up
# `queue retry/cancel/pause` from another process within this time.
IDLE_POLL = 1.0
# Sends in flight per target at once (a local server restarting must not be flooded).
DEFAULT_CONCURRENCY = 8
# While a target cannot be reached, one item is sent to it this often to see if it is back.
PROBE_SECONDS = 2.0
# Errors that mean nothing answered at all: the target is down, not this delivery rejected.
UNREACHABLE = frozenset({"connect", "dns"})
# Due items read per look at the queue.
READ_LIMIT = 512
# How long due items read from the store (and those this process queued since) are worked from
# memory before the queue is read again: the longest a pause given by another process (or an
# item it queued) waits to be seen while sends keep finishing.
DUE_KEPT_SECONDS = 0.25
# Due items kept in memory at most; past it they wait in the store for the next look.
DUE_KEPT = 10_000
# Waiting items a wake looks through at most for one that can start.
MEMORY_SCAN = 256
# Deliveries of items waiting in memory read along with those a send needs now.
READ_AHEAD = 64
# A look reads this many items per free slot of each target.
LOOK_SLOTS = 16
# How often an outcome that could not be written (a full disk) is written again.
STORE_RETRY_SECONDS = 2.0


@dataclass
class QueuePolicy:
    """How the queue sends: retries, concurrency, order, probing, re-signing."""

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    concurrency: int = DEFAULT_CONCURRENCY
    ordered: bool = False  # one at a time per target, oldest first
    probe_seconds: float = PROBE_SECONDS
    resigner_for: Callable[[Delivery], Resigner | None] | None = None
    idle_poll: float = IDLE_POLL


@dataclass
class _Target:
    in_flight: set[int] = field(default_factory=set)  # being sent: they hold the target's slots
    recording: set[int] = field(default_factory=set)  # sent, their outcome not yet committed
    next_probe: float | None = None  # monotonic time; None while the target answers


class ForwardQueueWorker:
    """Runs in the receiver's event loop and works the store's forward queue."""

    def __init__(self, workspace: Workspace, forwarder: Forwarder, policy: QueuePolicy | None = None, *,
                 on_attempt: Callable[[Attempt, QueueItem, str], None] | None = None) -> None:
        self.workspace = workspace
        self.forwarder = forwarder
        self.policy = policy or QueuePolicy()
        self.on_attempt = on_attempt
        self._wake = asyncio.Event()
        # Deliveries this process just recorded and queued, as the recorder announced them:
        # their first send needs no read of the store (a thread hop per wake).
        self._fresh: OrderedDict[int, Delivery] = OrderedDict()
        self._fresh_bytes = 0
        self._targets: dict[str, _Target] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused: frozenset[str] = frozenset()  # as of the last look at the queue
        # First tries started while their delivery is being stored, by the negative number that
        # holds their target's slot until the item's id is known: (delivery, target).
        self._sending_first: dict[int, tuple[Delivery, str]] = {}
        self._first_slots = itertools.count(-1, -1)
        # Deliveries (by id()) whose every queued send started first: their QUEUED announcement
        # is no news to the queue, and a look at it for each of a burst's deliveries would cost
        # a thread hop and a query apiece.
        self._wholly_first: set[int] = set()
        # Due items waiting for a free slot: what the last look read and could not start, and what
        # this process queued since (its QUEUED announcements carry the items). A finished send
        # starts the next of them without reading the store; the store is read again when they
        # run out or after DUE_KEPT_SECONDS. `_due_look`: the generation that look began at.
        self._due: deque[QueueItem] = deque()
        self._due_look = 0
        self._due_until = 0.0
        self._next_due_us: int | None = None  # the soonest item due later, as of the last look
        # Whether the last look left something due in the store (a busy or down target it did not
        # read, more than it read): then a finished send calls for another look.
        self._look_left = True
        # A look at the queue reads in a thread while sends finish; an item settled after the
        # look began may still show as due in it. Each settle is stamped with a generation, and
        # a look skips the items settled since it began (the next look sees them as they are).
        self._generation = 0
        self._settled_at: dict[int, int] = {}
        # For anyone watching it work (a status line, a test): looks at the queue so far, and
        # sent items whose outcome waits to be written (a full disk).
        self.looks = 0
        self.unwritten = 0

    def wake(self) -> None:
        self._wake.set()

    def _on_change(self, change: StoreChange) -> None:
        if change.kind == ChangeKind.QUEUED and change.delivery is not None and id(change.delivery) in self._wholly_first:
            self._wholly_first.discard(id(change.delivery))
            return
        if change.kind == ChangeKind.RECOVERED:
            self._due_until = 0.0  # read the store again: what failed to be written may be due
            self._wake.set()
        elif change.kind == ChangeKind.QUEUED and change.delivery is not None and change.seq is not None:
            delivery = change.delivery
            self._keep_fresh(change.seq, delivery)
            for item_id, url in change.queued:  # the sends that did not start first wait here for a slot
                # (not when the order must be kept: only a look knows each target's oldest item)
                if not self.policy.ordered and not self._is_sending_first(change.seq, url) and len(self._due) < DUE_KEPT:
                    self._due.append(QueueItem(item_id, change.seq, url, 0, delivery.received_us, None))
            self._wake.set()  # announced in the event loop's thread, by the recorder

    async def run(self) -> None:
        tasks = self._tasks
        unsubscribe = self.workspace.changes.subscribe(self._on_change)
        try:
            while True:
                self._wake.clear()
                sleep_for = self.policy.idle_poll
                snapshot = None
                if self._due and time.monotonic() < self._due_until:
                    look, paused = self._due_look, self._paused  # no read of the store
                    sleep_for = min(sleep_for, self._due_until - time.monotonic())
                else:
                    # The store is the truth again (what was kept may have been cancelled meanwhile);
                    # what this process queues during the look is kept beside what it reads.
                    kept, self._due = self._due, deque()
                    snapshot = await self._look()
                    look, paused = self._due_look, self._paused
                    if snapshot is None:  # the store is failing: the recorder has said why; keep what was kept
                        self._due = deque([*kept, *self._due])
                    else:
                        read = {item.id for item in snapshot.due}
                        self._due = deque([*snapshot.due, *(item for item in self._due if item.id not in read)])
                        self._next_due_us = snapshot.next_at_us
                if self._next_due_us is not None:
                    sleep_for = min(sleep_for, (self._next_due_us - now_us()) / 1e6)
                self._settled_at = {i: g for i, g in self._settled_at.items() if g > look}
                starting = self._take_startable(look, paused)
                if starting:
                    # One read for all of them: a thread hop per delivery would cost more than its send.
                    deliveries = await self._read_deliveries(starting)
                    for item in starting:
                        task = asyncio.create_task(self._deliver(item, deliveries.get(item.delivery_seq)))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                probes = [t.next_probe for t in self._targets.values() if t.next_probe is not None]
                if probes:
                    sleep_for = min(sleep_for, min(probes) - time.monotonic())
                # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancel that
                # arrives as the wake-up does, and the worker would then never stop.
                try:
                    async with asyncio.timeout(max(0.01, sleep_for)):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            unsubscribe()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _look(self) -> QueueSnapshot | None:
        """Read what is due from the store (leaving out targets that cannot take a send now)."""
        self.looks += 1
        self._due_look = self._generation
        skip = frozenset(name for name, target in self._targets.items() if not self._has_room(target))
        limit = self._read_limit()
        try:
            snapshot = await self.workspace.read(
                lambda store: store.queue_snapshot(now_us(), limit, self.policy.ordered, skip))
        except StoreError:
            self._look_left = True
            return None
        self._paused = snapshot.paused
        self._due_until = time.monotonic() + DUE_KEPT_SECONDS
        self._look_left = bool(skip) or len(snapshot.due) >= limit
        return snapshot

    def _take_startable(self, look: int, paused: frozenset[str]) -> list[QueueItem]:
        """The due items that start now (each takes a slot of its target), from the front of those
        waiting; those that may start later stay, in order. Stops once every target it has met
        is full, or after MEMORY_SCAN items: a wake costs in proportion to what can start, not
        to a backlog of thousands."""
        if self.policy.ordered:  # only a look knows each target's oldest item: nothing is kept
            due, self._due = list(self._due), deque()
            return [item for item in due if self._may_send(item, look, paused)]
        starting: list[QueueItem] = []
        kept: list[QueueItem] = []
        for _ in range(min(len(self._due), MEMORY_SCAN)):
            item = self._due[0]
            target = self._targets.get(item.target)
            if target is not None and not self._has_room(target) and \
                    not any(self._has_room(other) for other in self._targets.values()):
                break  # every target is full: the rest waits as it is
            self._due.popleft()
            if self._may_send(item, look, paused):
                starting.append(item)
            elif self._waits_for_room(item, look, paused):
                kept.append(item)
        self._due.extendleft(reversed(kept))
        return starting

    def _waits_for_room(self, item: QueueItem, look: int, paused: frozenset[str]) -> bool:
        """Whether a due item that did not start now may start when its target has a free slot."""
        target = self._targets.get(item.target)
        return target is not None and item.target not in paused and item.id not in target.in_flight \
            and item.id not in target.recording and self._settled_at.get(item.id, -1) <= look \
            and not self._is_sending_first(item.delivery_seq, item.target)

    @property
    def _left_due(self) -> bool:
        """Whether something due waits (in memory or in the store): a finished send calls for a look."""
        return bool(self._due) or self._look_left

    def _read_limit(self) -> int:
        """Enough due items to fill every target's free slots many times over (what cannot start
        waits in memory for a slot), not the whole backlog: a look costs in proportion to what it reads."""
        busy = sum(len(t.in_flight) + len(t.recording) for t in self._targets.values())
        return min(READ_LIMIT, busy + LOOK_SLOTS * max(1, self.policy.concurrency) * max(1, len(self._targets)))

    async def _read_deliveries(self, items: list[QueueItem]) -> dict[int, Delivery]:
        found: dict[int, Delivery] = {}
        missing = []
        for seq in sorted({item.delivery_seq for item in items}):
            fresh = self._fresh.pop(seq, None)
            if fresh is not None:
                self._fresh_bytes -= len(fresh.body)
                found[seq] = fresh
            else:
                missing.append(seq)
        if not missing:
            return found
        # The deliveries of the next items waiting in memory come in the same read: draining a
        # backlog then costs one thread hop per READ_AHEAD sends, not one per send.
        wanted = set(missing)
        ahead = []
        for item in self._due:
            if len(ahead) >= READ_AHEAD:
                break
            if item.delivery_seq not in wanted and item.delivery_seq not in self._fresh:
                wanted.add(item.delivery_seq)
                ahead.append(item.delivery_seq)
        try:
            read = await self.workspace.read(lambda store: {d.seq: d for d in store.get_many([*missing, *ahead])})
        except StoreError:
            return found  # each send then finds nothing to send, and the items stay due
        for seq in missing:
            if seq in read:
                found[seq] = read[seq]
        for seq in ahead:
            if seq in read:
                self._keep_fresh(seq, read[seq])
        return found

    def _keep_fresh(self, seq: int, delivery: Delivery) -> None:
        """Keep a delivery for its coming sends (bounded by count and bytes, oldest out first)."""
        self._fresh[seq] = delivery
        self._fresh_bytes += len(delivery.body)
        while len(self._fresh) > FRESH_KEPT or (self._fresh_bytes > FRESH_BYTES and len(self._fresh) > 1):
            self._fresh_bytes -= len(self._fresh.popitem(last=False)[1].body)

    def _has_room(self, target: _Target) -> bool:
        """Whether a send to this target could start now: a free slot, and, if it is down, a probe due."""
        limit = 1 if self.policy.ordered else max(1, self.policy.concurrency)
        if len(target.in_flight) >= limit:
            return False
        return target.next_probe is None or (not target.in_flight and time.monotonic() >= target.next_probe)

    def _may_send(self, item: QueueItem, look: int, paused: frozenset[str]) -> bool:
        """Whether to start sending `item` now; if so, it holds one of its target's slots."""
        target = self._targets.setdefault(item.target, _Target())
        if item.id in target.in_flight or item.id in target.recording or item.target in paused:
            return False
        if self._settled_at.get(item.id, -1) > look or self._is_sending_first(item.delivery_seq, item.target):
            return False
        limit = 1 if self.policy.ordered else max(1, self.policy.concurrency)
        if len(target.in_flight) >= limit:
            return False
        if target.next_probe is not None:  # unreachable: one probe at a time, every few seconds
            if target.in_flight or time.monotonic() < target.next_probe:
                return False
            target.next_probe = time.monotonic() + self.policy.probe_seconds
        target.in_flight.add(item.id)
        return True

    def _is_sending_first(self, seq: int, target: str | None = None) -> bool:
        """Whether delivery #seq (to `target`, or to any) has a first try under way from
        `send_first`. Its seq is set before its queue item can be seen in the store."""
        return any(delivery.seq == seq and (target is None or url == target)
                   for delivery, url in self._sending_first.values())

    def send_first(self, insert: Insert, written: asyncio.Future[int]) -> None:
        """Start the first try of each of `insert`'s queued sends now, while it is being stored
        (`written` settles after COMMIT). Only where one would start at once anyway: the order
        need not be kept, the target has a free slot, answers, and is not paused. The rest wait
        for the queue as usual."""
        if self.policy.ordered:
            return
        wholly = True
        for index, url in enumerate(insert.enqueue_to):
            target = self._targets.setdefault(url, _Target())
            if url in self._paused or target.next_probe is not None or not self._has_room(target):
                wholly = False
                continue
            slot = next(self._first_slots)
            target.in_flight.add(slot)
            self._sending_first[slot] = (insert.delivery, url)
            task = asyncio.create_task(self._deliver_first(slot, index, insert, written))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if wholly and insert.enqueue_to:
            self._wholly_first.add(id(insert.delivery))

    async def _deliver_first(self, slot: int, index: int, insert: Insert, written: asyncio.Future[int]) -> None:
        delivery, url = insert.delivery, insert.enqueue_to[index]
        target = self._targets[url]
        item: QueueItem | None = None
        try:
            attempt = await self._send(delivery, url)
            try:
                await written
            except Exception:  # noqa: BLE001 - not stored (the recorder says why): no item to note the try on
                self._wholly_first.discard(id(delivery))  # no QUEUED announcement will come for it
                return
            assert delivery.seq is not None
            attempt.delivery_seq = delivery.seq  # unknown when the send began
            item = QueueItem(insert.queue_ids[index], delivery.seq, url, 0, delivery.received_us, None)
            await self._settle(item, target, attempt, slot)
        finally:
            del self._sending_first[slot]
            self._settled(item.id if item is not None else None, target, slot)

    async def _deliver(self, item: QueueItem, delivery: Delivery | None) -> None:
        target = self._targets[item.target]
        try:
            if delivery is None:
                return  # deleted meanwhile (its queue items went with it), or the store failed to read
            attempt = await self._send(delivery, item.target)
            await self._settle(item, target, attempt, item.id)
        finally:
            self._settled(item.id, target, item.id)

    async def _send(self, delivery: Delivery, url: str) -> Attempt:
        try:
            resign = self.policy.resigner_for(delivery) if self.policy.resigner_for is not None else None
            return await self.forwarder.send(delivery, url, kind="queue", resign=resign)
        except Exception as exc:  # noqa: BLE001 - a flaw is a failed try on the item's schedule, not a loop of them
            return Attempt(delivery_seq=delivery.seq or 0, kind="queue", target_url=url,
                           request=SentRequest(method=delivery.method, url=url), error_kind="other",
                           error_message=one_line(f"not sent: {type(exc).__name__}: {exc}"))

    async def _settle(self, item: QueueItem, target: _Target, attempt: Attempt, slot: int) -> None:
        """Note the attempt and the item's next state (`slot`: what held the target's slot)."""
        # The slot is free once the target answered; the item stays out of reach until
        # its outcome is committed (the writer groups those commits).
        target.in_flight.discard(slot)
        target.recording.add(item.id)
        if self._left_due:
            self._wake.set()
        if attempt.response is None and attempt.error_kind in UNREACHABLE:
            # Nothing answered: the target is down, not this delivery refused. It keeps its
            # tries and waits for the next probe; it is sent as soon as the target answers.
            if target.next_probe is None:
                target.next_probe = time.monotonic() + self.policy.probe_seconds
            state, tries, delay = "pending", item.tries, self.policy.probe_seconds
        else:
            if target.next_probe is not None:
                target.next_probe = None
                self._wake.set()  # back: everything due goes now
            tries = item.tries + 1
            state, delay = next_state(attempt, tries, self.policy.max_attempts, self.policy.schedule)
        next_at = now_us() + int(delay * 1_000_000)

        # A probe of a target that is still down is not news: its first failure is on record.
        is_news = not (attempt.error_kind in UNREACHABLE and item.last_outcome == attempt.error_kind)

        def record(store: Store) -> None:
            if is_news:
                store.add_attempt(attempt)
            store.queue_update(item.id, state, tries, next_at, attempt.outcome)

        waiting = False
        try:
            while True:
                try:
                    await self.workspace.writer.submit(record, is_durable=False)  # lost to a power cut: sent again
                    break
                except StoreError:
                    # Sent, but the outcome cannot be written (a full disk): it is written again
                    # until it can be, and the item is not sent again meanwhile (it was, thousands
                    # of times a second, while it stayed due). The recorder says why nothing is stored.
                    if not waiting:
                        waiting = True
                        self.unwritten += 1
                    await asyncio.sleep(STORE_RETRY_SECONDS)
        finally:
            if waiting:
                self.unwritten -= 1
        if is_news:
            self.workspace.changes.announce(StoreChange(ChangeKind.ATTEMPT, attempt.delivery_seq, attempt=attempt))
            if self.on_attempt is not None:
                self.on_attempt(attempt, item, state)

    def _settled(self, item_id: int | None, target: _Target, slot: int) -> None:
        if item_id is not None:
            self._generation += 1
            self._settled_at[item_id] = self._generation
            target.recording.discard(item_id)
        target.in_flight.discard(slot)
        if self._left_due or target.next_probe is not None:
            self.wake()
